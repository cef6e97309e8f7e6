"""Image-generation speed: token folding vs the no-fold baseline at the same image size.

  python benchmarks/image_generation.py [--config demo|qwen2_0_5b] [--images 8] [--cfg 7.5]

Builds the model config (random weights: speed does not depend on them) and its
m = n = 1 twin, and times `generate_image_codes` for the same text prompts in one
process (compile excluded, best of --repeats). The folded model runs one LLM step per
m x n patch, the baseline one per code; the paper's promise is ~m*n fewer LLM steps.
"""

import argparse

import jax
import numpy as np

from synergen_jax import batch as batch_lib
from synergen_jax import sharding
from synergen_jax.configs import models
from synergen_jax.evaluation import timing
from synergen_jax.inference.session import pad_prompts
from synergen_jax.model.sampling import SamplingConfig
from synergen_jax.model import ModelConfig


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--config", default="demo", choices=("demo", "qwen2_0_5b", "tiny"))
  ap.add_argument("--images", type=int, default=8)
  ap.add_argument("--prompt_len", type=int, default=24)
  ap.add_argument("--cfg", type=float, default=7.5, help="0 = no guidance")
  ap.add_argument("--repeats", type=int, default=3)
  args = ap.parse_args()

  cfg = ModelConfig.from_config_dict(getattr(models, args.config)())
  mesh = sharding.make_mesh((1, -1, 1))
  model, variables = timing.random_model(cfg, mesh, seed=1)
  scale = args.cfg if args.cfg > 0 else None
  rows = args.images * (2 if scale is not None else 1)
  rng = np.random.default_rng(0)
  example = batch_lib.make((args.prompt_len,), cfg.patch_size, batch_lib.EXAMPLE_FIELDS,
                           tokens=rng.integers(3, cfg.vocab_size, args.prompt_len))
  prompt = pad_prompts([example], rows, 0, cfg.patch_size)
  image_id = cfg.vocab_size + 3
  out = timing.fold_vs_no_fold(model, variables, prompt, image_id, mesh, cfg_scale=scale,
                               sampling=SamplingConfig(temperature=1.0),
                               repeats=args.repeats)
  h, w = cfg.tile_grid
  print(f"{args.config}: {h} x {w} codes per image, fold {tuple(cfg.fold)}, {args.images} images "
        f"per call, CFG {'off' if scale is None else scale}, {jax.device_count()} x "
        f"{jax.devices()[0].device_kind}")
  print(f"  folded   {out['fold_llm_steps_per_image']:5d} LLM steps/image  "
        f"{out['fold_s_per_image'] * 1e3:9.2f} ms/image")
  print(f"  no fold  {out['no_fold_llm_steps_per_image']:5d} LLM steps/image  "
        f"{out['no_fold_s_per_image'] * 1e3:9.2f} ms/image")
  print(f"  speed-up {out['speedup']:.2f}x (LLM steps ratio "
        f"{out['no_fold_llm_steps_per_image'] / out['fold_llm_steps_per_image']:.0f}x)")


if __name__ == "__main__":
  main()
