"""Token unfolding head (output side): p(v_ij | v_i<j, h_i) for one folded patch.

A shallow causal transformer with the LLM's block micro-architecture (RMSNorm, RoPE,
SwiGLU; no experts), its own VQ-code embedding, a learned embedding per sub-token
slot (m*n slots), an input projection of the LLM state h_i and a classifier over the
codebook. For patch i the input sequence is

  [proj(h_i) + P_0, E(v_i1) + P_1, ..., E(v_i,mn-1) + P_mn-1]

and output j predicts v_i,j+1. Patches are independent: each is one short sequence.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from synergen_jax.model.config import HeadConfig
from synergen_jax.model.decoder import Decoder
from synergen_jax.model.layers import Dense, default_kernel_init


class UnfoldHead(nn.Module):
  config: HeadConfig
  patch_size: int  # m * n
  codebook_size: int
  rope_theta: float = 10_000.0
  norm_eps: float = 1e-6
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  def setup(self):
    c = self.config
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    self.in_proj = Dense((c.embed_dim,), ("embed", "head_embed"), name="in_proj", **kw)
    self.code_embed = self.param(
        "code_embed", nn.with_logical_partitioning(nn.initializers.normal(0.02),
                                                   ("codebook", "head_embed")),
        (self.codebook_size, c.embed_dim), self.param_dtype)
    self.slot_embed = self.param(
        "slot_embed", nn.with_logical_partitioning(nn.initializers.normal(0.02),
                                                   ("slots", "head_embed")),
        (self.patch_size, c.embed_dim), self.param_dtype)
    self.blocks = Decoder(
        num_layers=c.num_layers,
        block_kwargs=dict(num_heads=c.num_heads, num_kv_heads=c.num_kv_heads,
                          head_dim=c.head_dim, mlp_dim=c.mlp_dim, rope_theta=self.rope_theta,
                          norm_eps=self.norm_eps, use_mmoe=False),
        norm_eps=self.norm_eps, name="blocks", **kw)
    self.classifier = self.param(
        "classifier", nn.with_logical_partitioning(default_kernel_init(1),
                                                   ("head_embed", "codebook")),
        (c.embed_dim, self.codebook_size), self.param_dtype)

  def embed(self, h, codes):
    """Teacher-forcing inputs. h: [patches, embed]; codes: [patches, m*n] -> [patches, m*n, d]."""
    first = self.in_proj(h)[:, None, :]  # [patches, 1, d]
    rest = jnp.take(self.code_embed, codes[:, :-1], axis=0).astype(self.dtype)
    x = jnp.concatenate([first, rest], axis=1)  # [patches, m*n, d]
    return x + self.slot_embed.astype(self.dtype)[None]

  def __call__(self, h, codes):
    """Hidden states for all slots of all patches: [patches, m*n, head_embed]."""
    x = self.embed(h, codes)
    return self._run(x, jnp.arange(self.patch_size)[None, :], decode=False)

  def init_cache(self, h, codes):
    """Creates an empty cache for `patches` = h.shape[0] patches (m*n slots each).

    Call with `mutable=["cache"]`; the returned outputs are unused.
    """
    x = self.embed(h, codes)
    return self._run(x, jnp.arange(self.patch_size)[None, :], decode=True)

  def decode_step(self, h, prev_code, slot):
    """One incremental step (cache in the `cache` collection).

    h: [patches, embed] (used at slot 0); prev_code: [patches] int, the code sampled
    at the previous slot (ignored at slot 0); slot: int scalar (0..m*n-1).
    Returns logits [patches, codebook] for the code at this slot.
    """
    x0 = self.in_proj(h)  # [patches, d]
    xj = jnp.take(self.code_embed, prev_code, axis=0).astype(self.dtype)
    x = jnp.where(slot == 0, x0, xj) + self.slot_embed.astype(self.dtype)[slot]
    positions = jnp.full((h.shape[0], 1), slot, jnp.int32)
    out = self._run(x[:, None, :], positions, decode=True)
    return self.logits(out[:, 0])

  def classifier_matrix(self):
    """[head_embed, codebook]."""
    return self.classifier

  def logits(self, hidden):
    """[..., head_embed] -> [..., codebook] (compute dtype)."""
    return jnp.einsum("...d,dv->...v", hidden.astype(self.dtype),
                      self.classifier.astype(self.dtype))

  def _run(self, x, positions, decode):
    batch, length = x.shape[:2]
    positions = jnp.broadcast_to(positions, (batch, length))
    segment_ids = jnp.ones((batch, length), jnp.int32)
    no_image = jnp.zeros((batch, length), bool)
    return self.blocks(x, positions, segment_ids, no_image, decode=decode)
