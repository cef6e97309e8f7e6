"""The CPU demo: the whole SynerGen-VL recipe at toy scale on the embedded dataset.

  python -m synergen_jax.demo --workdir=runs/demo      # data, tokenizers, all stages, report
  python -m synergen_jax.train --config=experiments/demo.py --workdir=runs/demo  # stages only

The world (issue 26): 64 px scenes of 1-3 objects, each centred in one of the 4 x 4 cells
of 16 px that one folded image token covers (`demo.cell` = VQ downsampling 4 x fold 4), so
the fold MLP sees each object at one offset of its codes instead of 256 (the free world's
shift problem: docs/LEARNING.md). Shape x colour x size, held-out pairs in the
compositional split, text glyphs and every question type stay.

Stages (METHOD.md section 8 in miniature; every stage validated on the same batches):
  text    pretrains the LLM on text (synergen_text + the scenes' captions and chat QA);
          stands in for the pretrained LLM that real runs import
  bind    the first multimodal stage, a curriculum step: every parameter (vision FFNs
          initialised from the text FFNs, VQ-code tables from the VQ codebook) trained on
          colour and shape questions only (`und_type_weights`), one question per 48-token
          row, 32 rows a step, no text replay: the rows of the grounding probe, where
          names are bound to the tokens' attributes in ~19k answers (docs/LEARNING.md:
          the phase change needs distinct images, the LLM's FFNs and no text beside)
  genbind the generator's binding step: every parameter trained on generation only, the
          captions of one-object scenes (`data.gen_object_keep`), one image per 64-token
          row, 24 rows a step, each patch's first code weighing 16 in the image loss
          (`model.image_first_code_weight`): before it the generator ignored its prompt
          (benchmarks/prompt_dependence.py; docs/LEARNING.md)
  bind2   the same rows as bind with position and existence questions beside colour and
          shape (after genbind: it also restores what genbind moved on the understanding
          side)
  retext  text only again, briefly: the text LLM the bind stages overwrote comes back
  stage2  vision + self-attention; + generation; every question type as conversations
          (up to 4 turns about one image, colour and shape twice as likely), 20% captions
  sft     everything; conversations (20% captions) with 4 rows of text replay beside
The model is `configs.models.demo()` made smaller (d 128) so that the job fits 15 minutes
on a 2-core CPU. 64 px images -> 16 x 16 VQ codes of 4 x 4 px (experiments/vq_demo_f4.py:
its reconstructions score 0.96 GenEval-style, the 8x VQ's 0.76, the images 0.99)
-> 4 x 4 fold -> 16 image tokens; the unfolding head predicts 16 codes per token.
`experiments/demo_long.py` runs the same recipe longer.
"""

import ml_collections

from synergen_jax.configs import models
from synergen_jax import experiment

from data_pipelines.scenes import tfds_scenes

TRAIN_SIZE, EVAL_SIZE = 12000, 300  # binding needs distinct scenes (6,000: colour 0.76)
CELL, MAX_OBJECTS = 16, 3   # objects in the fold's token cells; 1-3 per scene
STEPS = {"bind": 450, "genbind": 120, "bind2": 200, "retext": 70, "stage2": 250,
         "sft": 200}  # (text: 150)
# Question mixes (data.und_type_weights): the binding curriculum asks colour and shape
# only, then position and existence beside them (the other name -> its-token lookups);
# later stages ask every type, colour and shape twice as often.
BINDING = (("color", 1.0), ("shape", 1.0))
BINDING2 = BINDING + (("position", 1.0), ("existence", 1.0))
MIX = (("color", 2.0), ("shape", 2.0), ("count", 1.0), ("position", 1.0),
       ("relation", 1.0), ("existence", 1.0), ("text", 1.0))


def get_config() -> ml_collections.ConfigDict:
  model = models.demo()
  model.update(dict(embed_dim=128, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=32,
                    mlp_dim=512, code_embed_dim=32, max_gen_patches=32,
                    tile_grid=(16, 16), fold=(4, 4),
                    loss_chunk_size=128))
  # The fold's fc1 starts slot-shared (docs/LEARNING.md: on this world it leaves colour and
  # shape where they were and lifts the generated colours, 0.28 -> 0.47).
  model.fold_slot_shared_init = True
  # Each patch's first code weighs 16 in the image loss: the head predicts it from the LLM
  # state alone, so it carries what the prompt decides for the patch (docs/LEARNING.md).
  model.image_first_code_weight = 16.0
  model.head.update(dict(num_layers=2, embed_dim=128, num_heads=4, num_kv_heads=2,
                         head_dim=32, mlp_dim=256))
  config = experiment.base_config(model)
  config.seed = 0
  config.mesh.shape = (1, -1, 1)
  config.tokenizer = "{workdir}/data/tokenizer.model"
  config.vq_tokenizer = "{workdir}/vq"
  d = config.data
  d.source.name = "synergen_scenes/" + tfds_scenes.config_name(64, TRAIN_SIZE, EVAL_SIZE,
                                                                CELL, MAX_OBJECTS)
  d.source.data_dir = "{workdir}/data/tfds"
  d.pretokenized_dir = "{workdir}/data/pretokenized"
  d.image_size, d.vq_downsample = 64, 4  # the pipeline folds by model.fold
  d.num_shards, d.encode_batch_size = 4, 256
  d.understanding.update(dict(batch_size=8, seq_len=128))
  d.generation.update(dict(batch_size=8, seq_len=128))
  d.prefetch_buffer = 2
  t = config.text_data
  t.tfds_name, t.data_dir = "synergen_text", "{workdir}/data/tfds"
  t.batch_size, t.seq_len = 8, 128

  config.stage_order = ("text", "bind", "genbind", "bind2", "retext", "stage2", "sft")
  common = dict(warmup_steps=20, b1=0.9, b2=0.95, eps=1e-8, clip_norm=1.0)
  # Questions come as conversations: up to 4 question/answer turns about one image per
  # understanding example (4x the answers per image of one question per image).
  turns = dict(und_qa_turns=4)
  # Text replay: rows of text beside the vision tasks once the LLM's own weights train,
  # so its text skills survive (METHOD.md: SFT mixes text data).
  replay = dict(tasks=("understanding", "generation", "text"), text_data=dict(batch_size=4))
  config.stages.text = experiment.make_stage(
      "text", ("llm", "llm_attention"), 150,
      optimizer=dict(common, lr=3e-3, schedule="cosine", end_lr_frac=0.1, weight_decay=0.01))
  config.stages.bind = experiment.make_stage(
      "multimodal", ("vision", "llm_attention", "llm"), STEPS["bind"],
      vision_ffn_from_text=True, code_embed_from_vq=True, tasks=("understanding",),
      optimizer=dict(common, lr=1e-3, schedule="constant", weight_decay=0.0),
      data=dict(und_caption_prob=0.0, und_type_weights=BINDING, und_qa_turns=1,
                understanding=dict(batch_size=32, seq_len=48)))  # its rows: 44-47 tokens
  # The generator's binding step: the captions of one-object scenes only (the simplest
  # prompt -> patch mapping), every parameter; without it the images ignore their prompts.
  config.stages.genbind = experiment.make_stage(
      "multimodal", ("vision", "llm_attention", "llm"), STEPS["genbind"],
      tasks=("generation",), max_gen_patches=16,  # one 16-patch image per row
      optimizer=dict(common, lr=1e-3, schedule="constant", weight_decay=0.0),
      data=dict(gen_object_keep=((2, 0.0), (3, 0.0)),
                generation=dict(batch_size=24, seq_len=64)))  # its examples: ~51 tokens
  # The second binding step: position and existence join colour and shape (alone they
  # bind in the same steps but colour and shape are forgotten: docs/LEARNING.md).
  config.stages.bind2 = experiment.make_stage(
      "multimodal", ("vision", "llm_attention", "llm"), STEPS["bind2"],
      tasks=("understanding",),
      optimizer=dict(common, lr=1e-3, schedule="constant", weight_decay=0.0),
      data=dict(und_caption_prob=0.0, und_type_weights=BINDING2, und_qa_turns=1,
                understanding=dict(batch_size=32, seq_len=48)))
  config.stages.retext = experiment.make_stage(
      "text", ("llm", "llm_attention"), STEPS["retext"],
      optimizer=dict(common, warmup_steps=10, lr=1e-3, schedule="cosine", end_lr_frac=0.1,
                     weight_decay=0.01))
  config.stages.stage2 = experiment.make_stage(
      "multimodal", ("vision", "llm_attention"), STEPS["stage2"],
      optimizer=dict(common, lr=7e-4, schedule="cosine", end_lr_frac=0.1, weight_decay=0.05),
      data=dict(und_caption_prob=0.2, und_type_weights=MIX, **turns))
  config.stages.sft = experiment.make_stage(
      "multimodal", ("vision", "llm_attention", "llm"), STEPS["sft"],
      optimizer=dict(common, lr=4e-4, schedule="cosine", end_lr_frac=0.1, weight_decay=0.01),
      data=dict(und_caption_prob=0.2, und_type_weights=MIX, **turns), **replay)
  config.train.update(dict(log_every=10, eval_every=60, eval_batches=4, checkpoint_every=50,
                           keep_checkpoints=2))

  # The demo job (synergen_jax/demo.py): dataset sizes, tokenizer, VQ tokenizer training.
  config.demo = ml_collections.ConfigDict(dict(
      train_size=TRAIN_SIZE, eval_size=EVAL_SIZE, image_size=64, vocab_size=1024,
      cell=CELL, max_objects=MAX_OBJECTS,  # the scene world (data_pipelines/scenes/render.py)
      vq_config="vq_demo_f4.py",  # next to this file
      # The VQ trains on 32 px crops around an object (`vq_crop`): the conv net's cost is
      # per pixel and most pixels are background. On 256 validation scenes, objects
      # recovered from the reconstructions: whole images, 1,600 steps 97.5% (~240 s);
      # crops, 1,600 steps 95.2%, 2,400 steps 98.5% (~120 s) (docs/LEARNING.md).
      vq_steps=2400, vq_crop=32,
      vq_eval_images=64,
  ))
  return config
