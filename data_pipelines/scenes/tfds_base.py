"""Base class for this project's TFDS builders.

TFDS 4.9 locates a builder's source file through `importlib_resources`, which is not
a dependency of this project; `code_path` is resolved with `inspect` instead, so the
builders work with only `tensorflow-datasets` + `array_record` installed (no
TensorFlow, no importlib_resources).
"""

import inspect

from etils import epath
import tensorflow_datasets as tfds
from tensorflow_datasets.core import utils as tfds_utils


class ArrayRecordBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """GeneratorBasedBuilder whose `code_path` needs no importlib_resources."""

  @tfds_utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path | None:
    try:
      return epath.Path(inspect.getfile(cls))
    except (TypeError, OSError):
      return None
