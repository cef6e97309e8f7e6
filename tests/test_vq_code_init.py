"""VQ-code tables initialised from the VQ tokenizer's codebook (training/vq_code_init.py)."""

import jax
import numpy as np
import pytest
from flax import traverse_util

from synergen_jax.training import vq_code_init
from tests import model_utils as mu


def _cos(a, b):
  return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_similar_codes_start_with_similar_rows_and_nothing_else_changes():
  config = mu.tiny_config()
  params = jax.device_get(mu.init(config, mu.batch(config, "generation"))["params"])
  rng = np.random.default_rng(0)
  centres = rng.standard_normal((2, 8)) * 3
  codebook = centres[np.arange(config.codebook_size) % 2] + 0.1 * rng.standard_normal(
      (config.codebook_size, 8))  # two clusters of look-alike codes
  out = vq_code_init.from_codebook(params, codebook, seed=0)
  before = traverse_util.flatten_dict(params)
  after = traverse_util.flatten_dict(out)
  assert before.keys() == after.keys()
  tables = {path for path, _ in vq_code_init.TABLES}
  for k in before:
    if k[:2] in tables:
      assert after[k].shape == before[k].shape and after[k].dtype == before[k].dtype
      assert not np.array_equal(after[k], before[k])
    else:
      np.testing.assert_array_equal(after[k], before[k])
  for path, axis in vq_code_init.TABLES:
    t = np.asarray(after[path])
    rows = t if axis == 0 else t.T
    same = np.mean([_cos(rows[i], rows[i + 2]) for i in range(0, 40, 2)])
    other = np.mean([_cos(rows[i], rows[i + 1]) for i in range(0, 40, 2)])
    assert same > 0.3 and other < -0.3, (path, same, other)  # random init: ~0 both
    # The table keeps its scale (random part + an equally large structured part).
    rms = lambda x: float(np.sqrt(np.mean(np.square(x))))
    ref = np.asarray(before[path])
    assert 1.2 * rms(ref) < rms(t) < 1.6 * rms(ref)


def test_codebook_size_must_match():
  config = mu.tiny_config()
  params = jax.device_get(mu.init(config, mu.batch(config, "generation"))["params"])
  with pytest.raises(ValueError, match="codebook_size"):
    vq_code_init.from_codebook(params, np.zeros((config.codebook_size + 1, 8)))


def test_codebook_of_reads_the_tokenizer_workdir(tmp_path):
  tok, variables = mu.write_random_vq(str(tmp_path), seed=3)
  codebook = vq_code_init.codebook_of(str(tmp_path))
  want = np.asarray(variables["params"]["quantize"]["embedding"]["embedding"])
  assert codebook.shape == (tok.config.codebook_size, want.shape[1])
  np.testing.assert_array_equal(codebook, want)
  with pytest.raises(FileNotFoundError):
    vq_code_init.codebook_of(str(tmp_path / "missing"))
