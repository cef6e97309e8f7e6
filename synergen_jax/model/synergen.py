"""SynerGenVL: one causal decoder over text tokens and folded image tokens.

Composes the text / new-special-token embeddings, token folding (input side), the
MMoE decoder, the text output head and the token-unfolding head (output side), and
computes the per-task loss sums of one task batch (docs/ARCHITECTURE.md, "The batch
contract"):

  loss = text CE + lambda * image CE

`tokens[t]` is predicted from position t-1 with weight `text_target[t]`; the patch
`image_codes[t]` is predicted from the hidden state at t-1 by the unfolding head with
weight `image_target[t]`. A target never crosses a segment boundary: pairs (t-1, t)
from different segments, or padding, get weight 0 whatever the batch says.
`target_weights(batch, max_gen_patches, max_text_targets)` gives the text and image
weight sums the model counts, from the batch alone (the trainer normalises accumulated
gradients by them).

Both output heads run only where they are needed when given a static per-row budget:
the unfolding head on the (at most `max_gen_patches`) image-target patches of a row, the
LM head, with `max_text_targets` > 0, on the (at most that many) text-target positions
instead of every position. Targets beyond a budget are dropped and counted.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from synergen_jax.model.config import ModelConfig
from synergen_jax.model.decoder import Decoder
from synergen_jax.model.folding import TokenFold
from synergen_jax.model.fused_cross_entropy import fused_cross_entropy
from synergen_jax.model.layers import default_kernel_init
from synergen_jax.model.losses import chunked_cross_entropy
from synergen_jax.model.unfold_head import UnfoldHead


def target_pair_mask(segment_ids: jax.Array) -> jax.Array:
  """[batch, length] bool: position t may be a target of t-1 (same, non-pad segment)."""
  same = segment_ids[:, 1:] == segment_ids[:, :-1]
  valid = same & (segment_ids[:, 1:] > 0)
  return jnp.pad(valid, ((0, 0), (1, 0)))  # position 0 is never a target


def target_weights(batch: dict, max_gen_patches: int, max_text_targets: int = 0,
                   first_code_weight: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """(text, image) target-weight sums of one task batch, exactly as SynerGenVL counts
  them: no target across a segment boundary; image targets beyond the per-row buffer of
  `max_gen_patches` patches are dropped, text targets beyond `max_text_targets` (if
  > 0) too; each image target counts its m*n codes, its first weighing
  `first_code_weight` (`ModelConfig.image_first_code_weight`)."""
  pair = target_pair_mask(batch["segment_ids"])
  t_next = (batch["text_target"] * pair)[:, 1:]
  if max_text_targets > 0:
    t_next = t_next * (jnp.cumsum(t_next > 0, axis=1) <= max_text_targets)
  text = jnp.sum(t_next)
  w_next = (batch["image_target"] * pair)[:, 1:]  # [batch, length-1]
  in_buffer = jnp.cumsum(w_next > 0, axis=1) <= max_gen_patches
  mn = batch["image_codes"].shape[-1]
  image = jnp.sum(w_next * in_buffer) * (mn - 1 + first_code_weight)
  return text, image


def _project(hidden, matrix, dtype):
  """[..., d] @ [d, V] in the compute dtype."""
  return jnp.einsum("...d,dv->...v", hidden.astype(dtype), matrix.astype(dtype))


class SynerGenVL(nn.Module):
  config: ModelConfig

  def setup(self):
    c = self.config
    kw = dict(dtype=c.compute_dtype, param_dtype=c.params_dtype)
    init = nn.initializers.normal(0.02)
    self.text_embed = self.param(
        "text_embed", nn.with_logical_partitioning(init, ("vocab", "embed")),
        (c.vocab_size, c.embed_dim), c.params_dtype)
    self.new_token_embed = self.param(
        "new_token_embed", nn.with_logical_partitioning(init, ("new_vocab", "embed")),
        (c.num_new_tokens, c.embed_dim), c.params_dtype)
    self.fold = TokenFold(c.codebook_size, c.code_embed_dim, tuple(c.tile_grid),
                          tuple(c.fold), c.embed_dim, c.fold_init_scale,
                          c.fold_slot_shared_init, name="fold", **kw)
    self.decoder = Decoder(
        num_layers=c.num_layers,
        block_kwargs=dict(num_heads=c.num_heads, num_kv_heads=c.num_kv_heads,
                          head_dim=c.head_dim, mlp_dim=c.mlp_dim, rope_theta=c.rope_theta,
                          norm_eps=c.norm_eps, qkv_bias=c.qkv_bias, use_mmoe=True,
                          vision_experts=c.vision_experts, mmoe_impl=c.mmoe_impl,
                          attention_backend=c.attention_backend),
        norm_eps=c.norm_eps, remat_policy=c.remat_policy, name="decoder", **kw)
    if not c.tie_embeddings:
      head_init = default_kernel_init(1)
      self.lm_head = self.param(
          "lm_head", nn.with_logical_partitioning(head_init, ("embed", "vocab")),
          (c.embed_dim, c.vocab_size), c.params_dtype)
      self.new_token_head = self.param(
          "new_token_head", nn.with_logical_partitioning(head_init, ("embed", "new_vocab")),
          (c.embed_dim, c.num_new_tokens), c.params_dtype)
    self.unfold_head = UnfoldHead(c.head, c.patch_size, c.codebook_size, c.rope_theta,
                                  c.norm_eps, name="unfold_head", **kw)

  # ---- input side -------------------------------------------------------------
  def embed(self, tokens, image_codes, is_image, patch_index):
    """[batch, length] ids (+ folded image codes) -> [batch, length, embed]."""
    c = self.config
    dtype = c.compute_dtype
    text = jnp.take(self.text_embed, jnp.clip(tokens, 0, c.vocab_size - 1), axis=0)
    new = jnp.take(self.new_token_embed,
                   jnp.clip(tokens - c.vocab_size, 0, c.num_new_tokens - 1), axis=0)
    x = jnp.where((tokens >= c.vocab_size)[..., None], new, text).astype(dtype)
    folded = self.fold(image_codes, patch_index)  # [batch, length, embed]
    x = jnp.where(is_image[..., None], folded.astype(dtype), x)
    return nn.with_logical_constraint(
        x, ("activation_batch", "activation_length", "activation_embed"))

  def hidden_states(self, batch, decode: bool = False):
    """The decoder's final-normed states [batch, length, embed]."""
    x = self.embed(batch["tokens"], batch["image_codes"], batch["is_image"],
                   batch["patch_index"])
    return self.decoder(x, batch["positions"], batch["segment_ids"], batch["is_image"],
                        decode=decode)

  # ---- output side ------------------------------------------------------------
  def text_output_matrices(self):
    """([embed, vocab_size], [embed, num_new_tokens]): tied (embeddings) or the untied
    heads; separate parameters, so a stage can freeze the first and train the second."""
    if self.config.tie_embeddings:
      return self.text_embed.T, self.new_token_embed.T
    return self.lm_head, self.new_token_head

  def text_output_matrix(self):
    """[embed, vocab_size + num_new_tokens], one array (what `loss_impl="chunked"` and
    `text_logits` project with)."""
    if self.config.tie_embeddings:
      return jnp.concatenate([self.text_embed, self.new_token_embed], axis=0).T
    return jnp.concatenate([self.lm_head, self.new_token_head], axis=1)

  def text_logits(self, hidden):
    """[..., embed] -> [..., vocab_size + num_new_tokens] logits (compute dtype)."""
    return _project(hidden, self.text_output_matrix(), self.config.compute_dtype)

  def image_logits(self, head_hidden):
    """Unfolding-head states [..., head_embed] -> [..., codebook] logits."""
    return self.unfold_head.logits(head_hidden)

  # ---- training forward -------------------------------------------------------
  def __call__(self, batch, max_gen_patches: int | None = None,
               max_text_targets: int | None = None):
    """Loss sums and counts of one task batch (see `losses.combine_task_losses`).

    `max_gen_patches` overrides the config's per-row buffer of image targets for this
    call (static); 0 skips the unfolding head entirely (e.g. understanding batches,
    which have no image targets). `max_text_targets` overrides the config's per-row
    buffer of text targets (static); 0 runs the LM head on every position (text-only
    rows, where every token is a target).
    """
    c = self.config
    hidden = self.hidden_states(batch)  # [batch, length, embed]
    pair = target_pair_mask(batch["segment_ids"])

    # Text: position t-1 predicts tokens[t]. Shift targets left; the last position
    # predicts nothing.
    text_w = (batch["text_target"] * pair)[:, 1:]
    text_w = jnp.pad(text_w, ((0, 0), (0, 1)))
    text_t = jnp.pad(batch["tokens"][:, 1:], ((0, 0), (0, 1)))
    text_budget = c.max_text_targets if max_text_targets is None else max_text_targets
    text_dropped = jnp.zeros((), jnp.float32)
    text_h = hidden
    if text_budget > 0:  # gather the target positions of each row into a static buffer
      idx = jax.vmap(lambda r: jnp.nonzero(r > 0, size=text_budget, fill_value=0)[0])(
          text_w)  # [batch, K]
      count = jnp.sum(text_w > 0, axis=1)  # [batch]
      in_buffer = jnp.arange(text_budget)[None, :] < count[:, None]
      text_h = jnp.take_along_axis(hidden, idx[..., None], axis=1)  # [batch, K, embed]
      text_t = jnp.take_along_axis(text_t, idx, axis=1)
      text_w = jnp.take_along_axis(text_w, idx, axis=1) * in_buffer
      text_dropped = jnp.sum(jnp.maximum(count - text_budget, 0)).astype(jnp.float32)
    # The fused loss takes the LM head and the new-token rows apart (a frozen LM head
    # then gets no weight gradient); the chunked loss projects with one matrix.
    matrices = (self.text_output_matrices() if c.loss_impl == "fused"
                else (self.text_output_matrix(),))
    with jax.named_scope("text_head_loss"):  # the LM head's part in compiled HLO
      text = self._cross_entropy(text_h, text_t, text_w, matrices)

    budget = c.max_gen_patches if max_gen_patches is None else max_gen_patches
    if budget > 0:
      image = self._image_loss(hidden, batch, pair, budget)
    else:
      zero = jnp.zeros((), jnp.float32)
      count = jnp.sum((batch["image_target"] * pair) > 0).astype(jnp.float32)
      image = {"nll": zero, "weight": zero, "correct": zero, "dropped": count}
    return {
        "text_nll": text["nll"], "text_weight": text["weight"], "text_correct": text["correct"],
        "image_nll": image["nll"], "image_weight": image["weight"],
        "image_correct": image["correct"],
        "image_patches_dropped": image["dropped"],
        "text_targets_dropped": text_dropped,
    }

  def _cross_entropy(self, hidden, targets, weights, matrices):
    """Sums of the CE of `hidden @ concat(matrices)` (`config.loss_impl`)."""
    c = self.config
    if c.loss_impl == "fused":
      return fused_cross_entropy(hidden, targets, weights, matrices, c.loss_chunk_size,
                                 c.compute_dtype)
    (matrix,) = matrices
    return chunked_cross_entropy(hidden, targets, weights,
                                 lambda h: _project(h, matrix, c.compute_dtype),
                                 c.loss_chunk_size)

  def _image_loss(self, hidden, batch, pair, budget):
    """Teacher-forced unfolding head over the image-target patches only.

    Per row, the (at most `max_gen_patches`) positions t with image_target[t] > 0 are
    gathered into a static buffer with the hidden state at t-1; patches beyond the
    buffer are counted in `dropped` (the data config should size the buffer).
    """
    c = self.config
    w_next = (batch["image_target"] * pair)[:, 1:]  # [batch, length-1], weight of t = i+1
    idx = jax.vmap(lambda r: jnp.nonzero(r > 0, size=budget, fill_value=0)[0])(w_next)
    count = jnp.sum(w_next > 0, axis=1)  # [batch]
    in_buffer = jnp.arange(budget)[None, :] < count[:, None]  # [batch, budget]
    h_prev = jnp.take_along_axis(hidden[:, :-1], idx[..., None], axis=1)  # [b, K, embed]
    codes = jnp.take_along_axis(batch["image_codes"][:, 1:], idx[..., None], axis=1)
    weight = jnp.take_along_axis(w_next, idx, axis=1) * in_buffer  # [batch, K]

    b, k = idx.shape
    mn = c.patch_size
    head_hidden = self.unfold_head(h_prev.reshape(b * k, -1), codes.reshape(b * k, mn))
    head_hidden = head_hidden.reshape(b, k * mn, -1)  # [batch, K*m*n, head_embed]
    per_code = jnp.ones((mn,), jnp.float32).at[0].set(c.image_first_code_weight)
    code_w = (weight[..., None] * per_code).reshape(b, k * mn)  # [batch, K*m*n]
    out = self._cross_entropy(head_hidden, codes.reshape(b, k * mn), code_w,
                              (self.unfold_head.classifier_matrix(),))
    out["dropped"] = jnp.sum(jnp.maximum(count - budget, 0)).astype(jnp.float32)
    return out
