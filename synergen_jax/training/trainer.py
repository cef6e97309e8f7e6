"""The training loop of one stage: init or resume, train, log, validate, checkpoint.

  run_stage(ctx, stage, stop_at=None) -> summary dict (None if stopped early)

A stage starts from (in this order): its own latest checkpoint (resume: train state +
data iterator position), else `init_from` ("previous" = the previous stage's final
params, or `config.init_params` / random init for the first stage; "scratch"; or a
params checkpoint directory). It ends by writing its final params (param_checkpoint) and
`summary.json` (the "done" marker) into W/<stage>/. SIGTERM saves a checkpoint and
raises `preemption.Preempted`.
"""

import dataclasses
import functools
import os
import shutil
import time
from typing import Any

import jax
import numpy as np

from data_pipelines.pipeline import iterator as data_iterator

from synergen_jax import experiment as experiment_lib
from synergen_jax import files
from synergen_jax import metrics_log
from synergen_jax import model_init
from synergen_jax import param_checkpoint
from synergen_jax import preemption
from synergen_jax import sharding
from synergen_jax import workdir as workdir_lib
from synergen_jax.model import ModelConfig
from synergen_jax.model.losses import combine_task_losses
from synergen_jax.training import resume_checkpoint
from synergen_jax.training import data as data_lib
from synergen_jax.training import flops as flops_lib
from synergen_jax.training import step as step_lib
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

  @property
  def model_config(self) -> ModelConfig:
    return self.experiment.model


def log(msg: str) -> None:
  if jax.process_index() == 0:
    print(msg, flush=True)


_ALL_GROUPS = ("vision", "llm_attention", "llm")


@functools.lru_cache(maxsize=None)
def _eval_fn(model_config: ModelConfig, mesh, tasks: tuple[str, ...],
             options: tuple[tuple[str, Any], ...]):
  """One compiled eval function per (model, mesh, task set), shared by all stages."""
  spec = _spec(model_config, mesh, _ALL_GROUPS, experiment_lib.Optimizer.from_config(), 1,
               options)
  return step_lib.make_eval_step(spec, tasks, dict(options))


@functools.lru_cache(maxsize=16)
def _spec(model_config: ModelConfig, mesh, trainable: tuple[str, ...],
          opt: experiment_lib.Optimizer, steps: int,
          options: tuple[tuple[str, Any], ...] = ()) -> StateSpec:
  """StateSpecs (and their jitted init/build functions) cached per process."""
  return StateSpec(model_config, mesh, trainable, opt, steps, dict(options))


def spec_for(ctx: "RunContext", trainable, opt: experiment_lib.Optimizer,
             steps: int) -> StateSpec:
  return _spec(ctx.model_config, ctx.mesh, tuple(trainable), opt, int(steps),
               ctx.experiment.train.xla_compiler_options)


@functools.lru_cache(maxsize=8)
def _train_step(spec: StateSpec, tasks: tuple[str, ...], grad_accum_steps: int,
                options: tuple[tuple[str, Any], ...],
                text_loss_weights: tuple[tuple[str, float], ...] = ()):
  """The jitted train step, cached so that a stage resumed in the same process (tests, or
  a driver calling `run_stage` again) does not compile again."""
  return step_lib.make_train_step(spec, tasks, grad_accum_steps, dict(options),
                                  text_loss_weights)


def evaluate(ctx: RunContext, params, names) -> dict:
  """Validation losses/accuracies of `params` on the named sets (flat, per task)."""
  names = tuple(names)
  fn = _eval_fn(ctx.model_config, ctx.mesh, names, ctx.experiment.train.xla_compiler_options)
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


def _interval_row(host: list[dict], timed: int, elapsed: float, spec: StateSpec,
                  peak: float, trainable) -> dict:
  """Mean metrics of the interval's steps; throughput of its last `timed` steps."""
  row = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
  if timed:
    timed_steps = host[-timed:]
    counts = flops_lib.total_counts(timed_steps)
    tokens = sum(v for k, v in counts.items() if k.endswith("/tokens"))
    step_flops = flops_lib.step_flops(spec.config, counts, trainable) / timed
    row["step_s"] = elapsed / timed
    row["tokens_per_s"] = tokens / elapsed
    row["model_flops_per_step"] = step_flops
    row["mfu"] = flops_lib.mfu(step_flops / row["step_s"], peak, jax.device_count())
  return row


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
  tcfg = ctx.experiment.train
  st = ctx.experiment.stage(stage)
  tasks, trainable = st.tasks, st.trainable
  spec = spec_for(ctx, trainable, st.optimizer, st.steps)
  train_step = _train_step(spec, tasks, st.grad_accum_steps, tcfg.xla_compiler_options,
                           st.text_loss_weights)
  sdir = workdir_lib.stage_dir(ctx.workdir, stage)
  manager = workdir_lib.checkpoint_manager(ctx.workdir, stage, tcfg.keep_checkpoints,
                                           tcfg.async_checkpoints)
  config_json = experiment_lib.to_json(ctx.experiment.config)
  data_iter = data_lib.train_iterator(ctx.experiment, st, ctx.tokenizer, ctx.mesh)
  if manager.latest_step() is not None:
    state = resume_checkpoint.restore(manager, spec, data_iter)
    log(f"[{stage}] resumed from {sdir}/checkpoints at step {int(state.step)}")
  else:
    params = initial_params(ctx, stage, spec)
    if st.code_embed_from_vq:
      params = _code_tables_from_vq(ctx, stage, params)
    state = spec.state_from_params(params, st.vision_ffn_from_text)
  n_train = sum(int(x.size) for x in jax.tree.leaves(spec.split(state.params)[0]))
  n_all = sum(int(x.size) for x in jax.tree.leaves(state.params))
  log(f"[{stage}] tasks {tasks}, trains {trainable}: {n_train:,d} of {n_all:,d} params; "
      f"mesh {dict(ctx.mesh.shape)}; {st.steps} steps")

  peak, peak_src = flops_lib.device_peak_flops(tcfg.peak_flops_per_device)
  step = int(jax.device_get(state.step))
  writer = metrics_log.MetricsWriter(sdir, resume_step=step)
  start_step, t_start = step, time.perf_counter()
  interval, untimed, t_mark, compile_s, step_s, saved = [], 0, None, None, None, step
  last = st.steps if stop_at is None else min(stop_at, st.steps)
  try:
    with sharding.mesh_context(ctx.mesh):
      while step < last:
        batches = next(data_iter)
        if len(batches) != len(tasks):  # a single-task stage of a two-task pipeline
          batches = {t: batches[t] for t in tasks}
        state, metrics = train_step(state, batches)
        step += 1
        preemption.signal_point(f"train/{stage}", step)  # test hook (no-op unless set)
        interval.append(metrics)
        if t_mark is None:  # the first step of this run compiles: not timed
          jax.block_until_ready(metrics)
          t_mark = time.perf_counter()
          compile_s, untimed = t_mark - t_start, 1
          log(f"[{stage}] first step (compile + run) {compile_s:.1f}s; peak "
              f"{peak / 1e9:,.0f} GFLOP/s per device ({peak_src})")
        if step % tcfg.log_every == 0 or step == last:
          host = jax.device_get(interval)
          now = time.perf_counter()
          row = _interval_row(host, len(host) - untimed, now - t_mark, spec, peak, trainable)
          step_s = row.get("step_s", step_s)
          data_metrics = data_iterator.pod_metrics(data_iter)  # all-gathers: every process
          writer.write(step, {**{f"train/{k}": v for k, v in row.items()},
                              **{f"data/{k}": v for k, v in data_metrics.items()}})
          eta = None if step_s is None else step_s * (st.steps - step)
          log(metrics_log.console_line(stage, step, st.steps, row, eta))
          interval, untimed, t_mark = [], 0, now
        if tcfg.eval_every and step % tcfg.eval_every == 0 and step < st.steps:
          val = evaluate(ctx, state.params, tcfg.eval_sets)
          writer.write(step, val, prefix="val/")
          log(f"[{stage}] step {step} validation: " + fmt_val(val))
          t_mark = time.perf_counter()  # do not charge validation to throughput
        if step % tcfg.checkpoint_every == 0 or step == last:
          resume_checkpoint.save(manager, state, data_iter, config_json)
          saved = step
          preemption.signal_point(  # test hook: while the asynchronous write is under way
              f"checkpoint/{stage}", step, ready=lambda: resume_checkpoint.writing(manager, step))
        if ctx.watcher.should_stop(manager, step):
          if saved != step:
            resume_checkpoint.save(manager, state, data_iter, config_json, force=True)
          manager.wait_until_finished()
          raise preemption.Preempted(step)
    manager.wait_until_finished()
    if step < st.steps:
      log(f"[{stage}] stopped at step {step} of {st.steps} (checkpoint saved)")
      return None
    val = evaluate(ctx, state.params, tcfg.eval_sets)
    writer.write(step, val, prefix="val/")
    summary = {"stage": stage, "steps": st.steps, "trainable": list(trainable),
               "trainable_params": n_train, "total_params": n_all,
               "steps_this_run": step - start_step,
               "wall_s_this_run": time.perf_counter() - t_start,
               "compile_s": compile_s, "validation": val}
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
