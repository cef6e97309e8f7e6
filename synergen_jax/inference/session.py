"""A trained workdir ready for inference: answer questions about images, generate images.

  session = InferenceSession.load(workdir, stage=None, step=None, vq_dir=None, mesh=None)
  session.answer(images, questions, max_new_tokens=32) -> list[str]
  session.generate(prompts, seed=0, cfg_scale=7.5) -> uint8 [len(prompts), H, W, 3]

Parameters restore onto `mesh` (default: every present device as (1, n, 1)), whatever
mesh wrote them. Prompts follow the training templates (`data_pipelines/pipeline/sequences.py`):
an image is tiled like the training data, VQ-encoded and folded; a generation prompt
is `generation_prefix + " " + text` with its `<UNCOND>` twin for classifier-free
guidance. Calls are padded to `batch_size` rows and prompts to a multiple of
`PROMPT_BUCKET` tokens, so a session compiles each function once per bucket.
Bad input (empty text, a prompt longer than the context, an image that is not
uint8 RGB) raises `InputError` naming what was wrong.
"""

import dataclasses
import math
import os
from typing import Any, Sequence

import jax
import numpy as np

from data_pipelines.pipeline import sequences
from data_pipelines.pipeline import tiling
from data_pipelines.sources import image_io
from synergen_jax import batch as batch_lib
from synergen_jax import sharding
from synergen_jax import workdir as workdir_lib
from synergen_jax.inference.decoding import generate_text
from synergen_jax.inference.image_generation import generate_image_codes
from synergen_jax.model.sampling import SamplingConfig
from synergen_jax.model import ModelConfig, SynerGenVL

PROMPT_BUCKET = 32


class InputError(ValueError):
  """A bad prompt, question or image; the message says what was expected."""


def context_length(experiment) -> int:
  """The longest sequence the model was trained on (the largest task seq_len)."""
  d = experiment.data
  return int(max(d.understanding.seq_len, d.generation.seq_len,
                 experiment.text_data.seq_len))


def pad_prompts(examples: Sequence[dict], rows: int, pad_id: int, mn: int,
                width: int | None = None, with_targets: bool = False) -> dict:
  """Right-pads examples (1-D arrays of `batch.EXAMPLE_FIELDS`) into a prompt batch
  [rows, width] of `batch.INPUT_FIELDS`: one example per row (`batch.pad_to`: segment 1,
  positions from 0).

  Rows past len(examples) repeat the last example (their outputs are dropped).
  `with_targets` keeps the examples' text/image target weights: a training batch of
  unpacked rows.
  """
  if not examples:
    raise ValueError("no prompts")
  longest = max(len(e["tokens"]) for e in examples)
  width = width or PROMPT_BUCKET * math.ceil(longest / PROMPT_BUCKET)
  if longest > width:
    raise ValueError(f"an example of {longest} tokens does not fit a row of {width}")
  fields = batch_lib.FIELDS if with_targets else batch_lib.INPUT_FIELDS
  padded = [examples[min(r, len(examples) - 1)] for r in range(rows)]
  return batch_lib.pad_to(padded, width, pad_id, mn, fields)


def check_image(image: Any, what: str = "image") -> np.ndarray:
  """uint8 [H, W, 3] or raises InputError."""
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3 or 0 in image.shape:
    raise InputError(f"{what} must be a non-empty uint8 [height, width, 3] RGB array, got "
                     f"{image.dtype} {tuple(image.shape)}")
  return image


def read_image(path: str) -> np.ndarray:
  """An image file as uint8 [H, W, 3]; InputError if missing or undecodable."""
  if not os.path.isfile(path):
    raise InputError(f"image file {path!r} does not exist")
  with open(path, "rb") as f:
    data = f.read()
  try:
    return image_io.decode_image(data)
  except image_io.ImageDecodeError as e:
    raise InputError(f"image file {path!r} is not a readable image: {e}") from None


@dataclasses.dataclass
class InferenceSession:
  """Model, params, text tokenizer and VQ tokenizer of one trained workdir."""

  model: SynerGenVL
  variables: dict              # {"params": ...} on `mesh`
  model_config: ModelConfig
  experiment: Any              # the resolved experiment the workdir was trained with
  tokenizer: Any
  vq: Any                      # VQTokenizer
  vq_variables: Any
  mesh: jax.sharding.Mesh
  batch_size: int = 8
  source: str = ""             # where the params came from (for reports)

  # ---- loading ------------------------------------------------------------------------
  @classmethod
  def load(cls, workdir: str, stage: str | None = None, step: int | None = None,
           vq_dir: str | None = None, mesh: jax.sharding.Mesh | None = None,
           batch_size: int = 8) -> "InferenceSession":
    mesh = mesh if mesh is not None else sharding.make_mesh((1, -1, 1))
    params, experiment = workdir_lib.load_params(workdir, stage, step, mesh)
    tokenizer = workdir_lib.load_tokenizer(experiment, source=f"{workdir}/config.json")
    vq, vq_variables, _ = workdir_lib.load_vq_tokenizer(experiment, vq_dir)
    where = stage or workdir_lib.latest_stage(workdir, experiment)[0]
    model_config = experiment.model
    return cls(model=SynerGenVL(model_config), variables={"params": params},
               model_config=model_config, experiment=experiment, tokenizer=tokenizer, vq=vq,
               vq_variables=vq_variables, mesh=mesh, batch_size=int(batch_size),
               source=f"{os.path.abspath(workdir)} stage {where}"
                      + (f" step {step}" if step is not None else ""))

  @property
  def context_length(self) -> int:
    return context_length(self.experiment)

  @property
  def image_size(self) -> int:
    return int(self.experiment.data.image_size)

  def _run(self, fn, *args, **kwargs):
    with sharding.mesh_context(self.mesh):
      return fn(*args, **kwargs)

  # ---- understanding --------------------------------------------------------------------
  def encode_tiles(self, image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> VQ codes of its tiles [T, h, w] (the training tiling)."""
    d = self.experiment.data
    tiles, _ = tiling.dynamic_tiles(image, d.image_size, d.max_tiles, d.use_thumbnail)
    return np.asarray(self.vq.encode(self.vq_variables, tiles))

  def understanding_prompt(self, image: np.ndarray, question: str,
                           max_new_tokens: int) -> dict:
    if not isinstance(question, str) or not question.strip():
      raise InputError("the question is empty")
    image = check_image(image)
    example = sequences.build_understanding(self.tokenizer, self.encode_tiles(image), question,
                                            None, tuple(self.model_config.fold),
                                            self.experiment.data.system_prompt)
    n = len(example["tokens"])
    if n + max_new_tokens > self.context_length:
      raise InputError(f"the prompt is {n} tokens (image included) and the answer may take "
                       f"{max_new_tokens} more, but the model's context is "
                       f"{self.context_length} tokens")
    return example

  def answer(self, images: Sequence[np.ndarray], questions: Sequence[str], *,
             max_new_tokens: int = 32, sampling: SamplingConfig = SamplingConfig(),
             seed: int = 0) -> list[str]:
    """One answer per (image, question), greedy by default."""
    if len(images) != len(questions):
      raise InputError(f"{len(images)} images but {len(questions)} questions")
    examples = [self.understanding_prompt(im, q, max_new_tokens)
                for im, q in zip(images, questions)]
    return self.answer_examples(examples, max_new_tokens=max_new_tokens, sampling=sampling,
                                seed=seed)

  def answer_examples(self, examples: Sequence[dict], *, max_new_tokens: int,
                      sampling: SamplingConfig = SamplingConfig(), seed: int = 0) -> list[str]:
    """Answers for prepared understanding prompts (`understanding_prompt`)."""
    tok = self.tokenizer
    # An answer ends at `</s>`, or at `<|im_end|>` where the model continues a conversation.
    stop = tuple(i for i in (tok.eos_id, tok.im_end_id) if i is not None)
    out = []
    for start in range(0, len(examples), self.batch_size):
      chunk = examples[start:start + self.batch_size]
      prompt = pad_prompts(chunk, self.batch_size, tok.pad_id, self.model_config.patch_size)
      res = self._run(generate_text, self.model, self.variables, prompt,
                      jax.random.fold_in(jax.random.key(seed), start),
                      max_new_tokens=int(max_new_tokens), sampling=sampling,
                      eos_id=stop, pad_id=tok.pad_id)
      tokens, lengths = np.asarray(res["tokens"]), np.asarray(res["lengths"])
      for r in range(len(chunk)):
        ids = [int(i) for i in tokens[r, :lengths[r]] if i not in stop]
        out.append(tok.decode(ids).strip())
    return out

  # ---- generation ----------------------------------------------------------------------
  def generation_prompt(self, text: str, uncond: bool = False) -> dict:
    if not uncond and (not isinstance(text, str) or not text.strip()):
      raise InputError("the prompt is empty")
    d = self.experiment.data
    user = sequences.generation_prompt(text, uncond, d.generation_prefix, d.uncond_prompt)
    example = sequences.build_generation(self.tokenizer, None, user,
                                         tuple(self.model_config.fold), d.system_prompt,
                                         uncond=uncond)
    n, image = len(example["tokens"]), self.model_config.patches_per_tile + 2
    if n + image > self.context_length:
      raise InputError(f"the prompt is {n} tokens and the image takes {image} more (folded "
                       f"patches, <eoi>, </s>), but the model's context is "
                       f"{self.context_length} tokens")
    return example

  def generate_codes(self, prompts: Sequence[str], *, seed: int = 0,
                     cfg_scale: float | None = 7.5,
                     sampling: SamplingConfig = SamplingConfig(temperature=1.0)) -> np.ndarray:
    """Code grids [len(prompts), h, w]; row i is sampled with key fold_in(seed, i // batch)."""
    cond = [self.generation_prompt(p) for p in prompts]
    uncond = self.generation_prompt("", uncond=True)
    grids = []
    for start in range(0, len(cond), self.batch_size):
      chunk = cond[start:start + self.batch_size]
      rows = chunk + [chunk[-1]] * (self.batch_size - len(chunk))
      if cfg_scale is not None:
        rows = rows + [uncond] * self.batch_size
      width = PROMPT_BUCKET * math.ceil(max(len(e["tokens"]) for e in rows) / PROMPT_BUCKET)
      prompt = pad_prompts(rows, len(rows), self.tokenizer.pad_id,
                           self.model_config.patch_size, width)
      grid = self._run(generate_image_codes, self.model, self.variables, prompt,
                       jax.random.fold_in(jax.random.key(seed), start),
                       image_id=self.tokenizer.image_id,
                       cfg_scale=None if cfg_scale is None else float(cfg_scale),
                       sampling=sampling)
      grids.append(np.asarray(grid)[:len(chunk)])
    return np.concatenate(grids)

  def _chunked(self, fn, x: np.ndarray) -> np.ndarray:
    """fn over `batch_size`-row chunks (the last one padded): one compile per session."""
    out = []
    for start in range(0, len(x), self.batch_size):
      chunk = x[start:start + self.batch_size]
      pad = self.batch_size - len(chunk)
      if pad:
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
      out.append(np.asarray(fn(self.vq_variables, chunk))[:self.batch_size - pad])
    return np.concatenate(out)

  def encode_images(self, images: np.ndarray) -> np.ndarray:
    """uint8 [N, S, S, 3] at the data image size -> VQ codes [N, h, w]."""
    return self._chunked(self.vq.encode, np.asarray(images))

  def decode_images(self, codes: np.ndarray) -> np.ndarray:
    """VQ codes [N, h, w] -> uint8 images [N, S, S, 3]."""
    return self._chunked(self.vq.decode, np.asarray(codes, np.int32))

  def generate(self, prompts: Sequence[str], *, seed: int = 0, cfg_scale: float | None = 7.5,
               sampling: SamplingConfig = SamplingConfig(temperature=1.0)) -> np.ndarray:
    """uint8 images [len(prompts), H, W, 3]."""
    return self.decode_images(self.generate_codes(prompts, seed=seed, cfg_scale=cfg_scale,
                                                  sampling=sampling))
