"""Running an experiment: validate, prepare the shared context, train every stage, report.

  ctx = prepare(config, workdir)          # validates before anything compiles
  report = run_experiment(config, workdir) # all stages of config.stage_order, resumable

The CLI is `python -m synergen_jax.train`; the demo job (`synergen_jax.demo`) calls
`run_experiment` after preparing its data.
"""

import json
import os

import jax

from synergen_jax import preemption
from synergen_jax import sharding
from synergen_jax import workdir as workdir_lib
from synergen_jax.training import data
from synergen_jax.training import experiment
from synergen_jax.training import report
from synergen_jax.training import trainer


def setup_compilation_cache(workdir: str) -> None:
  jax.config.update("jax_compilation_cache_dir", os.path.join(workdir, "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def prepare(config, workdir: str, mesh=None):
  """Validates the config (before any compile) and builds the shared run context."""
  config = experiment.resolve_workdir(config, workdir)
  model_config = experiment.validate(config, len(mesh.devices.flat) if mesh is not None
                                     else jax.device_count())
  tokenizer = workdir_lib.load_tokenizer(config, model_config)
  mesh = mesh if mesh is not None else sharding.make_mesh(config.mesh.shape)
  tcfg = experiment.train_config(config)
  if tcfg.compilation_cache:
    setup_compilation_cache(workdir)
  workdir_lib.write_config(workdir, config)
  validation = data.ValidationSets(config, tokenizer, model_config, mesh, tcfg.eval_batches)
  return trainer.RunContext(config=config, workdir=os.path.abspath(workdir),
                            model_config=model_config, mesh=mesh, tokenizer=tokenizer,
                            validation=validation, watcher=preemption.PreemptionWatcher())


def _init_eval(ctx) -> dict | None:
  """Validation of the first stage's starting params (once; cached in W/init_eval.json)."""
  path = os.path.join(ctx.workdir, "init_eval.json")
  if os.path.isfile(path):
    with open(path) as f:
      return json.load(f)
  first = ctx.config.stage_order[0]
  if workdir_lib.stage_done(ctx.workdir, first) or workdir_lib.stage_started(ctx.workdir,
                                                                             first):
    return None  # the starting point is no longer at hand; do not guess
  spec = trainer.spec_for(ctx, ("vision", "llm_attention", "llm"),
                          experiment.default_optimizer_config(), 1)
  params = trainer.initial_params(ctx, first, spec)
  val = trainer.evaluate(ctx, params, experiment.train_config(ctx.config).eval_sets)
  if jax.process_index() == 0:
    with open(path, "w") as f:
      json.dump(val, f, indent=2)
  trainer.log("[init] validation: " + trainer.fmt_val(val))
  return val


def run_experiment(config, workdir: str, stop_at: int | None = None, mesh=None,
                   ctx=None) -> dict:
  """Runs (or resumes) all stages; returns the report dict. `stop_at` stops every
  unfinished stage at that step (used by tests to simulate an interruption)."""
  ctx = ctx or prepare(config, workdir, mesh)
  init_eval = _init_eval(ctx)
  with ctx.watcher:
    for stage in ctx.config.stage_order:
      if workdir_lib.stage_done(ctx.workdir, stage):
        trainer.log(f"[{stage}] already finished; skipping")
        continue
      if trainer.run_stage(ctx, stage, stop_at=stop_at) is None:
        break
  out = report.collect(ctx.workdir, ctx.config, init_eval)
  if jax.process_index() == 0:
    report.write(ctx.workdir, out)
  return out
