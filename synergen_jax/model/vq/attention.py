"""Self-attention over the pixels of a feature map (Emu3's `Emu3VQVAEAttentionBlock`)."""

import flax.linen as nn
import jax
import jax.numpy as jnp


class SelfAttention(nn.Module):
  """Bidirectional multi-head attention with biased q/k/v/out projections."""
  hidden_size: int
  num_heads: int

  @nn.compact
  def __call__(self, x):  # [batch, length, hidden]
    b, n, _ = x.shape
    head_dim = self.hidden_size // self.num_heads

    def proj(name):
      y = nn.Dense(self.hidden_size, name=name)(x)
      return y.reshape(b, n, self.num_heads, head_dim)  # [batch, length, heads, head_dim]

    q, k, v = proj("q_proj"), proj("k_proj"), proj("v_proj")
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * head_dim**-0.5
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, n, self.hidden_size)
    return nn.Dense(self.hidden_size, name="out_proj")(out)  # [batch, length, hidden]


def attention_residual(x, quant, *, attn: SelfAttention, norm):
  """x + attn(norm(x)) over the height * width pixels of x: [batch, height, width, c]."""
  b, h, w, c = x.shape
  y = norm(x, quant).reshape(b, h * w, c)  # [batch, height * width, channels]
  return x + attn(y).reshape(b, h, w, c)

