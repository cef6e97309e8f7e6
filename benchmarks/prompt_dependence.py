"""Does the generator use its prompt? Teacher-forced image NLL under the own, another and
the unconditional prompt.

  python benchmarks/prompt_dependence.py --workdir=runs/demo [--stage=sft] [--images=128]

Takes the first `--images` validation scenes without text (the pretokenized split, the
codes the model trains on) and scores each image's codes three times: after its own
caption, after the caption of another scene (rotated by half the set) and after the
unconditional (CFG-dropout) prompt. Prints one JSON line: the mean NLL per code, split
into the patches that hold an object (the in-cell world: the object's token cell) and the
empty ones, and within each into the patch's first code (the one the unfolding head
predicts from the LLM state alone) and the rest. A generator that follows its prompt has
a clearly lower NLL on the object patches' first codes with its own caption than with
another's; one that ignores it scores the three alike (docs/LEARNING.md, "why the
generator ignored its prompt").
"""

import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402


def per_code_nll(module, batch, budget: int):
  """(nll [batch, budget, m*n], mask [batch, budget]) of the image-target patches of a
  batch, gathered as the model's image loss gathers them (`SynerGenVL._image_loss`)."""
  from synergen_jax.model.synergen import target_pair_mask
  mn = module.config.patch_size
  hidden = module.hidden_states(batch)  # [batch, length, embed]
  w_next = (batch["image_target"] * target_pair_mask(batch["segment_ids"]))[:, 1:]
  idx = jax.vmap(lambda r: jnp.nonzero(r > 0, size=budget, fill_value=0)[0])(w_next)
  mask = jnp.arange(budget)[None, :] < jnp.sum(w_next > 0, axis=1)[:, None]
  h_prev = jnp.take_along_axis(hidden[:, :-1], idx[..., None], axis=1)  # [b, K, embed]
  codes = jnp.take_along_axis(batch["image_codes"][:, 1:], idx[..., None], axis=1)
  b, k = idx.shape
  head = module.unfold_head(h_prev.reshape(b * k, -1), codes.reshape(b * k, mn))
  logits = head.reshape(b, k, mn, -1) @ module.unfold_head.classifier_matrix()
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(logp, codes[..., None], axis=-1)[..., 0]  # [b, K, m*n]
  return nll, mask


def _records(workdir: str, n: int) -> list:
  from array_record.python import array_record_module
  from data_pipelines.pipeline import records
  out = []
  for path in sorted(glob.glob(os.path.join(workdir, "data", "pretokenized",
                                            "validation.array_record-*"))):
    if path.endswith(".json"):
      continue
    reader = array_record_module.ArrayRecordReader(path)
    out += [records.decode_record(r) for r in reader.read(list(range(reader.num_records())))]
    reader.close()
  keep = [r for r in out if r["captions"] and r["scene_graph"]
          and not json.loads(r["scene_graph"]).get("text")]
  return keep[:n]


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True, help="a trained demo workdir")
  p.add_argument("--stage", default=None, help="stage to score (default: the newest)")
  p.add_argument("--images", type=int, default=128)
  args = p.parse_args()

  from data_pipelines.pipeline import sequences
  from synergen_jax import sharding
  from synergen_jax.inference.session import InferenceSession, pad_prompts
  s = InferenceSession.load(args.workdir, args.stage)
  d, tok, c = s.experiment.data, s.tokenizer, s.model_config
  fold, mn, k = tuple(c.fold), c.patch_size, c.patches_per_tile
  recs = _records(args.workdir, args.images)
  if not recs:
    raise SystemExit(f"{args.workdir}: no pretokenized validation scenes with captions")
  n = len(recs)

  def example(rec, caption, uncond=False):
    user = d.uncond_prompt if uncond else sequences.generation_prompt(
        caption, False, d.generation_prefix, d.uncond_prompt)
    return sequences.build_generation(tok, rec["gen_codes"], user, fold, d.system_prompt,
                                      uncond=uncond)

  prompts = {"own": [example(r, r["captions"][0]) for r in recs],
             "other": [example(r, recs[(i + n // 2) % n]["captions"][0])
                       for i, r in enumerate(recs)],
             "uncond": [example(r, "", uncond=True) for r in recs]}
  fn = jax.jit(lambda v, b: s.model.apply(v, b, k, method=per_code_nll))
  # Which patches hold an object: the token cell of each object's centre.
  grid_w = c.tile_grid[1] // fold[1]
  cell = s.image_size // grid_w
  holds = np.zeros((n, k), bool)
  for i, r in enumerate(recs):
    for o in json.loads(r["scene_graph"])["objects"]:
      x, y = o["center"]
      holds[i, int(y // cell) * grid_w + int(x // cell)] = True
  row = {"workdir": args.workdir, "stage": s.source, "images": n,
         "object_patches_per_image": round(float(holds.sum(1).mean()), 3)}
  for name, exs in prompts.items():
    nll = []
    for i in range(0, n, 32):
      b = pad_prompts(exs[i:i + 32], 32, tok.pad_id, mn, with_targets=True)
      with sharding.mesh_context(s.mesh):
        nll.append(np.asarray(fn(s.variables, b)[0])[:len(exs[i:i + 32])])
    nll = np.concatenate(nll)  # [n, K, m*n]
    row[name] = {"all": round(float(nll.mean()), 4),
                 "object_first": round(float(nll[holds][:, 0].mean()), 4),
                 "object_rest": round(float(nll[holds][:, 1:].mean()), 4),
                 "empty_first": round(float(nll[~holds][:, 0].mean()), 4),
                 "empty_rest": round(float(nll[~holds][:, 1:].mean()), 4)}
  print(json.dumps(row))


if __name__ == "__main__":
  main()
