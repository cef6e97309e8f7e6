"""The model side of the server: a loaded `InferenceSession` and its batched calls.

The decoders are the repository's own (`inference.decoding.generate_text`,
`inference.image_generation.generate_image_codes`); this module only vmaps them over
requests, so that every request in a batch keeps its own key, seed and CFG scale and
gets exactly what it would get alone (a batch of requests is a batch of independent
one-request programs, run as one XLA call). Shapes are bucketed so each function
compiles once per bucket:

  rows      the number of requests in the call, rounded up to a bucket (powers of two
            up to `max_batch` by default; missing rows repeat the last request and are
            dropped)
  width     the prompt, right-padded to a multiple of `session.PROMPT_BUCKET` tokens
  answers   max_new_tokens rounded up to a power of two (>= 8) and cut back per request
            (token i is sampled with fold_in(key, i), so a longer run starts the same)
  static    the sampling settings (temperature, top_p) — requests only share a batch
            with requests that use the same ones

The MMoE runs as `mmoe_impl="reference"` (both experts, then select: same parameters and
outputs as `sorted`, whose `ragged_dot` has no vmap rule).

A request's key is `fold_in(key(seed), 0)`, which is what the `answer` and `generate`
CLIs use for their first batch: the server's answer to (image, question, seed) is the
CLI's. CFG scale is a traced value (any float, no recompile); 0 means no guidance (= 1).
"""

import collections
import dataclasses
import functools
import hashlib
import math
import threading
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines.pipeline import sequences
from synergen_jax import sharding
from synergen_jax.inference import session as session_lib
from synergen_jax.inference.decoding import generate_text
from synergen_jax.inference.image_generation import generate_image_codes
from synergen_jax.model import SynerGenVL
from synergen_jax.model.sampling import SamplingConfig

InputError = session_lib.InputError


def pow2_at_least(n: int, lo: int = 1) -> int:
  return max(lo, 1 << max(0, math.ceil(math.log2(max(1, n)))))


@dataclasses.dataclass
class Answer:
  tokens: list[int]          # generated ids, stop id excluded
  finish_reason: str         # "stop" | "length"


class Engine:
  """Loaded model + the batched, bucketed answer / generate calls (thread-safe)."""

  def __init__(self, session: session_lib.InferenceSession, max_batch: int = 8,
               max_new_tokens: int = 64, buckets: Sequence[int] | None = None):
    # `sorted` MMoE (ragged_dot) has no batching rule for vmap; `reference` has the same
    # parameters and outputs (both experts on every token, then select).
    if session.model_config.mmoe_impl != "reference":
      config = dataclasses.replace(session.model_config, mmoe_impl="reference")
      session = dataclasses.replace(session, model=SynerGenVL(config), model_config=config)
    self.session = session
    self.max_batch = int(max_batch)
    self.buckets = tuple(sorted(set(int(b) for b in buckets))) if buckets else tuple(
        1 << i for i in range(self.max_batch.bit_length()) if 1 << i < self.max_batch) + (
            self.max_batch,)
    if self.buckets[-1] != self.max_batch or self.buckets[0] < 1:
      raise ValueError(f"buckets {self.buckets} must be >= 1 and end at max_batch "
                       f"{self.max_batch}")
    tok = session.tokenizer
    self.stop_ids = tuple(i for i in (tok.eos_id, tok.im_end_id) if i is not None)
    self.max_new_tokens = int(max_new_tokens)
    e = session.experiment.eval
    self.default_cfg = float(e.cfg_scale)
    self.default_gen_temperature = float(e.gen_temperature)
    self.gen_top_k = int(e.gen_top_k)
    self.gen_top_p = float(e.gen_top_p)
    self._fns = {}
    self.cache_images = 64
    self._codes_cache = collections.OrderedDict()
    self._cache_lock = threading.Lock()
    self._lock = threading.Lock()  # one model call at a time (the worker is the only caller)
    self.compiles = 0

  @classmethod
  def load(cls, workdir: str, stage: str | None = None, step: int | None = None,
           vq_dir: str | None = None, **kwargs) -> "Engine":
    mesh = sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    session = session_lib.InferenceSession.load(workdir, stage, step, vq_dir, mesh=mesh,
                                                batch_size=1)
    return cls(session, **kwargs)

  # ---- facts ---------------------------------------------------------------------------
  @property
  def image_size(self) -> int:
    return self.session.image_size

  @property
  def context_length(self) -> int:
    return self.session.context_length

  def rows_bucket(self, n: int) -> int:
    return next(b for b in self.buckets if b >= n)

  def steps_bucket(self, max_new_tokens: int) -> int:
    """Decode steps compiled for a request of `max_new_tokens`: a power of two >= 8,
    capped at the server's max_new_tokens."""
    return max(int(max_new_tokens),
               min(pow2_at_least(max_new_tokens, 8), self.max_new_tokens))

  def warmup(self, max_new_tokens: int = 32) -> None:
    """Compiles every rows bucket of greedy answering (a `max_new_tokens` answer) and of
    generation at the default temperature, so that first requests do not wait for XLA."""
    s = self.image_size
    example = self.answer_prompt(np.full((s, s, 3), 128, np.uint8), [("warm up", None)],
                                 min(max_new_tokens, self.max_new_tokens))
    gen = self.generation_prompt("warm up")
    for rows in self.buckets:
      self.answer_batch([example] * rows, [0] * rows,
                        [min(max_new_tokens, self.max_new_tokens)] * rows)
      self.generate_batch([gen] * rows, [0] * rows, [self.default_cfg] * rows,
                          self.default_gen_temperature)

  # ---- preparing requests (any thread) ---------------------------------------------------
  def answer_prompt(self, image: np.ndarray | None, turns: Sequence[tuple[str, str | None]],
                    max_new_tokens: int) -> dict:
    """A conversation (one image or none; the last turn's answer None) -> prompt example.
    Raises InputError (empty question, prompt + answer longer than the context)."""
    s = self.session
    for q, _ in turns:
      if not q.strip():
        raise InputError("a user message is empty")
    codes = None
    if image is not None:
      codes = self.encode_image(image)
    try:
      example = sequences.build_conversation(s.tokenizer, codes, list(turns),
                                             tuple(s.model_config.fold),
                                             s.experiment.data.system_prompt)
    except ValueError as e:
      raise InputError(str(e)) from None
    n = len(example["tokens"])
    if n + max_new_tokens > self.context_length:
      raise InputError(f"the prompt is {n} tokens (image included) and max_tokens is "
                       f"{max_new_tokens}, but the model's context is {self.context_length} "
                       f"tokens")
    return example

  def encode_image(self, image: np.ndarray) -> np.ndarray:
    """VQ codes of an image's tiles, remembered for the last `cache_images` images (a
    conversation sends its image again with every turn)."""
    image = session_lib.check_image(image)
    key = hashlib.sha256(image.tobytes() + repr(image.shape).encode()).digest()
    with self._cache_lock:
      codes = self._codes_cache.get(key)
      if codes is not None:
        self._codes_cache.move_to_end(key)
        return codes
    codes = self.session.encode_tiles(image)
    with self._cache_lock:
      self._codes_cache[key] = codes
      while len(self._codes_cache) > self.cache_images:
        self._codes_cache.popitem(last=False)
    return codes

  def generation_prompt(self, text: str) -> dict:
    return self.session.generation_prompt(text)

  # ---- compiled functions --------------------------------------------------------------
  def _answer_fn(self, max_new_tokens: int, sampling: SamplingConfig):
    key = ("answer", max_new_tokens, sampling)
    if key not in self._fns:
      s = self.session
      one = functools.partial(generate_text, s.model, max_new_tokens=max_new_tokens,
                              sampling=sampling, eos_id=self.stop_ids,
                              pad_id=s.tokenizer.pad_id)
      self._fns[key] = jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))
    return self._fns[key]

  def _generate_fn(self, sampling: SamplingConfig):
    key = ("generate", sampling)
    if key not in self._fns:
      s = self.session
      # The decoder's own code with the CFG scale traced (its jit makes it static).
      raw = generate_image_codes.__wrapped__

      def one(variables, prompt, key, cfg):
        return raw(s.model, variables, prompt, key, image_id=s.tokenizer.image_id,
                   cfg_scale=cfg, sampling=sampling)

      self._fns[key] = jax.jit(jax.vmap(one, in_axes=(None, 0, 0, 0)))
    return self._fns[key]

  def _pad(self, examples: Sequence[dict], rows_each: int) -> dict:
    """examples -> per-request prompts [requests, rows_each, width] (rows_each examples
    per request, consecutive)."""
    s = self.session
    width = session_lib.PROMPT_BUCKET * math.ceil(
        max(len(e["tokens"]) for e in examples) / session_lib.PROMPT_BUCKET)
    batch = session_lib.pad_prompts(list(examples), len(examples), s.tokenizer.pad_id,
                                    s.model_config.patch_size, width)
    return {k: v.reshape((-1, rows_each) + v.shape[1:]) for k, v in batch.items()}

  @staticmethod
  def _keys(seeds: Sequence[int]) -> jax.Array:
    return jnp.stack([jax.random.fold_in(jax.random.key(int(s)), 0) for s in seeds])

  def _fill(self, items: list, rows: int) -> list:
    return list(items) + [items[-1]] * (rows - len(items))

  # ---- batched calls (the worker thread) -------------------------------------------------
  def answer_batch(self, examples: Sequence[dict], seeds: Sequence[int],
                   max_new_tokens: Sequence[int], temperature: float = 0.0,
                   top_p: float = 1.0) -> list[Answer]:
    """One answer per example; every example gets what it would get alone."""
    n = len(examples)
    rows = self.rows_bucket(n)
    steps = self.steps_bucket(max(max_new_tokens))
    sampling = SamplingConfig(temperature=float(temperature), top_p=float(top_p))
    prompt = self._pad(self._fill(list(examples), rows), 1)
    keys = self._keys(self._fill(list(seeds), rows))
    with self._lock, sharding.mesh_context(self.session.mesh):
      res = self._answer_fn(steps, sampling)(self.session.variables, prompt, keys)
      tokens, lengths = np.asarray(res["tokens"])[:, 0], np.asarray(res["lengths"])[:, 0]
    out = []
    for r in range(n):
      ids = [int(i) for i in tokens[r, :min(int(lengths[r]), max_new_tokens[r])]]
      stopped = bool(ids) and ids[-1] in self.stop_ids
      if stopped:
        ids = ids[:-1]
      out.append(Answer(ids, "stop" if stopped else "length"))
    return out

  def generate_batch(self, examples: Sequence[dict], seeds: Sequence[int],
                     cfg_scales: Sequence[float], temperature: float) -> np.ndarray:
    """uint8 images [len(examples), S, S, 3]; each with its own seed and CFG scale."""
    s = self.session
    n = len(examples)
    rows = self.rows_bucket(n)
    uncond = s.generation_prompt("", uncond=True)
    pairs = []
    for e in self._fill(list(examples), rows):
      pairs += [e, uncond]
    prompt = self._pad(pairs, 2)
    keys = self._keys(self._fill(list(seeds), rows))
    cfg = jnp.asarray([1.0 if c == 0 else float(c) for c in self._fill(list(cfg_scales), rows)],
                      jnp.float32)
    sampling = SamplingConfig(temperature=float(temperature), top_k=self.gen_top_k,
                              top_p=self.gen_top_p)
    with self._lock, sharding.mesh_context(s.mesh):
      grids = self._generate_fn(sampling)(s.variables, prompt, keys, cfg)  # [rows, 1, h, w]
      grids = np.asarray(grids)[:, 0]
    with self._lock:
      images = np.asarray(s.vq.decode(s.vq_variables, grids))
    return images[:n]

  def describe(self) -> dict:
    s = self.session
    return {"source": s.source, "image_size": self.image_size,
            "context_length": self.context_length, "max_batch": self.max_batch,
            "max_new_tokens": self.max_new_tokens, "default_cfg_scale": self.default_cfg,
            "default_gen_temperature": self.default_gen_temperature}
