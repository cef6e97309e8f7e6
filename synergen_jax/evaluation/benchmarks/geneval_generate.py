"""Writes a workdir's images for GenEval's prompts in GenEval's exact layout, so the
official detector-based scorer (djghosh13/geneval evaluation/evaluate_images.py) runs
on the folder unchanged:

  outdir/00000/metadata.jsonl     the prompt's metadata line (one JSON object)
  outdir/00000/samples/0000.png   ... one PNG per sample
  outdir/00001/...

  write_images(session, metadata_path, outdir, samples=4, seed=0, cfg_scale=..., sampling=...,
               prompts_limit=0) -> {"prompts", "images", "written", "seconds", "skipped", ...}
  write_workdir_images(workdir, metadata_path, outdir, samples, ...) -> the same
      what `python -m synergen_jax.generate --geneval_metadata` does: a workdir's session
      with the generation defaults of `generate_png`

Resumable: a prompt whose folder already holds its `samples` PNGs is skipped. Prompt i
is sampled with seed + i (one generation call of `samples` rows per prompt; load the
session with batch_size=samples), so a resumed run draws the same images.
"""

import json
import os
import time

import numpy as np
import PIL.Image

from synergen_jax import files
from synergen_jax.evaluation.benchmarks import load_geneval, records
from synergen_jax.inference import commands
from synergen_jax.inference.session import InferenceSession


def _done(folder: str, samples: int) -> bool:
  return all(os.path.exists(os.path.join(folder, "samples", f"{k:04d}.png"))
             for k in range(samples)) and os.path.exists(os.path.join(folder, "metadata.jsonl"))


def write_images(session, metadata_path: str, outdir: str, samples: int = 4, seed: int = 0,
                 cfg_scale=None, sampling=None, prompts_limit: int = 0, log=print) -> dict:
  skips = records.Skips()
  rows = list(load_geneval.load_metadata(metadata_path, skips))
  if prompts_limit:
    rows = rows[:prompts_limit]
  os.makedirs(outdir, exist_ok=True)
  todo = [(i, m) for i, m in rows if not _done(os.path.join(outdir, f"{i:05d}"), samples)]
  t0, written, first_s = time.time(), 0, None
  for n, (i, m) in enumerate(todo):
    imgs = session.generate([m["prompt"]] * samples, seed=seed + i, cfg_scale=cfg_scale,
                            sampling=sampling)  # uint8 [samples, S, S, 3]
    folder = os.path.join(outdir, f"{i:05d}")
    os.makedirs(os.path.join(folder, "samples"), exist_ok=True)
    for k, im in enumerate(np.asarray(imgs)):
      PIL.Image.fromarray(im).save(os.path.join(folder, "samples", f"{k:04d}.png"))
    files.write_atomic(os.path.join(folder, "metadata.jsonl"), json.dumps(m) + "\n")
    written += len(imgs)
    first_s = time.time() - t0 if first_s is None else first_s
    rate = written / max(time.time() - t0, 1e-9)
    log(f"[geneval] {n + 1}/{len(todo)} prompts, {rate:.2f} images/s, "
        f"ETA {(len(todo) - n - 1) * samples / max(rate, 1e-9):.0f}s")
  seconds = time.time() - t0
  return {"prompts": len(rows), "images": len(rows) * samples, "written": written,
          "seconds": seconds, "images_per_s": written / seconds if written else 0.0,
          # without the first prompt (its compile): the rate a long run sees
          "images_per_s_steady": ((written - samples) / (seconds - first_s)
                                  if written > samples else 0.0),
          "skipped": skips.total, **{f"skipped/{k}": v for k, v in skips.as_dict().items()}}


def write_workdir_images(workdir: str, metadata_path: str, outdir: str, samples: int = 4,
                         seed: int = 0, cfg_scale: float | None = None,
                         temperature: float | None = None, top_k: int | None = None,
                         stage=None, step=None, vq_dir=None, prompts_limit: int = 0) -> dict:
  """`write_images` with a workdir's model; None sampling values: the experiment's."""
  if not os.path.isfile(metadata_path):
    raise FileNotFoundError(f"--geneval_metadata {metadata_path!r} is not a file")
  session = InferenceSession.load(workdir, stage, step, vq_dir, batch_size=samples)
  scale, sampling = commands.sampling_options(session, cfg_scale, temperature, top_k)
  return write_images(session, metadata_path, outdir, samples, seed, scale, sampling,
                      prompts_limit)
