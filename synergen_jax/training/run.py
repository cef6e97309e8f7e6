"""Running an experiment: validate, prepare the shared context, train every stage, report.

  ctx = prepare(config, workdir)          # resolves and validates before any compile
  report = run_experiment(config, workdir) # all stages of config.stage_order, resumable

`config` is the experiment file's ConfigDict: it is resolved here, once, into the typed
`experiment.Experiment` that everything downstream reads.

The CLI is `python -m synergen_jax.train`; the demo job (`synergen_jax.demo`) calls
`run_experiment` after preparing its data.
"""

import json
import os

import jax

from synergen_jax import experiment
from synergen_jax import preemption
from synergen_jax import sharding
from synergen_jax import workdir as workdir_lib
from synergen_jax.training import data
from synergen_jax.training import report
from synergen_jax.training import trainer
from synergen_jax.training.compiled import Compiled


def setup_compilation_cache(workdir: str) -> None:
  jax.config.update("jax_compilation_cache_dir", os.path.join(workdir, "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def prepare(config, workdir: str, mesh=None, compiled: Compiled | None = None):
  """Resolves (a ConfigDict; an `experiment.Experiment` is taken as it is) and validates
  the experiment before any compile, and builds the shared run context. The run compiles
  its functions into `compiled` (a new one by default; another run's of the same model,
  mesh and XLA options reuses what that run compiled)."""
  exp = (config if isinstance(config, experiment.Experiment)
         else experiment.resolve(config, workdir))
  experiment.validate(exp, len(mesh.devices.flat) if mesh is not None
                      else jax.device_count())
  mesh = mesh if mesh is not None else sharding.make_mesh(exp.mesh_shape)
  options = exp.train.xla_compiler_options
  if compiled is None:
    compiled = Compiled(exp.model, mesh, options)
  elif compiled.key != (exp.model, mesh, tuple(options)):
    raise ValueError("`compiled` was built for another model, mesh or XLA options")
  tokenizer = workdir_lib.load_tokenizer(exp)
  if exp.train.compilation_cache:
    setup_compilation_cache(workdir)
  workdir_lib.write_config(workdir, exp)
  validation = data.ValidationSets(exp, tokenizer, mesh)
  return trainer.RunContext(experiment=exp, workdir=os.path.abspath(workdir), mesh=mesh,
                            tokenizer=tokenizer, validation=validation,
                            watcher=preemption.PreemptionWatcher(), compiled=compiled)


def _init_eval(ctx) -> dict | None:
  """Validation of the first stage's starting params (once; cached in W/init_eval.json)."""
  path = os.path.join(ctx.workdir, "init_eval.json")
  if os.path.isfile(path):
    with open(path) as f:
      return json.load(f)
  first = ctx.experiment.stage_order[0]
  if workdir_lib.stage_done(ctx.workdir, first) or workdir_lib.stage_started(ctx.workdir,
                                                                             first):
    return None  # the starting point is no longer at hand; do not guess
  params = trainer.initial_params(ctx, first, ctx.compiled.full_spec())
  val = trainer.evaluate(ctx, params, ctx.experiment.train.eval_sets)
  if jax.process_index() == 0:
    with open(path, "w") as f:
      json.dump(val, f, indent=2)
  trainer.log("[init] validation: " + trainer.fmt_val(val))
  return val


def run_experiment(config, workdir: str, stop_at: int | None = None, mesh=None,
                   ctx=None, compiled: Compiled | None = None) -> dict:
  """Runs (or resumes) all stages; returns the report dict. `stop_at` stops every
  unfinished stage at that step (used by tests to simulate an interruption); `compiled`:
  see `prepare`."""
  ctx = ctx or prepare(config, workdir, mesh, compiled)
  init_eval = _init_eval(ctx)
  with ctx.watcher:
    for stage in ctx.experiment.stage_order:
      if workdir_lib.stage_done(ctx.workdir, stage):
        trainer.log(f"[{stage}] already finished; skipping")
        continue
      if trainer.run_stage(ctx, stage, stop_at=stop_at) is None:
        break
  out = report.collect(ctx.workdir, ctx.experiment, init_eval)
  if jax.process_index() == 0:
    report.write(ctx.workdir, out)
  return out
