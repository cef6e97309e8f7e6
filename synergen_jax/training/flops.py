"""Analytic model FLOPs of a train step, device peak FLOP/s, and MFU.

Model FLOPs count the useful matmuls of one step (2 FLOPs per multiply-add) from the
batch's counts, not what an implementation happens to compute:
  per non-pad position: attention q/k/v/o projections, the FFN of its own expert (vision
      for folded image tokens, text otherwise), causal attention scores over its segment
      (QK^T and AV: 2 * 2 * heads * head_dim * (position + 1));
  per folded image position: the fold MLP (m*n*d_v -> d -> d);
  per text target: the LM head (d x (vocab + new tokens));
  per image-target patch: the head's input projection, and per code (m*n of them) the
      head's layers (projections, MLP, attention over the patch's slots) + classifier.
Backward: matmuls with a trainable weight cost 2x forward (input and weight gradients),
matmuls with a frozen weight 1x (input gradient only: every stage has trainable
parameters below every layer), weight-less attention-score matmuls 2x.
Padding, recomputation (remat) and embedding lookups are not counted.
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from synergen_jax import hardware
from synergen_jax.model import ModelConfig


def _mult(trainable: bool) -> int:
  return 3 if trainable else 2


def step_flops_by_part(config: ModelConfig, counts: dict, trainable_groups) -> dict:
  """Model FLOPs of one train step (see the module doc), per model part: the parts are
  those `tpu.hlo_stats.model_part` sorts a compiled program's matmuls into, so that the
  two compare part by part (`tpu/analysis.py`).

  counts: {task/tokens, task/image_positions, task/context_sum, task/text_tokens
  (text target weight), task/image_codes (image target codes)} summed over tasks is
  enough; per-task keys are summed here.
  """
  c, h = config, config.head
  g = set(trainable_groups)
  tasks = {k.split("/")[0] for k in counts if "/" in k}

  def total(name):
    return float(sum(counts.get(f"{t}/{name}", 0.0) for t in tasks))

  def m(group):
    return _mult(group in g)

  tokens, image_pos = total("tokens"), total("image_positions")
  context, text_targets = total("context_sum"), total("text_tokens")
  codes = total("image_codes")
  patches = codes / c.patch_size
  d, hd = c.embed_dim, h.embed_dim
  attn_proj = 2 * d * c.head_dim * c.num_heads + 2 * d * c.head_dim * c.num_kv_heads  # q,o + k,v
  ffn = 3 * d * c.mlp_dim
  vision_ffn = "vision" if c.vision_experts else "llm"
  head_proj = 2 * hd * h.head_dim * h.num_heads + 2 * hd * h.head_dim * h.num_kv_heads
  slots_ctx = (c.patch_size + 1) / 2
  # Forward = 2 * MACs; attention scores (QK^T, AV) have no weight: always 3x forward.
  return {
      "attention projections": c.num_layers * tokens * 2 * attn_proj * m("llm_attention"),
      "FFN experts (MMoE)": (c.num_layers * (tokens - image_pos) * 2 * ffn * m("llm")
                             + c.num_layers * image_pos * 2 * ffn * m(vision_ffn)),
      "attention kernels (splash)": c.num_layers * context * 2 * 2 * c.num_heads * c.head_dim * 3,
      "token fold MLP": image_pos * 2 * (c.patch_size * c.code_embed_dim * d + d * d) * m("vision"),
      "LM head (vocabulary)": text_targets * 2 * d * c.total_vocab * m("llm"),
      # Unfolding head on image-target patches: input projection, then per code its
      # layers and the attention over the patch's slots.
      "unfold head": (patches * 2 * d * hd * m("vision")
                      + codes * 2 * h.num_layers * (head_proj + 3 * hd * h.mlp_dim) * m("vision")
                      + codes * h.num_layers * 2 * 2 * h.num_heads * h.head_dim * slots_ctx * 3),
      "head classifier (codebook)": codes * 2 * hd * c.codebook_size * m("vision"),
  }


def step_flops(config: ModelConfig, counts: dict, trainable_groups) -> float:
  """Model FLOPs of one train step: the sum of `step_flops_by_part`."""
  return float(sum(step_flops_by_part(config, counts, trainable_groups).values()))


@functools.lru_cache(maxsize=None)
def measured_matmul_peak(n: int = 1024, repeats: int = 5) -> float:
  """FLOP/s of a jitted f32 [n, n] @ [n, n] on the first device (best of `repeats`)."""
  device = jax.devices()[0]
  x = jax.device_put(jnp.ones((n, n), jnp.float32), device)
  f = jax.jit(lambda a: a @ a)
  f(x).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    f(x).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2.0 * n ** 3 / best


def device_peak_flops(override: float = 0.0) -> tuple[float, str]:
  """(peak FLOP/s of one device, where the number comes from)."""
  if override and override > 0:
    return float(override), "config"
  device = jax.devices()[0]
  chip = hardware.chip_for(device.device_kind)
  if chip is not None:
    return chip.peak_flops, f"spec sheet ({device.device_kind}, bf16 dense)"
  # CPU (or unknown): a measured f32 matmul of one device, shared by the local devices
  # that the host's cores are split over (fake devices in tests).
  per_process = measured_matmul_peak()
  return per_process / max(jax.local_device_count(), 1), "measured f32 matmul"


def mfu(flops_per_s: float, peak_per_device: float, num_devices: int) -> float:
  return float(flops_per_s / max(peak_per_device * num_devices, 1e-9))


def total_counts(metrics_list: list[dict]) -> dict:
  """Sums the count metrics of several steps (for a log interval)."""
  keys = [k for k in metrics_list[0] if k.endswith(("/tokens", "/image_positions",
                                                     "/context_sum", "/text_tokens",
                                                     "/image_codes"))]
  return {k: float(np.sum([m[k] for m in metrics_list])) for k in keys}
