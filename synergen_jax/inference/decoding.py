"""KV-cache text decoding: prefill the prompt, then one token per step in a jitted loop.

Prompts are task batches in the batch contract (they may hold folded image tokens),
right-padded: `segment_ids` is 1 on a row's real tokens and 0 on padding, so rows
have their own prompt lengths. Decoding stops for a row at `eos_id` (one id, or a tuple of
stop ids: `</s>` and the chat turn's end `<|im_end|>`) and for the batch when every row has
stopped or `max_new_tokens` is reached.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from synergen_jax import batch as batch_lib
from synergen_jax.model.sampling import SamplingConfig, sample
from synergen_jax.model.dummy import dummy_batch


def init_llm_cache(model: nn.Module, variables, batch_size: int, max_len: int):
  """An empty decoder KV cache for `batch_size` rows of up to `max_len` tokens."""
  batch = dummy_batch(model.config, batch_size, max_len)
  shapes = jax.eval_shape(
      lambda v: model.apply(v, batch, True, method="hidden_states",
                            mutable=["cache"])[1]["cache"], variables)
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def llm_step(model: nn.Module, variables, cache, batch):
  """Runs `batch` ([rows, t] tokens) through the cached decoder: (hidden, new cache)."""
  hidden, mutated = model.apply({**variables, "cache": cache}, batch, True,
                                method="hidden_states", mutable=["cache"])
  return hidden, mutated["cache"]


def text_step_batch(config, tokens: jax.Array, positions: jax.Array) -> dict:
  """A one-token-per-row batch of text tokens. tokens, positions: [rows]."""
  return batch_lib.make((tokens.shape[0], 1), config.patch_size, batch_lib.INPUT_FIELDS,
                        xp=jnp, tokens=tokens[:, None], segment_ids=1,
                        positions=positions[:, None])


def prompt_lengths(prompt: dict) -> jax.Array:
  return jnp.sum(prompt["segment_ids"] > 0, axis=1).astype(jnp.int32)


def last_hidden(hidden: jax.Array, lengths: jax.Array) -> jax.Array:
  """[rows, t, d] -> [rows, d] at each row's last real prompt position."""
  return jnp.take_along_axis(hidden, (lengths - 1)[:, None, None], axis=1)[:, 0]


@functools.partial(jax.jit, static_argnames=("model", "max_new_tokens", "sampling", "eos_id",
                                              "pad_id"))
def generate_text(model: nn.Module, variables, prompt: dict, key: jax.Array, *,
                  max_new_tokens: int, sampling: SamplingConfig = SamplingConfig(),
                  eos_id: int | tuple[int, ...], pad_id: int = 0) -> dict:
  """Returns {"tokens": [rows, max_new_tokens] (pad after `eos_id`), "lengths": [rows]}.

  `eos_id`: the stop id, or a tuple of them. `lengths` counts generated tokens including
  the stop id.
  """
  stop_ids = jnp.asarray(eos_id if isinstance(eos_id, tuple) else (eos_id,), jnp.int32)
  config = model.config
  rows, prompt_len = prompt["tokens"].shape
  lengths = prompt_lengths(prompt)
  cache = init_llm_cache(model, variables, rows, prompt_len + max_new_tokens)
  hidden, cache = llm_step(model, variables, cache, prompt)
  logits = model.apply(variables, last_hidden(hidden, lengths), method="text_logits")

  out = jnp.full((rows, max_new_tokens), pad_id, jnp.int32)
  done = jnp.zeros((rows,), bool)
  count = jnp.zeros((rows,), jnp.int32)

  def cond(carry):
    i, _, _, done, _, _ = carry
    return (i < max_new_tokens) & ~jnp.all(done)

  def body(carry):
    i, cache, logits, done, out, count = carry
    tok = sample(jax.random.fold_in(key, i), logits, sampling)
    tok = jnp.where(done, pad_id, tok)
    out = out.at[:, i].set(tok)
    count = count + (~done).astype(jnp.int32)
    done = done | jnp.any(tok[:, None] == stop_ids[None, :], axis=1)
    hidden, cache = llm_step(model, variables, cache,
                             text_step_batch(config, tok, lengths + i))
    logits = model.apply(variables, hidden[:, 0], method="text_logits")
    return i + 1, cache, logits, done, out, count

  _, _, _, _, out, count = jax.lax.while_loop(
      cond, body, (jnp.int32(0), cache, logits, done, out, count))
  return {"tokens": out, "lengths": count}
