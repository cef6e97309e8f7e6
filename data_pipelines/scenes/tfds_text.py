"""TFDS builder of the text-only split (facts, arithmetic, scene sentences).

  builder = SynergenText(data_dir=D, file_format="array_record"); builder.download_and_prepare()
  source = tfds.data_source("synergen_text", data_dir=D)["test"]

Features: kind, prompt, answer, text (str each; `text_corpus.text_example`), id.
Measures whether text skill survives visual training (perplexity on `text`, exact
match of `answer` after `prompt`).
"""

# The docstring above is the TFDS description written into every built dataset_info.json:
# kept verbatim so that a rebuild writes the same metadata (`text_corpus` is now scenes/corpus.py).

import dataclasses

import tensorflow_datasets as tfds

from data_pipelines.scenes import corpus
from data_pipelines.scenes import tfds_base


@dataclasses.dataclass
class TextConfig(tfds.core.BuilderConfig):
  split_sizes: dict = dataclasses.field(
      default_factory=lambda: {"train": 4000, "test": 500})


class SynergenText(tfds_base.ArrayRecordBuilder):
  """Text-only examples from the scene generator's world."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [TextConfig(name="default")]

  def _info(self) -> tfds.core.DatasetInfo:
    text = tfds.features.Text()
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__,
        features=tfds.features.FeaturesDict(
            {"kind": text, "prompt": text, "answer": text, "text": text, "id": text}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split, n)
            for split, n in self.builder_config.split_sizes.items() if n > 0}

  def _generate_examples(self, split: str, num_examples: int):
    for seed in range(num_examples):
      ex = corpus.text_example(seed, split)
      yield f"{split}/{seed}", dict(ex, id=f"{split}/{seed}")
