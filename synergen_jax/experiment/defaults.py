"""Every experiment field and its default: the one home of each default.

The defaults are ml_collections ConfigDicts, so experiment files (`experiments/*.py`,
configs as code) start from them and override fields, and a field a default does not
have is an unknown field (`resolved.resolve`). What each field means: the comment above
it in its typed dataclass (`resolved.py`). Three sections keep their defaults beside the
code that owns them: `data` and `text_data` in `data_pipelines/config.py` (the data
pipeline reads them), a stage's `optimizer` in `state/optimizer.py`, and `model` in
`model/config.ModelConfig` (`configs/models.py` presets start from it).
"""

import ml_collections

from data_pipelines import config as data_config_lib
from data_pipelines.config import default_text_data_config
from synergen_jax.model.param_groups import GROUPS
from synergen_jax.state.optimizer import SCHEDULES, default_optimizer_config

STAGE_KINDS = ("multimodal", "text")
EVAL_SETS = ("understanding", "generation", "text")
MULTIMODAL_TASKS = ("understanding", "generation")
TOP_LEVEL = ("seed", "model", "mesh", "tokenizer", "vq_tokenizer", "data", "text_data",
             "init_params", "stage_order", "stages", "train", "eval", "demo")


def default_stage_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      kind="multimodal",        # "multimodal" (understanding + generation) | "text"
      tasks=(),                 # multimodal: train these tasks (() = understanding +
                                # generation); "text" adds text replay (text_data)
      init_from="previous",     # "previous" | "scratch" | a params checkpoint directory
      vision_ffn_from_text=False,  # copy each layer's text FFN into its vision FFN first
      code_embed_from_vq=False,  # start the VQ-code tables from the VQ codebook (config.
                                 # vq_tokenizer; training/vq_code_init.py)
      trainable=tuple(GROUPS),  # parameter groups trained (model/param_groups.py)
      steps=100,
      grad_accum_steps=1,       # micro-batches per step (exact: losses are sums)
      max_gen_patches=0,        # this stage's per-row buffer of image targets for the
                                # unfolding head (0 = model.max_gen_patches): rows that
                                # hold fewer patches run the head on padding otherwise
      text_loss_weights=(),     # ((task, weight), ...): the text loss as the weighted mean
                                # of each task's own mean (every task of the step listed);
                                # () = one mean over all tasks' text targets
      optimizer=default_optimizer_config(),
      data=ml_collections.ConfigDict(),       # overrides of config.data for this stage
      text_data=ml_collections.ConfigDict(),  # overrides of config.text_data
  ))


def default_train_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      log_every=10,
      eval_every=0,             # periodic validation every N steps (0 = end of stage only)
      eval_batches=4,           # batches per validation set
      eval_sets=EVAL_SETS,      # validation sets evaluated at the end of every stage
      checkpoint_every=100,
      keep_checkpoints=2,
      async_checkpoints=True,
      peak_flops_per_device=0.0,  # 0 = from the device kind (CPU: measured matmul peak)
      compilation_cache=True,   # persistent XLA cache in {workdir}/jax_cache
      input_streams=0,          # input streams per global batch (0: one per process); the
                                # data order depends on it, not on the process count
      xla_compiler_options=ml_collections.ConfigDict(),  # passed to jax.jit (train + eval)
  ))


def default_eval_config() -> ml_collections.ConfigDict:
  """What `synergen_jax.evaluate` measures (the `eval` section).

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


def base_config(model: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """An experiment with every default; experiment files fill in the rest."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.model = model
  c.mesh = ml_collections.ConfigDict(dict(shape=(1, -1, 1)))
  c.tokenizer = "data/tokenizer/synergen.model"
  c.vq_tokenizer = ""
  c.data = data_config_lib.default_data_config()
  c.text_data = default_text_data_config()
  c.init_params = ""
  c.stage_order = ()
  c.stages = ml_collections.ConfigDict()
  c.train = default_train_config()
  c.eval = default_eval_config()
  return c


def default_demo_config() -> ml_collections.ConfigDict:
  """The defaults of the optional `demo` section (the demo experiment sets the rest:
  train_size, eval_size, image_size, vocab_size, vq_config, vq_steps, vq_eval_images;
  vq_crop: the VQ trains on crops of this many pixels around objects, 0 = whole images)."""
  return ml_collections.ConfigDict(dict(cell=0, max_objects=4, vq_crop=0))
