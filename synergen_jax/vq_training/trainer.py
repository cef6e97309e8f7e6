"""Trains an Emu3-architecture VQ tokenizer from scratch on the embedded scene dataset.

Objective: L1/L2 reconstruction (optionally weighted up on foreground pixels,
`train.foreground_weight`, and on pixels next to colour edges, `train.edge_weight`),
optionally an image-gradient loss (`train.gradient_weight`), + codebook + commitment
losses (straight-through estimator), optionally a hinge patch-GAN loss after
`disc_start` steps. The codebook is learned by the codebook loss (Emu3) or, with
`train.codebook_ema_decay` > 0, by exponential moving averages of the latents assigned
to each code (the codebook loss is then unused). Dead codes are restarted from encoder
outputs every `restart_every` steps (the first restart, at step 0, initialises the
codebook from data). Data parallel: the batch is sharded over the "data" axis of the
project's mesh (`sharding.make_mesh`, every device on "data"), variables are replicated.
Deterministic by seed (data and restarts depend only on (seed, step)), including across
a resume.

The experiment is resolved once (`config.resolve`); the steps run in the shared loop
(`synergen_jax/loop.py`) with this trainer's hooks (log, checkpoint, preemption check,
validation).

Workdir: config.json, checkpoints/ (Orbax: model, train, config; `vq_checkpoint.py`),
metrics.jsonl + tensorboard/ (`metrics_log.MetricsWriter`), eval/metrics.json.
"""

import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from synergen_jax import files
from synergen_jax import loop
from synergen_jax import metrics_log
from synergen_jax import preemption
from synergen_jax import sharding
from synergen_jax.experiment.configdict import to_json
from synergen_jax.experiment.errors import ConfigError
from synergen_jax.model.vq.discriminator import PatchDiscriminator
from synergen_jax.model.vq.tokenizer import VQTokenizer, images_to_float, init_compiler_options
from synergen_jax.vq_training import vq_checkpoint
from synergen_jax.vq_training import data as vq_data
from synergen_jax.vq_training import eval as vq_eval
from synergen_jax.vq_training import losses as vq_losses
from synergen_jax.vq_training import config as config_lib


def make_optimizer(t: config_lib.Train, lr: float) -> optax.GradientTransformation:
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, lr, max(t.warmup_steps, 1), max(t.steps, t.warmup_steps + 1), end_value=lr * t.final_lr_frac)
  # Flattened: the optimizer state is two vectors instead of two arrays per parameter, so
  # the jitted step takes ~3x fewer arrays (dispatch cost per step on CPU); the update
  # is elementwise apart from the global norm, so it is the same update.
  return optax.flatten(optax.chain(
      optax.clip_by_global_norm(t.grad_clip),
      optax.adamw(schedule, b1=t.b1, b2=t.b2, weight_decay=t.weight_decay)))


class VQTrainer:
  """Builds the state, the jitted data-parallel step, and runs / resumes training."""

  def __init__(self, config: Any, mesh: jax.sharding.Mesh | None = None):
    """`config`: a VQ experiment file's ConfigDict (resolved here) or a VQExperiment."""
    self.config = config = config_lib.resolve(config)
    self.tok = VQTokenizer(config.model)
    # Data parallel: every device on the "data" axis (fsdp = tensor = 1).
    self.mesh = mesh or sharding.make_mesh((-1, 1, 1))
    t = config.train
    if config.data.batch_size % self.mesh.shape["data"]:
      raise ConfigError(f"data.batch_size {config.data.batch_size} must be divisible by the "
                        f"{self.mesh.shape['data']} devices of the data axis")
    self.opt = make_optimizer(t, t.lr)
    self.use_disc = bool(t.disc.enabled)
    if self.use_disc:
      self.disc = PatchDiscriminator(t.disc.channels, t.disc.num_layers, t.disc.groups)
      self.disc_opt = make_optimizer(t, t.disc.lr)
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = sharding.row_sharding(self.mesh)
    self._step = jax.jit(self._train_step, donate_argnums=(0, 1),
                         in_shardings=(self.replicated, self.replicated, self.batch_sharding),
                         out_shardings=(self.replicated, self.replicated, self.replicated))
    self._init = jax.jit(self._build_state, out_shardings=(self.replicated, self.replicated),
                         compiler_options=init_compiler_options())

  # ---- state -----------------------------------------------------------------------
  def init(self) -> tuple[dict, dict]:
    """(model variables, train state) for step 0, replicated on the mesh."""
    return self._init()

  def _build_state(self):
    key = jax.random.key(self.config.seed)
    model = self.tok.init(jax.random.fold_in(key, 0), self.config.data.image_size)
    train = {"step": jnp.zeros((), jnp.int32),
             "opt_state": self.opt.init(model["params"]),
             # Running share of positions per code; zeros make step 0 restart every code
             # from the data (a data-dependent codebook initialisation).
             "usage": jnp.zeros((self.config.model.codebook_size,), jnp.float32)}
    if self.config.train.codebook_ema_decay:  # EMA statistics; step 0's restart sets them
      k, dim = self.config.model.codebook_size, self.config.model.embed_dim
      train["ema_count"] = jnp.zeros((k,), jnp.float32)
      train["ema_sum"] = jnp.zeros((k, dim), jnp.float32)
    if self.use_disc:
      s = self.config.data.image_size
      dp = self.disc.init(jax.random.fold_in(key, 1), jnp.zeros((1, s, s, 3)))["params"]
      train["disc_params"] = dp
      train["disc_opt_state"] = self.disc_opt.init(dp)
    return model, train

  def abstract_state(self):
    model, train = jax.eval_shape(self._build_state)
    place = lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=self.replicated)
    return jax.tree_util.tree_map(place, model), jax.tree_util.tree_map(place, train)

  # ---- step ------------------------------------------------------------------------
  def _train_step(self, model_vars, train, images):
    t, k = self.config.train, self.config.model.codebook_size
    step = train["step"]
    x = images_to_float(images)  # [batch, H, W, 3] in [-1, 1]
    adv_on = step >= t.disc.start_step  # the adversarial terms count from disc.start_step
    pixel_weight = self._pixel_weight(x)

    def loss_fn(params):
      out, updates = self.tok.model.apply(
          {"params": params, "batch_stats": model_vars["batch_stats"]}, x, train=True,
          mutable=["batch_stats"])
      rec = vq_losses.reconstruction_loss(out["recon"], x, t.l1_weight, t.l2_weight,
                                          pixel_weight)
      if t.gradient_weight:
        rec = rec + t.gradient_weight * vq_losses.gradient_loss(out["recon"], x)
      loss = (rec + t.codebook_loss_weight * out["codebook_loss"]
              + t.commitment_weight * out["commitment_loss"])
      aux = {"rec_loss": rec, "codebook_loss": out["codebook_loss"],
             "commitment_loss": out["commitment_loss"]}
      if self.use_disc:
        def adv_loss(recon):
          return vq_losses.generator_adv_loss(
              self.disc.apply({"params": train["disc_params"]}, recon)).astype(jnp.float32)
        # Before disc.start_step a cond skips the discriminator (the adversarial terms
        # are 0 there; g_adv_loss and d_loss log 0 until the start).
        g_adv = jax.lax.cond(adv_on, adv_loss, lambda r: jnp.zeros((), jnp.float32),
                             out["recon"])
        loss = loss + t.disc.weight * g_adv
        aux["g_adv_loss"] = g_adv
      return loss, (out, updates["batch_stats"], aux)

    (loss, (out, batch_stats, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        model_vars["params"])
    updates, opt_state = self.opt.update(grads, train["opt_state"], model_vars["params"])
    params = optax.apply_updates(model_vars["params"], updates)
    new_train = dict(train, step=step + 1, opt_state=opt_state)
    if self.use_disc:
      aux["d_loss"] = self._disc_step(train, new_train, x, out["recon"], adv_on)
    params, counts, restarted = self._codebook_step(step, train, new_train, params, out)

    batch_usage, perplexity = vq_losses.usage_and_perplexity(counts)
    metrics = dict(aux, loss=loss, psnr=vq_losses.psnr(out["recon"], x),
                   batch_code_usage=batch_usage, batch_perplexity=perplexity,
                   restarted_codes=restarted.astype(jnp.float32),
                   dead_codes=jnp.sum(new_train["usage"] < t.restart_threshold / k
                                      ).astype(jnp.float32))
    return {"params": params, "batch_stats": batch_stats}, new_train, metrics

  def _pixel_weight(self, x):
    """[batch, H, W] weights of the pixels in the reconstruction loss, or None (all 1)."""
    t = self.config.train
    if not t.weighs_pixels:
      return None
    pixel_weight = 1.0
    if t.foreground_weight:
      pixel_weight = pixel_weight + t.foreground_weight * vq_losses.foreground_mask(x)
    if t.edge_weight:
      pixel_weight = pixel_weight + t.edge_weight * vq_losses.edge_mask(x)
    return pixel_weight

  def _disc_step(self, train, new_train, x, recon, adv_on):
    """The discriminator's update (into `new_train`) from real `x` and the
    reconstructions; returns its hinge loss (0 before disc.start_step)."""
    recon = jax.lax.stop_gradient(recon)

    def d_loss_fn(dp):
      real = self.disc.apply({"params": dp}, x)
      fake = self.disc.apply({"params": dp}, recon)
      return vq_losses.hinge_d_loss(real, fake).astype(jnp.float32)

    d_loss, d_grads = jax.lax.cond(
        adv_on, jax.value_and_grad(d_loss_fn),
        lambda dp: (jnp.zeros((), jnp.float32), jax.tree_util.tree_map(jnp.zeros_like, dp)),
        train["disc_params"])
    d_updates, d_opt = self.disc_opt.update(d_grads, train["disc_opt_state"], train["disc_params"])
    new_train["disc_params"] = optax.apply_updates(train["disc_params"], d_updates)
    new_train["disc_opt_state"] = d_opt
    return d_loss

  def _codebook_step(self, step, train, new_train, params, out):
    """Codebook statistics (into `new_train`), the EMA codebook update and the dead-code
    restart; returns (params with the new codebook, code counts [K], codes restarted)."""
    t, k = self.config.train, self.config.model.codebook_size
    counts = vq_losses.code_histogram(out["codes"], k)  # [K]
    usage = t.usage_decay * train["usage"] + (1 - t.usage_decay) * counts / jnp.sum(counts)
    usage = jnp.where(step == 0, counts / jnp.sum(counts), usage)
    codebook = params["quantize"]["embedding"]["embedding"]
    latents = jax.lax.stop_gradient(out["z"]).reshape(-1, codebook.shape[-1])  # [N, D]
    if t.codebook_ema_decay:  # the codebook follows its assigned latents (not Adam's update)
      ema_count, ema_sum, codebook = vq_losses.ema_codebook_update(
          train["ema_count"], train["ema_sum"], out["codes"].reshape(-1), latents,
          t.codebook_ema_decay, t.codebook_ema_epsilon)
    do_restart = (step % t.restart_every == 0) & (step < t.restart_until)
    rng = jax.random.fold_in(jax.random.key(self.config.seed + 1), step)
    # Only every `restart_every` steps; the other steps skip the restart's work.
    codebook, usage, dead = jax.lax.cond(
        do_restart,
        lambda cb, u: vq_losses.restart_dead_codes(
            rng, cb, jnp.where(step == 0, 0.0, u), latents, t.restart_threshold),
        lambda cb, u: (cb, u, jnp.zeros((k,), jnp.bool_)),
        codebook, usage)  # dead [K]: the codes restarted this step
    restarted = jnp.sum(dead)
    if t.codebook_ema_decay:
      # Restarted codes start their statistics afresh, with the mean count of a code, so
      # they move to their first assigned latents quickly.
      fresh_count = jnp.sum(counts) / k
      ema_count = jnp.where(dead, fresh_count, ema_count)
      ema_sum = jnp.where(dead[:, None], codebook * fresh_count, ema_sum)
      new_train["ema_count"], new_train["ema_sum"] = ema_count, ema_sum
    new_train["usage"] = usage
    return {**params, "quantize": {"embedding": {"embedding": codebook}}}, counts, restarted

  def step(self, model_vars, train, images: np.ndarray):
    """One data-parallel step on uint8 images [batch, H, W, 3] (donates the state)."""
    images = jax.device_put(images, self.batch_sharding)
    return self._step(model_vars, train, images)

  # ---- loop ------------------------------------------------------------------------
  def train_and_evaluate(self, workdir: str, stop_at: int | None = None) -> dict:
    """Trains to `train.steps` (resuming from workdir), evaluates, returns eval metrics.

    `stop_at` ends this call early at that step (after a checkpoint), as a preemption
    would; calling again resumes. SIGTERM (preemption) saves a checkpoint at the current
    step and raises `preemption.Preempted`, as the main trainer does.
    """
    cfg, t, d = self.config, self.config.train, self.config.data
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      json.dump(to_json(cfg.config), f, indent=2)
    manager = vq_checkpoint.make_manager(workdir, t.max_checkpoints)
    val_images, val_scenes = vq_data.validation_set(d.eval_images, d.image_size, d.text_prob,
                                                     d.cell, d.max_objects)

    with sharding.mesh_context(self.mesh):
      state = self._start_state(manager)
      start_step = step = int(state[1]["step"])
      # Resumed: drops the logged rows of steps after the checkpoint (they rerun).
      writer = metrics_log.MetricsWriter(workdir, resume_step=step)
      timers = loop.Timers()
      last = t.steps if stop_at is None else min(stop_at, t.steps)
      try:
        with preemption.PreemptionWatcher() as watcher:
          hooks = self._hooks(manager, watcher, writer, timers, start_step, last,
                              (val_images, val_scenes))
          state, step = loop.run(
              state, step, last,
              lambda s: vq_data.train_batch(s, d.batch_size, d.image_size, cfg.seed,
                                            d.text_prob, d.cell, d.max_objects, d.crop),
              self._loop_step, hooks, timers, "vq")
          train_wall = timers.elapsed()
          eval_metrics = self._evaluate(state[0], val_images, val_scenes, step, writer)
      finally:
        writer.close()
      eval_metrics["train_wall_s"] = train_wall
      eval_metrics["steps_this_run"] = step - start_step
    manager.wait_until_finished()
    manager.close()
    if jax.process_index() == 0:
      print(f"[vq] {step - start_step} steps in {train_wall:.1f}s: {timers.line()}", flush=True)
    os.makedirs(os.path.join(workdir, "eval"), exist_ok=True)
    path = os.path.join(workdir, "eval", "metrics.json")
    files.write_json(path, {f"vq/{k}": v for k, v in eval_metrics.items()})  # a rerun trusts it
    return eval_metrics

  def _start_state(self, manager) -> tuple[dict, dict]:
    """(model variables, train state): the latest checkpoint's, else step 0's."""
    latest = manager.latest_step()
    if latest is None:
      return self.init()
    restored = vq_checkpoint.restore(manager, latest, *self.abstract_state())
    return restored[vq_checkpoint.MODEL], restored[vq_checkpoint.TRAIN]

  def _loop_step(self, state, images):
    model_vars, train, metrics = self.step(*state, images)
    return (model_vars, train), metrics

  def _hooks(self, manager, watcher, writer, timers: loop.Timers, start_step: int,
             last: int, validation) -> list[loop.Hook]:
    """After a step, in this order: the log row, the checkpoint, the preemption check,
    validation."""
    cfg, t = self.config, self.config.train

    def log_row(step, state, metrics):
      row = {k: float(v) for k, v in jax.device_get(metrics).items()}
      elapsed = timers.elapsed()
      row.update(wall_s=elapsed, images_per_s=(step - start_step) * cfg.data.batch_size
                 / max(elapsed, 1e-9))
      writer.write(step, row)

    def save(step, state, metrics=None):
      vq_checkpoint.save(manager, step, *state, cfg.config)

    def validate(step, state, metrics):
      self._evaluate(state[0], *validation, step, writer)

    checkpoint = loop.Hook("checkpoint", save, every=t.checkpoint_every, also_at=(last,))
    return [loop.Hook("log", log_row, every=t.log_every, also_at=(t.steps,)),
            checkpoint,
            loop.preemption_hook(watcher, manager, checkpoint, save),
            loop.Hook("evaluate", validate, every=t.eval_every, not_at=(t.steps,))]

  def _evaluate(self, model_vars, images, scenes, step,
                writer: metrics_log.MetricsWriter) -> dict:
    t0 = time.time()
    encode_batch = self.tok.batch_encoder(model_vars, self.mesh)
    m = vq_eval.evaluate(self.tok, model_vars, images, scenes,
                         batch_size=self.config.data.eval_batch_size, encode_batch=encode_batch)
    m["eval_s"] = time.time() - t0
    writer.write(step, m, prefix="eval/")
    return m
