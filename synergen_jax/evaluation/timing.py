"""Image-generation time with token folding vs the no-fold baseline (METHOD.md section 9).

Both models share every size except the fold: the folded one runs one LLM step per
m x n patch, the baseline (m = n = 1, as Emu3 / Chameleon) one LLM step per code;
the unfolding head decodes m*n codes per step in both. Timing does not depend on the
weights, so the baseline uses a random initialisation. Compile time is excluded
(one warm-up call each), the same prompts and batch are used, and both are timed in
the same process, alternating.
"""

import dataclasses
import time

import jax

from synergen_jax import model_init
from synergen_jax import sharding
from synergen_jax.inference.image_generation import generate_image_codes
from synergen_jax.model import SynerGenVL


def _timed(fn, repeats: int) -> float:
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - t)
  return best


def no_fold_twin(model_config, mesh, seed: int = 0):
  """(model, variables) of the same sizes with fold (1, 1), randomly initialised."""
  h, w = model_config.tile_grid
  return random_model(dataclasses.replace(model_config, fold=(1, 1), max_gen_patches=h * w),
                      mesh, seed)


def random_model(cfg, mesh, seed: int = 0):
  """(model, variables) of a config, randomly initialised on `mesh`."""
  return SynerGenVL(cfg), {"params": model_init.random_params(cfg, mesh, seed)}


def fold_vs_no_fold(model, variables, prompt: dict, image_id: int, mesh, *, cfg_scale,
                    sampling, repeats: int = 2) -> dict:
  """Seconds per generated image and LLM steps per image, folded vs no-fold."""
  twin, twin_vars = no_fold_twin(model.config, mesh)
  key = jax.random.key(0)
  rows = prompt["tokens"].shape[0]
  images = rows // 2 if cfg_scale is not None else rows
  out = {}
  with sharding.mesh_context(mesh):
    for name, m, v in (("fold", model, variables), ("no_fold", twin, twin_vars)):
      # A text-only prompt: its (all-zero) image_codes just take the model's m*n width.
      p = dict(prompt, image_codes=prompt["image_codes"][..., :m.config.patch_size])
      call = lambda m=m, v=v, p=p: generate_image_codes(m, v, p, key, image_id=image_id,
                                                        cfg_scale=cfg_scale,
                                                        sampling=sampling)
      t = time.perf_counter()
      jax.block_until_ready(call())
      out[f"{name}_compile_and_first_s"] = time.perf_counter() - t
      out[f"{name}_s_per_image"] = _timed(call, repeats) / images
      out[f"{name}_llm_steps_per_image"] = m.config.patches_per_tile
  out["speedup"] = out["no_fold_s_per_image"] / out["fold_s_per_image"]
  out["images_per_call"] = images
  return out
