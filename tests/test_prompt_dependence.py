"""benchmarks/prompt_dependence.py: its per-code NLL is the model's image loss, code by code."""

import jax
import numpy as np

from benchmarks import prompt_dependence as probe
from synergen_jax.model import SynerGenVL
from tests import model_utils as mu


def test_per_code_nll_sums_to_the_image_loss():
  config = mu.tiny_config()
  b = mu.batch(config, "generation", batch_size=3, length=48, seed=3)
  v = mu.perturb(mu.init(config, b), scale=0.2)
  nll, mask = jax.jit(lambda v, b: SynerGenVL(config).apply(
      v, b, config.max_gen_patches, method=probe.per_code_nll))(v, b)
  out = mu.apply(config, v, b)
  assert nll.shape == (3, config.max_gen_patches, config.patch_size)
  assert int(mask.sum()) * config.patch_size == int(out["image_weight"])
  np.testing.assert_allclose(float((np.asarray(nll) * np.asarray(mask)[..., None]).sum()),
                             float(out["image_nll"]), rtol=1e-5)
  assert (np.asarray(nll) >= 0).all()
