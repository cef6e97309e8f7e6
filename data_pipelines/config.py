"""The data configs: their defaults (ml_collections, what experiment files and command
lines override) and the typed frozen dataclasses everything reads (`resolve`).

  default_data_config() -> ConfigDict        the `data` section, CPU demo defaults
  default_text_data_config() -> ConfigDict   the `text_data` section
  resolve(cfg, where="data") -> DataConfig   checked; a DataConfig is returned as is
  resolve_text(cfg, where="text_data") -> TextData

`DataConfig` is read by `pipeline/` (pretokenize, examples, streams, multimodal) and its
`source` by `sources/`; `TextData` by `pipeline/text.py`. Every field is checked when
the dataclass is made (also by `dataclasses.replace`), errors naming the field. The
fields, one comment each, are the dataclasses below; sources and field mapping:
docs/DATA.md. The fold of the folded image tokens is the model's (`model.fold`), passed
to the pipeline beside the config, not a data field.
"""

import dataclasses

import ml_collections

from data_pipelines.sources import field_mapping
from synergen_jax.typed_config import Typed, from_dict, need

TASKS = ("understanding", "generation")
OVERLONG = ("drop", "truncate")


def default_data_config() -> ml_collections.ConfigDict:
  """Demo defaults: 64 px scenes, VQ downsample 8 (8 x 8 codes)."""
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
  c.encode_workers = 2
  c.image_size = 64
  c.vq_downsample = 8
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
  c.gen_object_keep = ()
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


def default_text_data_config() -> ml_collections.ConfigDict:
  """Text-only LLM pretraining data (stands in for the pretrained LLM in the demo)."""
  return ml_collections.ConfigDict(dict(
      tfds_name="synergen_text",
      data_dir="data/tfds",
      train_split="train",
      eval_split="test",
      scene_text=True,
      batch_size=8,
      seq_len=256,
      packing_bins=0,
      seed=0,
      prefetch_buffer=2,
  ))


@dataclasses.dataclass(frozen=True)
class SourceFields(Typed):
  """Which field of a raw record holds what (sources/field_mapping.py): a key, a dotted
  path (json.caption) or alternatives (jpg|png); None = the kind's default, "" = none."""

  # The image (encoded bytes, a path, or an array).
  image: str | None
  # Caption(s): one string or a list; feeds both tasks.
  captions: str | None
  # Question(s) about the image (one string or a list).
  questions: str | None
  # Their answers, in the same order.
  answers: str | None
  # Each question's type (VQA per type; `und_type_weights`).
  question_types: str | None
  # The scene graph (JSON; `und_object_keep`, the GenEval prompts).
  scene_graph: str | None
  # The record's id.
  id: str | None
  # A multi-turn conversation (LLaVA's `conversations`).
  conversation: str | None


@dataclasses.dataclass(frozen=True)
class Source(Typed):
  """Where raw images + text come from (sources/readers.py, docs/DATA.md)."""

  # "tfds" | "array_record" | "webdataset" | "parquet" | "llava".
  kind: str
  # TFDS name with its config, e.g. "synergen_scenes/64px" (tfds only).
  name: str
  # TFDS data dir, or for the file kinds a glob of the files (`{split}` replaced).
  data_dir: str
  # Directory image paths are relative to (llava; `{split}` replaced); "" = as written.
  image_root: str
  # The split to pretokenize when none is given.
  split: str
  # The field mapping over the kind's defaults.
  fields: SourceFields

  def check(self):
    kinds = sorted(field_mapping.KIND_DEFAULTS)
    need(self.kind in kinds, "kind", f"{self.kind!r}: expected one of {kinds}")
    need(bool(field_mapping.resolve(self)["image"]), "fields.image",
         f"empty; kind {self.kind!r} needs the field that holds the image")


@dataclasses.dataclass(frozen=True)
class TaskData(Typed):
  """The batches of one task (understanding or generation)."""

  # Global rows per step.
  batch_size: int
  # Tokens per packed row.
  seq_len: int
  # Examples the first-fit packer holds open (0 = the per-process batch size).
  packing_bins: int
  # The task's own pretokenized records ("" = data.pretokenized_dir), e.g. SFT's.
  pretokenized_dir: str

  def check(self):
    need(self.batch_size >= 1, "batch_size", f"{self.batch_size}: expected >= 1")
    need(self.seq_len >= 8, "seq_len", f"{self.seq_len}: expected >= 8")
    need(self.packing_bins >= 0, "packing_bins", f"{self.packing_bins}: expected >= 0")


@dataclasses.dataclass(frozen=True)
class DataConfig(Typed):
  """The multimodal data: pretokenization and the understanding/generation batches."""

  # Where raw images + text come from.
  source: Source
  # Where the pretokenized ArrayRecord shards are ({split}-NNNNN-of-NNNNN).
  pretokenized_dir: str
  # Pretokenized shards per split.
  num_shards: int
  # Images per VQ encoder call (padded to a multiple of the devices).
  encode_batch_size: int
  # Shards pretokenized at a time, each in a thread (overlaps one shard's image decoding
  # and writing with another's encoder call; the files do not depend on it).
  encode_workers: int
  # Generation image size and understanding tile size (pixels).
  image_size: int
  # The VQ's spatial downsampling: codes per tile side = image_size / vq_downsample.
  vq_downsample: int
  # Dynamic tiling of understanding images: at most this many tiles.
  max_tiles: int
  # Dynamic tiling: add a thumbnail tile of the whole image.
  use_thumbnail: bool
  # The system turn ("" = none).
  system_prompt: str
  # The understanding prompt of a caption example.
  caption_prompt: str
  # The generation prompt's prefix ("Generate an image of:").
  generation_prefix: str
  # The unconditional prompt of CFG dropout.
  uncond_prompt: str
  # Probability of the unconditional prompt in a generation example.
  cfg_dropout: float
  # Probability an understanding example is a caption (else question/answer turns).
  und_caption_prob: float
  # Question/answer turns per understanding example (fewer when they do not fit).
  und_qa_turns: int
  # ((question type, weight), ...): the question mix (a type not listed: never); () = all.
  und_type_weights: tuple[tuple[str, float], ...]
  # ((object count, keep probability), ...): scenes skipped by object count; () = all kept.
  und_object_keep: tuple[tuple[int, float], ...]
  # The same for generation examples (e.g. ((2, 0), (3, 0)): one-object scenes only).
  gen_object_keep: tuple[tuple[int, float], ...]
  # "drop" | "truncate" examples longer than the task's seq_len.
  overlong: str
  # Seed of shuffling and example choice (task offsets added).
  seed: int
  # Shuffle the records (reshuffled every epoch).
  shuffle: bool
  # Passes over the records (None = repeat forever).
  num_epochs: int | None
  # The understanding task's batches.
  understanding: TaskData
  # The generation task's batches.
  generation: TaskData
  # Thread-prefetched batches (0 = off).
  prefetch_buffer: int

  def check(self):
    need(self.num_shards >= 1, "num_shards", f"{self.num_shards}: expected >= 1")
    need(self.encode_batch_size >= 1, "encode_batch_size",
         f"{self.encode_batch_size}: expected >= 1")
    need(self.encode_workers >= 1, "encode_workers", f"{self.encode_workers}: expected >= 1")
    need(self.vq_downsample >= 1, "vq_downsample", f"{self.vq_downsample}: expected >= 1")
    need(self.image_size >= 1 and self.image_size % self.vq_downsample == 0, "image_size",
         f"{self.image_size} is not divisible by data.vq_downsample={self.vq_downsample}")
    need(self.max_tiles >= 1, "max_tiles", f"{self.max_tiles}: expected >= 1")
    need(self.overlong in OVERLONG, "overlong",
         f"{self.overlong!r}: expected 'drop' or 'truncate'")
    need(0.0 <= self.cfg_dropout <= 1.0, "cfg_dropout",
         f"{self.cfg_dropout}: expected in [0, 1]")
    need(0.0 <= self.und_caption_prob <= 1.0, "und_caption_prob",
         f"{self.und_caption_prob}: expected in [0, 1]")
    need(self.und_qa_turns >= 1, "und_qa_turns", f"{self.und_qa_turns}: expected >= 1")
    for pair in self.und_type_weights:
      need(pair[1] >= 0, "und_type_weights", f"expected (question type, weight >= 0) "
           f"pairs, got {pair!r} in {self.und_type_weights!r}")
    for name in ("und_object_keep", "gen_object_keep"):
      for pair in getattr(self, name):
        need(0 <= pair[1] <= 1, name, f"expected (object count, probability in [0, 1]) "
             f"pairs, got {pair!r} in {getattr(self, name)!r}")
    need(self.num_epochs is None or self.num_epochs >= 1, "num_epochs",
         f"{self.num_epochs}: expected >= 1 or None (forever)")
    need(self.prefetch_buffer >= 0, "prefetch_buffer",
         f"{self.prefetch_buffer}: expected >= 0")

  def task(self, name: str) -> TaskData:
    """The batches of task `name` ("understanding" or "generation")."""
    need(name in TASKS, "task", f"{name!r} is not one of {TASKS}")
    return getattr(self, name)

  def task_pretokenized_dir(self, name: str) -> str:
    """Where task `name`'s records are: its own directory, else `pretokenized_dir`."""
    return self.task(name).pretokenized_dir or self.pretokenized_dir

  @property
  def code_grid(self) -> tuple[int, int]:
    """(h, w) of the VQ code grid of one tile / generation image (derived)."""
    g = self.image_size // self.vq_downsample
    return g, g


@dataclasses.dataclass(frozen=True)
class TextData(Typed):
  """Text-only documents (LLM pretraining, text replay, text retention)."""

  # TFDS text dataset with a `text` feature ("" = none).
  tfds_name: str
  # Its TFDS data dir.
  data_dir: str
  # The split trained on.
  train_split: str
  # The split of validation and text retention.
  eval_split: str
  # Add the captions and chat QA of the pretokenized scene records (data.pretokenized_dir).
  scene_text: bool
  # Global rows per step.
  batch_size: int
  # Tokens per packed row.
  seq_len: int
  # Documents the first-fit packer holds open (0 = the per-process batch size).
  packing_bins: int
  # Seed of shuffling and packing.
  seed: int
  # Thread-prefetched batches (0 = off).
  prefetch_buffer: int

  def check(self):
    need(self.batch_size >= 1, "batch_size", f"{self.batch_size}: expected >= 1")
    need(self.seq_len >= 2, "seq_len", f"{self.seq_len}: expected >= 2")
    need(self.packing_bins >= 0, "packing_bins", f"{self.packing_bins}: expected >= 0")
    need(self.prefetch_buffer >= 0, "prefetch_buffer",
         f"{self.prefetch_buffer}: expected >= 0")


def overlay(defaults: dict, over) -> dict:
  """`over`'s fields over `defaults`, recursively (a config.json written before a field
  existed reads as its default); unknown fields are left for `from_dict` to name."""
  out = dict(defaults)
  over = over.to_dict() if hasattr(over, "to_dict") else dict(over or {})
  for k, v in over.items():
    if isinstance(v, dict) and isinstance(out.get(k), dict):
      v = overlay(out[k], v)
    out[k] = v
  return out


def resolve(cfg, where: str = "data") -> DataConfig:
  """The DataConfig of a data ConfigDict (or dict) over `default_data_config()`; a
  DataConfig is returned as it is. Errors name `where.field`."""
  if isinstance(cfg, DataConfig):
    return cfg
  return from_dict(DataConfig, overlay(default_data_config().to_dict(), cfg), where)


def resolve_text(cfg, where: str = "text_data") -> TextData:
  """The TextData of a text_data ConfigDict (or dict) over its defaults; a TextData is
  returned as it is."""
  if isinstance(cfg, TextData):
    return cfg
  return from_dict(TextData, overlay(default_text_data_config().to_dict(), cfg), where)
