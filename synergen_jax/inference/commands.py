"""What the `generate` and `answer` CLIs do, as functions (flag-free, for scripts and tests).

  generate_png(workdir, prompt, out, samples=1, ...) -> out    text -> PNG (side by side)
  answer_image_file(workdir, image_path, question, ...) -> str  image file + question
  sampling_options(session, cfg_scale, temperature, top_k)      the generation defaults

Input is checked before the model is loaded where it can be (empty text, missing or
undecodable image, missing output directory) and raises `session.InputError`.
"""

import os

import numpy as np
import PIL.Image

from synergen_jax.model.sampling import SamplingConfig
from synergen_jax.inference.session import InferenceSession, InputError, read_image


def generate_png(workdir: str, prompt: str, out: str, samples: int = 1, seed: int = 0,
             cfg_scale: float | None = None, temperature: float | None = None,
             top_k: int | None = None, stage=None, step=None, vq_dir=None) -> str:
  if prompt is None or not prompt.strip():
    raise InputError("--prompt is empty")
  if samples < 1:
    raise InputError(f"--samples must be >= 1, got {samples}")
  if not out:
    raise InputError("--out (a PNG path) is required")
  if os.path.dirname(os.path.abspath(out)) and not os.path.isdir(
      os.path.dirname(os.path.abspath(out))):
    raise InputError(f"--out: directory {os.path.dirname(os.path.abspath(out))!r} does not exist")
  session = InferenceSession.load(workdir, stage, step, vq_dir, batch_size=samples)
  scale, sampling = sampling_options(session, cfg_scale, temperature, top_k)
  session.generation_prompt(prompt)  # length check before any compile
  images = session.generate([prompt] * samples, seed=seed, cfg_scale=scale, sampling=sampling)
  PIL.Image.fromarray(np.concatenate(list(images), axis=1)).save(out)
  return out


def sampling_options(session: InferenceSession, cfg_scale: float | None = None,
                     temperature: float | None = None, top_k: int | None = None
                     ) -> tuple[float | None, SamplingConfig]:
  """(CFG scale or None for no guidance, sampling) of a generation: the given values, the
  experiment's `eval` section for those left None."""
  e = session.experiment.eval
  scale = e.cfg_scale if cfg_scale is None else cfg_scale
  sampling = SamplingConfig(temperature=e.gen_temperature if temperature is None else temperature,
                            top_k=e.gen_top_k if top_k is None else top_k, top_p=e.gen_top_p)
  return (float(scale) if scale > 0 else None), sampling


def answer_image_file(workdir: str, image_path: str, question: str, max_new_tokens: int = 32,
           temperature: float = 0.0, seed: int = 0, stage=None, step=None,
           vq_dir=None) -> str:
  if question is None or not question.strip():
    raise InputError("--question is empty")
  if not image_path:
    raise InputError("--image is required")
  if max_new_tokens < 1:
    raise InputError(f"--max_new_tokens must be >= 1, got {max_new_tokens}")
  image = read_image(image_path)  # before loading the model: fail fast
  session = InferenceSession.load(workdir, stage, step, vq_dir, batch_size=1)
  return session.answer([image], [question], max_new_tokens=max_new_tokens,
                        sampling=SamplingConfig(temperature=temperature), seed=seed)[0]
