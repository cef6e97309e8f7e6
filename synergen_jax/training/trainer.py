"""The training loop of one stage: init or resume, train, log, validate, checkpoint.

  run_stage(ctx, stage, stop_at=None) -> summary dict (None if stopped early)

A stage starts from (in this order): its own latest checkpoint (resume: train state +
data iterator position), else `init_from` ("previous" = the previous stage's final
params, or `config.init_params` / random init for the first stage; "scratch"; or a
params checkpoint directory). It ends by writing its final params (param_checkpoint) and
`summary.json` (the "done" marker) into W/<stage>/. SIGTERM saves a checkpoint and
raises `preemption.Preempted`.

The steps run in the shared loop (`synergen_jax/loop.py`) with this stage's hooks
(`_hooks`: metrics, log, validation, checkpoint, preemption check); the run's compiled
functions are `ctx.compiled` (`training/compiled.py`).
"""

import dataclasses
import os
import shutil
import time
from typing import Any

import jax
import numpy as np

from data_pipelines.pipeline import iterator as data_iterator

from synergen_jax import experiment as experiment_lib
from synergen_jax import files
from synergen_jax import loop
from synergen_jax import metrics_log
from synergen_jax import model_init
from synergen_jax import param_checkpoint
from synergen_jax import preemption
from synergen_jax import sharding
from synergen_jax import workdir as workdir_lib
from synergen_jax.model import ModelConfig
from synergen_jax.model.losses import combine_task_losses
from synergen_jax.training import compiled as compiled_lib
from synergen_jax.training import resume_checkpoint
from synergen_jax.training import data as data_lib
from synergen_jax.training import flops as flops_lib
from synergen_jax.training import vq_code_init
from synergen_jax.state.train_state import StateSpec


@dataclasses.dataclass
class RunContext:
  """What every stage of one run shares."""

  experiment: experiment_lib.Experiment  # resolved once, at the edge (run.prepare)
  workdir: str
  mesh: jax.sharding.Mesh
  tokenizer: Any
  validation: data_lib.ValidationSets
  watcher: preemption.PreemptionWatcher
  compiled: compiled_lib.Compiled        # the run's specs, train and eval steps

  @property
  def model_config(self) -> ModelConfig:
    return self.experiment.model


def log(msg: str) -> None:
  if jax.process_index() == 0:
    print(msg, flush=True)


def evaluate(ctx: RunContext, params, names) -> dict:
  """Validation losses/accuracies of `params` on the named sets (flat, per task)."""
  names = tuple(names)
  fn = ctx.compiled.eval_step(names)
  sums = None
  with sharding.mesh_context(ctx.mesh):
    for batch in ctx.validation.batches(names):
      out = fn(params, batch)
      sums = out if sums is None else jax.tree.map(lambda a, b: a + b, sums, out)
  sums = jax.tree.map(lambda x: np.asarray(x, np.float64), jax.device_get(sums))
  _, metrics = combine_task_losses(sums, ctx.model_config.image_loss_weight)
  # The targets each set is about: answers (understanding), image codes (generation),
  # every token (text).
  keep = {"understanding": ("text_loss", "text_accuracy"),
          "generation": ("image_loss", "image_accuracy"),
          "text": ("text_loss", "text_accuracy")}
  out = {k: float(v) for k, v in metrics.items()
         if k.partition("/")[2] in keep.get(k.partition("/")[0], ())}
  if "understanding/text_loss" in out and "generation/image_loss" in out:
    # The training objective on the two vision tasks: answer CE + lambda * image CE.
    out["multimodal/loss"] = (out["understanding/text_loss"] + ctx.model_config.image_loss_weight
                              * out["generation/image_loss"])
  return out


def initial_params(ctx: RunContext, stage: str, spec: StateSpec):
  """The params `stage` starts from (`workdir.start_point`), in `spec`'s shardings."""
  exp = ctx.experiment
  start = workdir_lib.start_point(ctx.workdir, exp, stage)
  target = model_init.with_shardings(spec.param_abstract, spec.param_shardings)
  prev = start.previous_stage
  if prev is not None:
    if not workdir_lib.stage_done(ctx.workdir, prev):
      raise ValueError(f"config.stages.{stage}.init_from = 'previous' but stage {prev!r} "
                       "has not finished")
    log(f"[{stage}] starting from the final params of stage {prev!r}")
    return param_checkpoint.restore_params(start.params_dir, target)
  if start.params_dir is None:
    log(f"[{stage}] starting from a random initialisation (seed {exp.seed})")
    return spec.init_params(exp.seed)
  log(f"[{stage}] starting from params checkpoint {start.params_dir}")
  return param_checkpoint.restore_params(start.params_dir, target)


def _code_tables_from_vq(ctx: RunContext, stage: str, params):
  vq_dir = ctx.experiment.vq_tokenizer
  if not vq_dir:
    raise experiment_lib.ConfigError(f"config.stages.{stage}.code_embed_from_vq needs "
                                 "config.vq_tokenizer (the VQ tokenizer's workdir)")
  codebook = vq_code_init.codebook_of(os.path.expanduser(vq_dir))
  log(f"[{stage}] VQ-code tables start from the codebook of {vq_dir} "
      f"({codebook.shape[0]} codes x {codebook.shape[1]})")
  return vq_code_init.from_codebook(params, codebook, ctx.experiment.seed)


class _Interval:
  """The train metrics of one log interval and their throughput; the run's first step
  (it compiles) and validation are not timed."""

  def __init__(self, stage: str, spec: StateSpec, trainable, timers: loop.Timers,
               peak: tuple[float, str]):
    self.stage, self.spec, self.trainable, self.timers = stage, spec, trainable, timers
    self.peak, self.peak_src = peak
    self.metrics, self.untimed, self.t_mark = [], 0, None
    self.compile_s = self.step_s = None  # the first step's seconds; the last s/step

  def add(self, step: int, state, metrics) -> None:
    """The hook after every step."""
    del step, state
    self.metrics.append(metrics)
    if self.t_mark is None:  # the first step of this run compiles: not timed
      jax.block_until_ready(metrics)
      self.t_mark = time.perf_counter()
      self.compile_s, self.untimed = self.t_mark - self.timers.start, 1
      log(f"[{self.stage}] first step (compile + run) {self.compile_s:.1f}s; peak "
          f"{self.peak / 1e9:,.0f} GFLOP/s per device ({self.peak_src})")

  def row(self) -> dict:
    """Mean metrics of the interval's steps; throughput of its timed steps. Starts the
    next interval."""
    host = jax.device_get(self.metrics)
    now = time.perf_counter()
    row = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
    timed = len(host) - self.untimed
    if timed:
      counts = flops_lib.total_counts(host[-timed:])
      tokens = sum(v for k, v in counts.items() if k.endswith("/tokens"))
      step_flops = flops_lib.step_flops(self.spec.config, counts, self.trainable) / timed
      elapsed = now - self.t_mark
      row["step_s"] = elapsed / timed
      row["tokens_per_s"] = tokens / elapsed
      row["model_flops_per_step"] = step_flops
      row["mfu"] = flops_lib.mfu(step_flops / row["step_s"], self.peak, jax.device_count())
    self.step_s = row.get("step_s", self.step_s)
    self.metrics, self.untimed, self.t_mark = [], 0, now
    return row

  def restart_clock(self) -> None:
    """After validation: its time is not charged to the throughput."""
    self.t_mark = time.perf_counter()


def _start_state(ctx: RunContext, stage: str, spec: StateSpec, manager, data_iter):
  """The stage's own latest checkpoint (train state + data position), else its start."""
  st = ctx.experiment.stage(stage)
  if manager.latest_step() is not None:
    state = resume_checkpoint.restore(manager, spec, data_iter)
    log(f"[{stage}] resumed from {workdir_lib.stage_dir(ctx.workdir, stage)}/checkpoints at "
        f"step {int(state.step)}")
    return state
  params = initial_params(ctx, stage, spec)
  if st.code_embed_from_vq:
    params = _code_tables_from_vq(ctx, stage, params)
  return spec.state_from_params(params, st.vision_ffn_from_text)


def _hooks(ctx: RunContext, stage: str, last: int, interval: _Interval, writer,
           manager, data_iter) -> list[loop.Hook]:
  """After a step, in this order: its metrics, the log row, validation, the checkpoint,
  the preemption check."""
  tcfg, st = ctx.experiment.train, ctx.experiment.stage(stage)
  config_json = experiment_lib.to_json(ctx.experiment.config)

  def log_row(step, state, metrics):
    row = interval.row()
    data_metrics = data_iterator.pod_metrics(data_iter)  # all-gathers: every process
    writer.write(step, {**{f"train/{k}": v for k, v in row.items()},
                        **{f"data/{k}": v for k, v in data_metrics.items()}})
    eta = None if interval.step_s is None else interval.step_s * (st.steps - step)
    log(metrics_log.console_line(stage, step, st.steps, row, eta))

  def validate(step, state, metrics):
    val = evaluate(ctx, state.params, tcfg.eval_sets)
    writer.write(step, val, prefix="val/")
    log(f"[{stage}] step {step} validation: " + fmt_val(val))
    interval.restart_clock()

  def save(step, state, metrics, force=False):
    resume_checkpoint.save(manager, state, data_iter, config_json, force=force)
    if not force:
      preemption.signal_point(  # test hook: while the asynchronous write is under way
          f"checkpoint/{stage}", step, ready=lambda: resume_checkpoint.writing(manager, step))

  checkpoint = loop.Hook("checkpoint", save, every=tcfg.checkpoint_every, also_at=(last,))
  return [loop.Hook("metrics", interval.add, every=1),
          loop.Hook("log", log_row, every=tcfg.log_every, also_at=(last,)),
          loop.Hook("evaluate", validate, every=tcfg.eval_every, not_at=(st.steps,)),
          checkpoint,
          loop.preemption_hook(ctx.watcher, manager, checkpoint,
                               lambda step, state: save(step, state, None, force=True))]


def _write_final(ctx: RunContext, stage: str, params, summary: dict) -> None:
  out = workdir_lib.final_params_dir(ctx.workdir, stage)
  tmp = out + ".tmp"
  if jax.process_index() == 0 and os.path.exists(tmp):
    shutil.rmtree(tmp)
  param_checkpoint.save_params(tmp, params)
  if jax.process_index() == 0:
    if os.path.exists(out):
      shutil.rmtree(out)
    os.replace(tmp, out)
    files.write_json(workdir_lib.summary_path(ctx.workdir, stage), summary)


def run_stage(ctx: RunContext, stage: str, stop_at: int | None = None) -> dict | None:
  """Trains `stage` to its last step (or to `stop_at`); see the module doc."""
  st = ctx.experiment.stage(stage)
  spec, train_step = ctx.compiled.train_step(st)
  sdir = workdir_lib.stage_dir(ctx.workdir, stage)
  tcfg = ctx.experiment.train
  manager = workdir_lib.checkpoint_manager(ctx.workdir, stage, tcfg.keep_checkpoints,
                                           tcfg.async_checkpoints)
  data_iter = data_lib.train_iterator(ctx.experiment, st, ctx.tokenizer, ctx.mesh)
  state = _start_state(ctx, stage, spec, manager, data_iter)
  n_train = sum(int(x.size) for x in jax.tree.leaves(spec.split(state.params)[0]))
  n_all = sum(int(x.size) for x in jax.tree.leaves(state.params))
  log(f"[{stage}] tasks {st.tasks}, trains {st.trainable}: {n_train:,d} of {n_all:,d} "
      f"params; mesh {dict(ctx.mesh.shape)}; {st.steps} steps")

  peak = flops_lib.device_peak_flops(tcfg.peak_flops_per_device)
  start_step = step = int(jax.device_get(state.step))
  writer = metrics_log.MetricsWriter(sdir, resume_step=step)
  timers = loop.Timers()
  interval = _Interval(stage, spec, st.trainable, timers, peak)
  last = st.steps if stop_at is None else min(stop_at, st.steps)

  def next_batch(step):
    batches = next(data_iter)
    if len(batches) != len(st.tasks):  # a single-task stage of a two-task pipeline
      batches = {t: batches[t] for t in st.tasks}
    return batches

  try:
    hooks = _hooks(ctx, stage, last, interval, writer, manager, data_iter)
    with sharding.mesh_context(ctx.mesh):
      state, step = loop.run(state, step, last, next_batch, train_step, hooks, timers,
                             f"train/{stage}")
    manager.wait_until_finished()
    log(f"[{stage}] {step - start_step} steps in {timers.elapsed():.1f}s: {timers.line()}")
    if step < st.steps:
      log(f"[{stage}] stopped at step {step} of {st.steps} (checkpoint saved)")
      return None
    val = evaluate(ctx, state.params, tcfg.eval_sets)
    writer.write(step, val, prefix="val/")
    summary = {"stage": stage, "steps": st.steps, "trainable": list(st.trainable),
               "trainable_params": n_train, "total_params": n_all,
               "steps_this_run": step - start_step, "wall_s_this_run": timers.elapsed(),
               "compile_s": interval.compile_s, "validation": val}
    _write_final(ctx, stage, state.params, summary)
    log(f"[{stage}] done; validation: " + fmt_val(val))
    return summary
  finally:
    writer.close()
    manager.close()
    if hasattr(data_iter, "close"):
      data_iter.close()


def fmt_val(val: dict) -> str:
  return ", ".join(f"{k} {v:.4f}" for k, v in sorted(val.items()))
