"""The `eval` section of an experiment config: what `synergen_jax.evaluate` measures.

  vqa_splits            scene-dataset splits scored by VQA exact match
  vqa_questions         questions per split (every question of the first records, in
                        order, until this many; 0 = all)
  swapped_image_control  also ask every validation question about another image of the
                        split (`vqa/swapped_image/...`): what VQA a model keeps without
                        looking (close to the majority baseline for one that looks)
  max_answer_tokens     decoding budget of an answer (stops earlier at `</s>`)
  gen_split             split whose scene graphs give the generation prompts
  gen_prompts           prompts per GenEval category
  gen_samples           images sampled per prompt
  cfg_scale             classifier-free guidance scale (METHOD.md section 9; 0 = no CFG)
  gen_temperature, gen_top_k, gen_top_p      sampling of image codes
  text_batches          batches of the text-only split for perplexity / accuracy
  batch_size            rows per inference call (prompts are padded to it: one compile)
  grid_prompts          prompts shown in the PNG grid (one row each, gen_samples columns)
  timing_images         images generated to time folded vs no-fold generation (0 = skip)
  seed
"""

import ml_collections

from synergen_jax.inference.sampling import SamplingConfig


def default_eval_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      vqa_splits=("validation", "test", "compositional"),
      vqa_questions=400,
      swapped_image_control=True,
      max_answer_tokens=12,
      gen_split="validation",
      gen_prompts=16,
      gen_samples=4,
      cfg_scale=7.5,
      gen_temperature=1.0,
      gen_top_k=0,
      gen_top_p=1.0,
      text_batches=8,
      batch_size=32,
      grid_prompts=8,
      timing_images=8,
      seed=0,
  ))


def eval_config(config) -> ml_collections.ConfigDict:
  """config.eval over the defaults; unknown fields and bad values are errors."""
  out = default_eval_config()
  given = config.get("eval", None) or ml_collections.ConfigDict()
  for k in given.keys():
    if k not in out:
      raise ValueError(f"config.eval.{k}: unknown field; known: {sorted(out.keys())}")
  out.update(given.to_dict() if hasattr(given, "to_dict") else dict(given))
  check(out)
  return out


def check(e) -> None:
  def need(cond, field, msg):
    if not cond:
      raise ValueError(f"config.eval.{field}: {msg}")
  for f in ("vqa_questions", "text_batches", "timing_images", "grid_prompts"):
    need(int(e[f]) >= 0, f, f"{e[f]}: expected >= 0")
  for f in ("max_answer_tokens", "gen_prompts", "gen_samples", "batch_size"):
    need(int(e[f]) >= 1, f, f"{e[f]}: expected >= 1")
  need(e.cfg_scale >= 0, "cfg_scale", f"{e.cfg_scale}: expected >= 0 (0 = no guidance)")
  need(len(e.vqa_splits) == len(set(e.vqa_splits)), "vqa_splits", "duplicate splits")
  try:
    gen_sampling(e)
  except ValueError as err:
    raise ValueError(f"config.eval: {err}") from None


def gen_sampling(e) -> SamplingConfig:
  return SamplingConfig(temperature=float(e.gen_temperature), top_k=int(e.gen_top_k),
                        top_p=float(e.gen_top_p))


def cfg_scale(e) -> float | None:
  return float(e.cfg_scale) if e.cfg_scale > 0 else None
