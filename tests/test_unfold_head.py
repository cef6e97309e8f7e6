"""Unfolding head: shapes, causality inside a patch, incremental decode == teacher forcing."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synergen_jax.model.config import HeadConfig
from synergen_jax.model.unfold_head import UnfoldHead

CFG = HeadConfig(num_layers=2, embed_dim=16, num_heads=4, num_kv_heads=2, head_dim=4,
                 mlp_dim=32)
MN, K, D_LLM = 4, 12, 24

pytestmark = pytest.mark.slow  # ~6 s of compile per test


def _setup():
  rng = np.random.default_rng(0)
  h = jnp.asarray(rng.normal(size=(3, D_LLM)), jnp.float32)
  codes = jnp.asarray(rng.integers(0, K, (3, MN)), jnp.int32)
  head = UnfoldHead(CFG, MN, K)
  v = nn.unbox(head.init(jax.random.key(0), h, codes))
  return head, v, h, codes


def test_shapes_and_logits():
  head, v, h, codes = _setup()
  hidden = head.apply(v, h, codes)
  assert hidden.shape == (3, MN, CFG.embed_dim)
  logits = head.apply(v, hidden, method=head.logits)
  assert logits.shape == (3, MN, K)


def test_causal_inside_patch_and_independent_across_patches():
  head, v, h, codes = _setup()
  base = head.apply(v, h, codes)
  # Changing code j (the input of slot j+1) leaves slots <= j unchanged.
  changed = codes.at[:, 2].set((codes[:, 2] + 1) % K)
  out = head.apply(v, h, changed)
  np.testing.assert_allclose(out[:, :3], base[:, :3], atol=1e-6)
  assert float(jnp.abs(out[:, 3] - base[:, 3]).max()) > 1e-5
  # The last code is never an input.
  np.testing.assert_allclose(head.apply(v, h, codes.at[:, -1].set(0)), base, atol=1e-6)
  # Patches are independent: changing patch 0 leaves patch 1 unchanged.
  out = head.apply(v, h.at[0].set(0.0), codes)
  np.testing.assert_allclose(out[1:], base[1:], atol=1e-6)


def test_incremental_decode_equals_teacher_forcing():
  head, v, h, codes = _setup()
  want = head.apply(v, head.apply(v, h, codes), method=head.logits)  # [3, MN, K]
  cache = head.apply(v, h, codes, method=head.init_cache, mutable=["cache"])[1]["cache"]
  prev = jnp.zeros((3,), jnp.int32)
  for j in range(MN):
    logits, mut = head.apply({**v, "cache": cache}, h, prev, j, method=head.decode_step,
                             mutable=["cache"])
    cache = mut["cache"]
    np.testing.assert_allclose(logits, want[:, j], rtol=1e-4, atol=1e-5)
    prev = codes[:, j]
