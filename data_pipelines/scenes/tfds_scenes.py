"""TFDS builder of the embedded scene dataset (ArrayRecord, no TensorFlow needed).

Build with `python -m data_pipelines.build` (see there) or directly:

  builder = SynergenScenes(config=scene_config(64), data_dir=D, file_format="array_record")
  builder.download_and_prepare()
  source = tfds.data_source("synergen_scenes/64px", data_dir=D)["train"]

Features per record:
  image          uint8 [S, S, 3] (PNG-encoded on disk)
  captions       list[str]     several phrasings (`scene_text.captions`)
  questions      list[str]     \
  answers        list[str]      } parallel lists (`scene_text.qa_pairs`)
  question_types list[str]     /
  scene_graph    str           JSON of the scene graph (`scenes.py` docstring)
  id             str           "{split}/{seed}"

Splits: train, validation, test, compositional (held-out shape/colour pairs).
Every record is a pure function of (config, split, index), so building twice gives
identical records.
"""

# The docstring above is the TFDS description written into every built dataset_info.json:
# kept verbatim so that a rebuild writes the same metadata (`scenes.py` is now
# scenes/render.py, `scene_text` scenes/text.py).

import dataclasses
import io
import json

import numpy as np
import PIL.Image
import tensorflow_datasets as tfds

from data_pipelines.scenes import render
from data_pipelines.scenes import text as scene_text
from data_pipelines.scenes import tfds_base

DEFAULT_SPLIT_SIZES = {"train": 8000, "validation": 500, "test": 500, "compositional": 500}


@dataclasses.dataclass
class SceneConfig(tfds.core.BuilderConfig):
  """Image size, number of records per split, the share of scenes with text, and the
  placement (`cell`: 0 = free, else objects centred in cell x cell pixel cells) and the
  most objects per scene (`render.sample_scene`)."""
  image_size: int = 64
  split_sizes: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_SPLIT_SIZES))
  text_prob: float = 0.3
  cell: int = 0
  max_objects: int = render.MAX_OBJECTS


def config_name(image_size: int, train_size: int | None = None, eval_size: int | None = None,
                cell: int = 0, max_objects: int = render.MAX_OBJECTS) -> str:
  """The builder-config name of a scene world: "64px", "64px_3000_300",
  "64px_cell16_max3_3000_300" (placement and object count appear when not the free
  default; sizes when given). Experiments name their dataset with it."""
  name = f"{image_size}px"
  if cell:
    name += f"_cell{cell}"
  if max_objects != render.MAX_OBJECTS:
    name += f"_max{max_objects}"
  if train_size is not None:
    name += f"_{train_size}_{eval_size}"
  return name


def scene_config(image_size: int = 64, split_sizes: dict | None = None,
                 text_prob: float = 0.3, name: str | None = None, cell: int = 0,
                 max_objects: int = render.MAX_OBJECTS) -> SceneConfig:
  """A SceneConfig named by `config_name` (or `name`); validates its fields."""
  sizes = dict(DEFAULT_SPLIT_SIZES if split_sizes is None else split_sizes)
  unknown = set(sizes) - set(render.SPLITS)
  if unknown:
    raise ValueError(f"split_sizes has unknown splits {sorted(unknown)}; "
                     f"expected a subset of {render.SPLITS}")
  if any(int(v) < 0 for v in sizes.values()):
    raise ValueError(f"split_sizes must be >= 0, got {sizes}")
  if not 0.0 <= text_prob <= 1.0:
    raise ValueError(f"text_prob must be in [0, 1], got {text_prob}")
  render.cells_of(int(image_size), int(cell))  # validates cell
  if not 1 <= int(max_objects) <= render.MAX_OBJECTS:
    raise ValueError(f"max_objects must be in [1, {render.MAX_OBJECTS}], got {max_objects}")
  where = f"in {cell} px cells" if cell else "placed freely"
  return SceneConfig(name=name or config_name(image_size, cell=cell, max_objects=max_objects),
                     image_size=int(image_size),
                     split_sizes={k: int(v) for k, v in sizes.items()},
                     text_prob=float(text_prob), cell=int(cell), max_objects=int(max_objects),
                     description=(f"{image_size} px scenes, 1-{max_objects} objects {where}, "
                                  f"split sizes {sizes}"))


def png_bytes(image: np.ndarray) -> bytes:
  """PNG encoding of a uint8 [H, W, 3] image."""
  buf = io.BytesIO()
  PIL.Image.fromarray(image).save(buf, format="PNG", optimize=False, compress_level=1)
  return buf.getvalue()


def scene_record(split: str, seed: int, image_size: int, text_prob: float, cell: int = 0,
                 max_objects: int = render.MAX_OBJECTS) -> dict:
  """The feature dict of one record (image as PNG bytes)."""
  image, graph = render.render_scene(seed, image_size=image_size, split=split,
                                     text_prob=text_prob, cell=cell, max_objects=max_objects)
  qa = scene_text.qa_pairs(graph)
  return {
      "image": png_bytes(image),
      "captions": scene_text.captions(graph),
      "questions": [q for _, q, _ in qa],
      "answers": [a for _, _, a in qa],
      "question_types": [t for t, _, _ in qa],
      "scene_graph": json.dumps(graph, sort_keys=True),
      "id": f"{split}/{seed}",
  }


class SynergenScenes(tfds_base.ArrayRecordBuilder):
  """Procedurally rendered scenes with captions, QA pairs and scene graphs."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      scene_config(64),
      scene_config(256, {"train": 2000, "validation": 200, "test": 200,
                         "compositional": 200}),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    s = self.builder_config.image_size
    text_list = tfds.features.Sequence(tfds.features.Text())
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(s, s, 3), encoding_format="png"),
            "captions": text_list,
            "questions": text_list,
            "answers": text_list,
            "question_types": text_list,
            "scene_graph": tfds.features.Text(),
            "id": tfds.features.Text(),
        }),
        supervised_keys=None,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download: every record is rendered
    return {split: self._generate_examples(split, n)
            for split, n in self.builder_config.split_sizes.items() if n > 0}

  def _generate_examples(self, split: str, num_examples: int):
    cfg = self.builder_config
    for seed in range(num_examples):
      yield f"{split}/{seed}", scene_record(split, seed, cfg.image_size, cfg.text_prob,
                                            cfg.cell, cfg.max_objects)
