"""The data config (ml_collections) with the CPU demo defaults.

Fields (all read by `pipeline/`: pretokenize, examples, streams, multimodal; nothing else
reads them):

  source.kind            where raw images + text come from (sources/readers.py, docs/DATA.md):
                         "tfds" | "array_record" | "webdataset" | "parquet" | "llava"
  source.name            TFDS name (with config), e.g. "synergen_scenes/64px"
  source.data_dir        TFDS data dir, or for the file kinds a glob of the files
                         (`{split}` is replaced by the split being pretokenized)
  source.image_root      directory that image paths are relative to (llava; `{split}`
                         replaced); "" = as written
  source.split           split to pretokenize (the pipeline's split is an argument)
  source.fields          field mapping (sources/field_mapping.py): image, captions, questions,
                         answers, question_types, scene_graph, id, conversation; each a
                         key, a dotted path (json.caption) or alternatives (jpg|png);
                         None (the default) = the kind's default, "" = no such field
                         (a caption/question field may hold one string or a list)
  pretokenized_dir       where pretokenized ArrayRecord shards live ({split}-NNNNN-of-NNNNN)
  num_shards             pretokenized shards per split
  encode_batch_size      images per VQ encoder call (padded to a multiple of the devices)
  image_size             generation image size and understanding tile size (pixels)
  vq_downsample          VQ spatial downsampling p; code grid per tile = image_size / p
  fold                   (m, n) token folding (rows, cols of codes per folded token)
  max_tiles, use_thumbnail   dynamic tiling of understanding images
  system_prompt          "" = no system turn
  caption_prompt         understanding prompt of a caption example
  generation_prefix      generation prompt prefix ("Generate an image of:")
  uncond_prompt          CFG-dropout prompt ("Here is a random image <UNCOND>:")
  cfg_dropout            probability of the unconditional prompt in generation
  und_caption_prob       probability an understanding example is a caption task
                         (else question/answer turns; always caption if none)
  und_qa_turns           question/answer turns per understanding example: distinct
                         questions about the same image in one multi-turn conversation
                         (as LLaVA data has; fewer when they would not fit seq_len)
  und_type_weights       question mix: ((type, weight), ...) pairs, questions drawn in
                         proportion to their type's weight (a type not listed: never);
                         () = every question of a record equally likely. E.g. the
                         demo's binding stage asks colour and shape only
  und_object_keep        scene mix of understanding examples: ((object count, keep
                         probability), ...); a scene of n objects (its scene graph) is
                         skipped with probability 1 - keep and counted
                         (`sampled_out_by_objects`); a count not listed, and a record
                         without a scene graph, is always kept. E.g. ((1, 0.3),) asks
                         fewer questions about one-object scenes
  overlong               "drop" | "truncate" examples longer than the task's seq_len
  seed, shuffle, num_epochs (None = repeat forever)
  understanding / generation: batch_size (global, per task), seq_len,
                         packing_bins (0 = the per-process batch size),
                         pretokenized_dir ("" = data.pretokenized_dir; a task's own
                         records, e.g. SFT conversations beside caption pairs)
  prefetch_buffer        thread-prefetched batches (0 = off)
"""

import ml_collections

from data_pipelines.sources import field_mapping


def default_data_config() -> ml_collections.ConfigDict:
  """Demo defaults: 64 px scenes, VQ downsample 8 (8 x 8 codes), fold 2 x 2."""
  c = ml_collections.ConfigDict()
  c.source = ml_collections.ConfigDict()
  c.source.kind = "tfds"
  c.source.name = "synergen_scenes/64px"
  c.source.data_dir = "data/tfds"
  c.source.image_root = ""
  c.source.split = "train"
  c.source.fields = ml_collections.ConfigDict(
      {name: ml_collections.config_dict.placeholder(str) for name in field_mapping.NAMES})
  c.pretokenized_dir = "data/pretokenized/synergen_scenes_64px"
  c.num_shards = 4
  c.encode_batch_size = 256
  c.image_size = 64
  c.vq_downsample = 8
  c.fold = (2, 2)
  c.max_tiles = 1
  c.use_thumbnail = False
  c.system_prompt = ""
  c.caption_prompt = "Provide a one-sentence caption for the image."
  c.generation_prefix = "Generate an image of:"
  c.uncond_prompt = "Here is a random image <UNCOND>:"
  c.cfg_dropout = 0.1
  c.und_caption_prob = 0.3
  c.und_qa_turns = 1
  c.und_type_weights = ()
  c.und_object_keep = ()
  c.overlong = "drop"
  c.seed = 0
  c.shuffle = True
  c.num_epochs = ml_collections.config_dict.placeholder(int)
  c.understanding = ml_collections.ConfigDict(
      {"batch_size": 8, "seq_len": 256, "packing_bins": 0, "pretokenized_dir": ""})
  c.generation = ml_collections.ConfigDict(
      {"batch_size": 8, "seq_len": 256, "packing_bins": 0, "pretokenized_dir": ""})
  c.prefetch_buffer = 2
  return c


def code_grid(config) -> tuple[int, int]:
  """(h, w) of the VQ code grid of one tile / generation image."""
  if config.image_size % config.vq_downsample:
    raise ValueError(f"data.image_size={config.image_size} is not divisible by "
                     f"data.vq_downsample={config.vq_downsample}")
  g = config.image_size // config.vq_downsample
  return g, g


def validate(config) -> None:
  """Fails early, naming the field, on values the pipeline cannot run with."""
  field_mapping.resolve(config.source)  # data.source.kind and data.source.fields
  if config.overlong not in ("drop", "truncate"):
    raise ValueError(f"data.overlong must be 'drop' or 'truncate', got {config.overlong!r}")
  if not 0.0 <= config.cfg_dropout <= 1.0:
    raise ValueError(f"data.cfg_dropout must be in [0, 1], got {config.cfg_dropout}")
  if not 0.0 <= config.und_caption_prob <= 1.0:
    raise ValueError(f"data.und_caption_prob must be in [0, 1], got {config.und_caption_prob}")
  if int(config.get("und_qa_turns", 1)) < 1:
    raise ValueError(f"data.und_qa_turns must be >= 1, got {config.und_qa_turns}")
  for pair in config.get("und_type_weights", ()):
    if (len(pair) != 2 or not isinstance(pair[0], str) or not isinstance(pair[1], (int, float))
        or pair[1] < 0):
      raise ValueError(f"data.und_type_weights must be (question type, weight >= 0) pairs, "
                       f"got {pair!r} in {tuple(config.und_type_weights)!r}")
  for pair in config.get("und_object_keep", ()):
    if (len(pair) != 2 or not isinstance(pair[0], int) or isinstance(pair[0], bool)
        or not isinstance(pair[1], (int, float)) or not 0 <= pair[1] <= 1):
      raise ValueError(f"data.und_object_keep must be (object count, probability in "
                       f"[0, 1]) pairs, "
                       f"got {pair!r} in {tuple(config.und_object_keep)!r}")
  if config.max_tiles < 1:
    raise ValueError(f"data.max_tiles must be >= 1, got {config.max_tiles}")
  for task in ("understanding", "generation"):
    t = config[task]
    if t.batch_size < 1 or t.seq_len < 8:
      raise ValueError(f"data.{task}: need batch_size >= 1 and seq_len >= 8, got {t}")
  code_grid(config)
