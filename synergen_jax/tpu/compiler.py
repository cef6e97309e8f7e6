"""The AOT compile driver: a stage's real train step (what the trainer builds), lowered
with abstract inputs and compiled for the devices of a libtpu topology (or the present CPU
devices), with its HBM fit, FLOPs and collectives (`analysis.analyze`) in a report.
"""

import dataclasses
import gzip
import os
import re
import tempfile
import time

import jax
from jax.experimental import topologies

from synergen_jax import experiment
from synergen_jax import sharding
from synergen_jax.model.dummy import dummy_batch
from synergen_jax.state import freezing
from synergen_jax.state.train_state import StateSpec
from synergen_jax.tpu import analysis, fit
from synergen_jax.training import step as step_lib


def topology_devices(name: str, chip_config_name: str = "", num_slices: int = 1) -> list:
  """Compile-only devices of a libtpu topology ('cpu' or 'cpu:N': present devices)."""
  if name == "cpu" or name.startswith("cpu:"):
    devices = jax.devices("cpu")
    n = int(name.split(":")[1]) if ":" in name else len(devices)
    if n > len(devices):
      raise ValueError(f"--topology={name}: only {len(devices)} CPU devices are present")
    return devices[:n]
  try:
    import libtpu  # noqa: F401  keeps the `tpu` extra optional
  except ImportError:
    raise ValueError(f"--topology={name}: TPU topologies need libtpu "
                     "(pip install -e \".[tpu]\")") from None
  kwargs = {}
  if chip_config_name:
    kwargs["chip_config_name"] = chip_config_name
  if num_slices > 1:
    kwargs["num_slices"] = num_slices
  try:
    return list(topologies.get_topology_desc(name, "tpu", **kwargs).devices)
  except Exception as e:  # libtpu's errors are JaxRuntimeError / RuntimeError
    raise ValueError(f"--topology={name} {kwargs}: libtpu cannot describe it: {e}") from None


def _abstract_batches(config, mesh, shapes: dict) -> dict:
  """{task: batch of ShapeDtypeStructs} with the train step's batch shardings (the
  batch contract of `model.dummy.dummy_batch`)."""
  sh = step_lib.batch_shardings(mesh, tuple(shapes))
  out = {}
  for task, (rows, length) in shapes.items():
    batch = jax.eval_shape(lambda r=rows, l=length: dummy_batch(config, r, l))
    out[task] = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sh[task])
                 for k, v in batch.items()}
  return out


def _dumped(dump: str) -> tuple[str, list[str]]:
  """(optimized HLO text, the largest device-memory buffers) from an XLA dump folder."""
  text, buffers = "", []
  names = sorted(os.listdir(dump)) if os.path.isdir(dump) else []
  opt = [n for n in names if n.endswith(".after_optimizations.txt")]
  if opt:
    with open(os.path.join(dump, max(opt, key=lambda n: os.path.getsize(
        os.path.join(dump, n))))) as f:
      text = f.read()
  report = [n for n in names if n.endswith("memory-usage-report.txt")]
  if report:
    with open(os.path.join(dump, report[0])) as f:
      for line in f:
        if line.startswith("Memory Space:") and buffers:
          break  # only the first (default = HBM) memory space
        if ";" in line and "(" in line.split(";")[0]:
          buffers.append(" ".join(line.split()))
        if len(buffers) >= 8:
          break
  return text, buffers


def stage_shapes(stage) -> dict:
  """{task: (global rows, length)} of the train batches of `stage` (an
  `experiment.Stage`): text replay from its text_data, the vision tasks from its data."""
  def shape(task):
    d = stage.text_data if task == "text" else stage.data.task(task)
    return d.batch_size, d.seq_len
  return {t: shape(t) for t in stage.tasks}


def compile_stage(exp, stage: str, devices, *, topology: str = "", attention: str = "",
                  headroom: float = 0.1, hbm_bytes: float = 0.0, image_fraction: float = 0.75,
                  require_fit: bool = True, name: str = "", hlo_out: str = "",
                  config_file: str = "", num_slices: int = 1) -> dict:
  """Compiles `stage`'s train step for `devices`; returns the report (see the
  CLI's doc, `synergen_jax.tpu.aot`).

  `exp` is a resolved `experiment.Experiment`. Raises experiment.ConfigError for one that
  cannot run on that many devices and fit.FitError (after building the report) when it
  does not fit."""
  experiment.validate(exp, len(devices), check_files=False)
  attention = attention or exp.model.attention_backend
  model = dataclasses.replace(exp.model, attention_backend=attention)
  st = exp.stage(stage)
  tasks = st.tasks
  shapes = stage_shapes(st)
  accum = st.grad_accum_steps
  mesh = sharding.make_mesh(exp.mesh_shape, devices)
  batch_parallel = mesh.shape["data"] * mesh.shape["fsdp"]
  chip = fit.tpu_chip(devices[0].device_kind)
  capacity = hbm_bytes or (chip.hbm_bytes if chip else 0.0)
  report = {
      "experiment": name, "stage": stage, "topology": topology or devices[0].platform,
      "devices": len(devices), "device_kind": devices[0].device_kind,
      "chip": chip.name if chip else None, "mesh": dict(mesh.shape),
      "trainable": list(st.trainable), "attention": attention,
      "remat": model.remat_policy, "grad_accum_steps": accum,
      "loss_chunk_size": model.loss_chunk_size,
      "max_gen_patches": st.max_gen_patches or model.max_gen_patches,
      "max_text_targets": model.max_text_targets, "mmoe_impl": model.mmoe_impl,
      "tasks": {t: {"rows": r, "length": l, "rows_per_device": r // batch_parallel / accum}
                for t, (r, l) in shapes.items()},
  }
  options = exp.train.compiler_options
  spec = StateSpec(model, mesh, st.trainable, st.optimizer, st.steps, options)
  # What a multi-slice step reduces across slices (analysis.dcn_seconds).
  report["num_slices"] = num_slices
  report["trainable_param_bytes"] = float(freezing.num_bytes(
      freezing.split(spec.param_abstract, st.trainable)[0]))
  train_step = step_lib.make_train_step(spec, tasks, accum, options,
                                        max_gen_patches=st.max_gen_patches)
  batches = _abstract_batches(model, mesh, shapes)
  what = (f"stage {stage!r} on {report['topology']} ({len(devices)} x "
          f"{devices[0].device_kind}, mesh {tuple(mesh.shape.values())})")
  t0 = time.perf_counter()
  with sharding.mesh_context(mesh):
    lowered = train_step.lower(spec.abstract_with_shardings(), batches)
  t1 = time.perf_counter()
  with tempfile.TemporaryDirectory() as dump:
    try:
      # The compiler writes the optimized module as text: `compiled.as_text()` goes
      # through a proto round trip that fails on some big TPU modules (async-update).
      compiled = lowered.compile({"xla_dump_to": dump, "xla_dump_hlo_as_text": True,
                                  "xla_dump_hlo_module_re": "jit_step"})
    except Exception as e:  # JaxRuntimeError; out of memory is a fit error
      message = fit.resource_exhausted_message(e)
      if message is None:
        raise
      error = fit.FitError(f"{what}: the compiler ran out of device memory: {message}")
      error.report = report
      raise error from None
    t2 = time.perf_counter()
    text, report["largest_buffers"] = _dumped(dump)
  text = text or compiled.as_text()
  if hlo_out:
    os.makedirs(hlo_out, exist_ok=True)
    mesh_name = "x".join(str(v) for v in mesh.shape.values())
    where = re.sub(r"[^A-Za-z0-9]+", "_", f"{report['topology']}_{len(devices)}_{mesh_name}")
    path = os.path.join(hlo_out, f"{name or 'step'}.{stage}.{where}.hlo.txt.gz")
    with gzip.open(path, "wt") as f:
      f.write(text)
    report["hlo_file"] = path
  report["lower_s"], report["compile_s"] = t1 - t0, t2 - t1

  memory = fit.memory_summary(compiled.memory_analysis())
  report["memory"] = memory
  report["hbm_bytes"] = capacity
  report["config_file"] = config_file
  report["image_fraction"] = image_fraction
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else (cost or {})
  report["cost_analysis_flops_per_device"] = float(cost.get("flops", 0.0))
  analysis.analyze(report, text, model)
  fits = capacity <= 0 or memory["total_bytes"] <= (1 - headroom) * capacity
  report["fits"], report["headroom"] = fits, headroom
  if require_fit and capacity > 0:
    try:
      fit.check_fit(memory, capacity, headroom, what)
    except fit.FitError as e:
      e.report = report
      raise
  return report
