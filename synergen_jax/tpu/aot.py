"""Ahead-of-time compilation of the real train step for a TPU topology, on any host.

  python -m synergen_jax.tpu.aot --config=experiments/synergen_vl_2_4b.py --topology=v5:8x8x4 \
      [--chip_config_name=megacore] [--num_slices=1] [--mesh=1,-1,1] [--stages=s1,sft] \
      [--json_out=F] [--hlo_out=DIR] [--headroom=0.1] [--config.stages.s1.grad_accum_steps=9]
  python -m synergen_jax.tpu.aot --render=F1.json,F2.json      # the docs table from saved runs
  python -m synergen_jax.tpu.aot --reanalyze=F1.json           # recompute from the saved HLO

`--topology` is a libtpu topology name (`v5:4x4x8`, `v6e:16x16`, `v4:4x4x4`, ...;
needs the `tpu` extra: `pip install -e ".[tpu]"`), or `cpu` for the present devices.
libtpu describes the pod without one (`jax.experimental.topologies.get_topology_desc`);
`--num_slices` > 1 describes a multi-slice pod, whose mesh must put a multiple of the
slice count on the data axis (it spans the slices over DCN, see `sharding.make_mesh`).
For every stage it builds exactly what the trainer builds (`StateSpec`,
`step.make_train_step` with the stage's tasks, batch sizes, lengths, gradient
accumulation and attention backend: the paper experiments use the Pallas splash kernel,
which lowers to the real Mosaic kernel for TPU devices), lowers it with abstract inputs,
compiles it for the topology's devices and prints:
  - per-device HBM (`memory_analysis`: arguments + outputs - donated + temporaries +
    code) against the chip's HBM less `--headroom`; a stage that does not fit, or that
    the TPU compiler rejects as out of memory, is an error (exit status 3) naming the
    knobs to turn, here rather than on the pod;
  - FLOPs per step: the compiled program's (`tpu_fit.hlo_stats`: matmuls with loop trip
    counts, Mosaic kernels estimated, split by model part; `cost_analysis()` alone counts
    every loop body once and is shown for reference) against the analytic model count
    (`flops.py`, split the same way) of full rows (see `capacity_counts`), and an MFU
    bound: analytic FLOPs over
    (step-time bound x chip peak x chips), the bound being the larger of the compiled
    FLOPs at peak and the collective bytes at the chip's ICI bandwidth;
  - the collectives of the compiled program (count and bytes per step per device).
`--json_out` saves the reports; `--render` turns saved reports into the markdown table of
docs/TPU_FIT.md.
"""

import dataclasses
import gzip
import json
import os
import re
import sys
import tempfile
import time

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment file (experiments/*.py).")
_TOPOLOGY = flags.DEFINE_string("topology", None, "libtpu topology name, or 'cpu'.")
_CHIP_CONFIG = flags.DEFINE_string("chip_config_name", "",
                                   "libtpu chip config (e.g. 'megacore' on v4 / v5p).")
_SLICES = flags.DEFINE_integer("num_slices", 1, "Slices of the topology (multi-slice pods).")
_MESH = flags.DEFINE_list("mesh", [], "Mesh (data, fsdp, tensor) overriding config.mesh.shape.")
_STAGES = flags.DEFINE_list("stages", [], "Stages to compile (default: config.stage_order).")
_ATTENTION = flags.DEFINE_string("attention", "", "Attention backend overriding the config's "
                                 "(model.attention_backend: the TPU experiments use splash).")
_HEADROOM = flags.DEFINE_float("headroom", 0.1, "Fraction of HBM kept free.")
_HBM_GIB = flags.DEFINE_float("hbm_gib", 0.0, "Per-device memory (GiB) overriding the chip's.")
_IMAGE_FRACTION = flags.DEFINE_float("image_fraction", 0.75,
                                     "Image share of a row in the analytic FLOP profile.")
_JSON_OUT = flags.DEFINE_string("json_out", "", "Write the stage reports (JSON list) here.")
_RENDER = flags.DEFINE_list("render", [], "Print the markdown table of saved JSON reports.")
_REANALYZE = flags.DEFINE_list("reanalyze", [], "Recompute saved reports (JSON) from their "
                                "saved HLO files (--hlo_out), in place.")
_HLO_OUT = flags.DEFINE_string("hlo_out", "", "Save each stage's optimized HLO text (gzip) in "
                               "this folder (tpu_fit.hlo_stats can re-read it).")

# The block size splash attention runs with (attention_ops.splash_attention's default).
SPLASH_BLOCK = 128


def topology_devices(name: str, chip_config_name: str = "", num_slices: int = 1) -> list:
  """Compile-only devices of a libtpu topology ('cpu' or 'cpu:N': present devices)."""
  import jax
  if name == "cpu" or name.startswith("cpu:"):
    devices = jax.devices("cpu")
    n = int(name.split(":")[1]) if ":" in name else len(devices)
    if n > len(devices):
      raise ValueError(f"--topology={name}: only {len(devices)} CPU devices are present")
    return devices[:n]
  try:
    import libtpu  # noqa: F401  (the tooling extra)
  except ImportError:
    raise ValueError(f"--topology={name}: TPU topologies need libtpu "
                     "(pip install -e \".[tpu]\")") from None
  from jax.experimental import topologies
  kwargs = {}
  if chip_config_name:
    kwargs["chip_config_name"] = chip_config_name
  if num_slices > 1:
    kwargs["num_slices"] = num_slices
  try:
    return list(topologies.get_topology_desc(name, "tpu", **kwargs).devices)
  except Exception as e:  # libtpu's errors are JaxRuntimeError / RuntimeError
    raise ValueError(f"--topology={name} {kwargs}: libtpu cannot describe it: {e}") from None


def capacity_counts(config, shapes: dict, image_fraction: float) -> dict:
  """Analytic-FLOP counts of full rows: per task `(rows, length)`, every position real and
  one example per row (causal attention over the whole row, which is what the kernel
  computes), every text position a text target, `image_fraction` of each row image
  tokens; generation rows have that many image targets, at most `max_gen_patches`."""
  counts = {}
  for task, (rows, length) in shapes.items():
    images = 0 if task == "text" else int(round(image_fraction * length))
    if task == "generation":
      images = min(images, config.max_gen_patches)
    counts[f"{task}/tokens"] = float(rows * length)
    counts[f"{task}/image_positions"] = float(rows * images)
    counts[f"{task}/context_sum"] = float(rows * length * (length + 1) / 2)
    counts[f"{task}/text_tokens"] = float(rows * (length - images - 1))
    counts[f"{task}/image_codes"] = float(
        rows * images * config.patch_size if task == "generation" else 0)
  return counts


def analytic_parts(config, counts: dict, trainable) -> dict:
  """`flops.step_flops` split into the parts `tpu_fit.model_part` names (same terms)."""
  from synergen_jax.training import flops
  c, h, g = config, config.head, set(trainable)
  m = lambda group: flops._mult(group in g)  # noqa: E731
  total = lambda key: float(sum(v for k, v in counts.items() if k.endswith("/" + key)))  # noqa: E731
  tokens, image_pos = total("tokens"), total("image_positions")
  context, text_targets, codes = total("context_sum"), total("text_tokens"), total("image_codes")
  d, hd = c.embed_dim, h.embed_dim
  attn_proj = 2 * d * c.head_dim * (c.num_heads + c.num_kv_heads)
  ffn = 3 * d * c.mlp_dim
  vision_ffn = "vision" if c.vision_experts else "llm"
  head_proj = 2 * hd * h.head_dim * (h.num_heads + h.num_kv_heads)
  return {
      "attention projections": c.num_layers * tokens * 2 * attn_proj * m("llm_attention"),
      "FFN experts (MMoE)": c.num_layers * 2 * ffn * ((tokens - image_pos) * m("llm")
                                                      + image_pos * m(vision_ffn)),
      "attention kernels (splash)": c.num_layers * context * 2 * 2 * c.num_heads * c.head_dim * 3,
      "token fold MLP": image_pos * 2 * (c.patch_size * c.code_embed_dim * d + d * d) * m("vision"),
      "LM head (vocabulary)": text_targets * 2 * d * c.total_vocab * m("llm"),
      "unfold head": (codes / c.patch_size * 2 * d * hd * m("vision")
                      + codes * 2 * h.num_layers * (head_proj + 3 * hd * h.mlp_dim) * m("vision")
                      + codes * h.num_layers * 2 * 2 * h.num_heads * h.head_dim
                      * (c.patch_size + 1) / 2 * 3),
      "head classifier (codebook)": codes * 2 * hd * c.codebook_size * m("vision"),
  }


def analyze(report: dict, hlo_text: str, model) -> dict:
  """Fills report["flops"], ["collectives"] and ["estimate"] from the compiled module's
  text (also for a saved report and HLO file: `--reanalyze`)."""
  from synergen_jax.training import flops
  from synergen_jax.tpu import hlo_stats as tpu_fit
  stats = tpu_fit.hlo_stats(hlo_text, SPLASH_BLOCK)
  n = report["devices"]
  shapes = {t: (v["rows"], v["length"]) for t, v in report["tasks"].items()}
  counts = capacity_counts(model, shapes, report["image_fraction"])
  analytic = flops.step_flops(model, counts, report["trainable"])
  report["flops"] = {
      "cost_analysis_per_device": report["cost_analysis_flops_per_device"],
      "compiled_per_device": stats["flops"],
      "compiled_kernels_per_device": stats["kernel_flops"],
      "compiled_attention_per_device": stats["attention_flops"],
      "compiled_total": stats["flops"] * n,
      "analytic_total": analytic,
      "compiled_over_analytic": stats["flops"] * n / max(analytic, 1.0),
      "unknown_loops": stats["unknown_loops"],
      "compiled_by_part_per_device": stats["by_part"],
      "analytic_by_part": analytic_parts(model, counts, report["trainable"]),
  }
  # XLA names the mesh axes it partitions over axis_0, axis_1, ... (the axes of size > 1).
  names = {f"axis_{i}": a for i, a in enumerate(a for a, k in report["mesh"].items() if k > 1)}
  for c in stats["collectives"].values():
    c["groups"] = sorted({",".join(names.get(x, x) for x in g.rpartition(":")[0].split(","))
                          + ":" + g.rpartition(":")[2] for g in c["groups"]})
  report["collectives"] = stats["collectives"]
  chip = tpu_fit.tpu_chip_named(report["chip"])
  if chip is not None:
    compute_s = stats["flops"] / chip.peak_flops
    comm_bytes = sum(c["bytes"] for c in stats["collectives"].values())
    # A ring all-reduce moves each byte twice (reduce-scatter + all-gather).
    moved = sum(c["bytes"] * (2 if k == "all-reduce" else 1)
                for k, c in stats["collectives"].items())
    comm_s = moved / chip.ici_bytes_per_s
    bound = max(compute_s, comm_s)
    report["estimate"] = {
        "peak_flops": chip.peak_flops, "compute_s": compute_s, "collective_bytes": comm_bytes,
        "ici_s": comm_s, "step_s": bound,
        "mfu": analytic / max(bound * chip.peak_flops * n, 1e-9),
    }
  return report


def reanalyze(path: str) -> list[dict]:
  """Recomputes the statistics of saved reports from their saved HLO files."""
  from synergen_jax.model import ModelConfig
  from synergen_jax.training import experiment
  with open(path) as fh:
    reports = json.load(fh)
  for r in reports:
    config_file = r.get("config_file") or f"experiments/{r['experiment']}.py"
    config = experiment.load_sibling(config_file, os.path.splitext(
        os.path.basename(config_file))[0]).get_config()
    model = dataclasses.replace(ModelConfig.from_config_dict(config.model),
                                attention_backend=r["attention"])
    r.setdefault("image_fraction", r.get("flops", {}).get("image_fraction", 0.75))
    r.setdefault("cost_analysis_flops_per_device",
                 r.get("flops", {}).get("cost_analysis_per_device", 0.0))
    with gzip.open(r["hlo_file"], "rt") as fh:
      analyze(r, fh.read(), model)
  return reports


def _abstract_batches(config, mesh, shapes: dict) -> dict:
  """{task: batch of ShapeDtypeStructs} with the train step's batch shardings (the
  batch contract of `model.dummy.dummy_batch`)."""
  import jax
  from synergen_jax.model.dummy import dummy_batch
  from synergen_jax.training import step as step_lib
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


def stage_shapes(config, stage: str) -> dict:
  """{task: (global rows, length)} of a stage's train batches."""
  from synergen_jax.training import experiment
  tasks = experiment.stage_tasks(config, stage)
  if tasks == ("text",):
    t = experiment.stage_text_config(config, stage)
    return {"text": (int(t.batch_size), int(t.seq_len))}
  d = experiment.stage_data_config(config, stage)
  return {t: (int(d[t].batch_size), int(d[t].seq_len)) for t in tasks}


def compile_stage(config, stage: str, devices, *, topology: str = "", attention: str = "",
                  headroom: float = 0.1, hbm_bytes: float = 0.0, image_fraction: float = 0.75,
                  require_fit: bool = True, name: str = "", hlo_out: str = "",
                  config_file: str = "") -> dict:
  """Compiles `stage`'s train step for `devices`; returns the report (see module doc).

  Raises experiment.ConfigError for a config that cannot run on that many devices and
  tpu_fit.FitError (after building the report) when it does not fit."""
  import jax
  from synergen_jax import sharding
  from synergen_jax.model import ModelConfig
  from synergen_jax.training import experiment, flops
  from synergen_jax.tpu import hlo_stats as tpu_fit
  from synergen_jax.training import step as step_lib
  from synergen_jax.training.state import StateSpec

  model = experiment.validate(config, len(devices), check_files=False)
  attention = attention or model.attention_backend
  model = dataclasses.replace(model, attention_backend=attention)
  st = experiment.stage_config(config, stage)
  tasks = experiment.stage_tasks(config, stage)
  shapes = stage_shapes(config, stage)
  accum = int(st.grad_accum_steps)
  mesh = sharding.make_mesh(config.mesh.shape, devices)
  batch_parallel = mesh.shape["data"] * mesh.shape["fsdp"]
  chip = tpu_fit.tpu_chip(devices[0].device_kind)
  capacity = hbm_bytes or (chip.hbm_bytes if chip else 0.0)
  report = {
      "experiment": name, "stage": stage, "topology": topology or devices[0].platform,
      "devices": len(devices), "device_kind": devices[0].device_kind,
      "chip": chip.name if chip else None, "mesh": dict(mesh.shape),
      "trainable": list(st.trainable), "attention": attention,
      "remat": model.remat_policy, "grad_accum_steps": accum,
      "loss_chunk_size": model.loss_chunk_size, "max_gen_patches": model.max_gen_patches,
      "tasks": {t: {"rows": r, "length": l, "rows_per_device": r // batch_parallel / accum}
                for t, (r, l) in shapes.items()},
  }
  options = dict(experiment.to_json(experiment.train_config(config).xla_compiler_options))
  spec = StateSpec(model, mesh, tuple(st.trainable), st.optimizer, int(st.steps), options)
  train_step = step_lib.make_train_step(spec, tasks, accum, options)
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
      message = tpu_fit.resource_exhausted_message(e)
      if message is None:
        raise
      error = tpu_fit.FitError(f"{what}: the compiler ran out of device memory: {message}")
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

  memory = tpu_fit.memory_summary(compiled.memory_analysis())
  report["memory"] = memory
  report["hbm_bytes"] = capacity
  report["config_file"] = config_file
  report["image_fraction"] = image_fraction
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else (cost or {})
  report["cost_analysis_flops_per_device"] = float(cost.get("flops", 0.0))
  analyze(report, text, model)
  fits = capacity <= 0 or memory["total_bytes"] <= (1 - headroom) * capacity
  report["fits"], report["headroom"] = fits, headroom
  if require_fit and capacity > 0:
    try:
      tpu_fit.check_fit(memory, capacity, headroom, what)
    except tpu_fit.FitError as e:
      e.report = report
      raise
  return report


# ---- printing ---------------------------------------------------------------------------------
def _g(x: float) -> str:
  return f"{x / 2 ** 30:.2f}"


def format_report(r: dict) -> str:
  m, f = r["memory"], r["flops"]
  tasks = ", ".join(f"{t} {v['rows']} x {v['length']} ({v['rows_per_device']:g}/device)"
                    for t, v in r["tasks"].items())
  lines = [
      f"== {r['experiment']} stage {r['stage']}: {r['topology']} = {r['devices']} x "
      f"{r['device_kind']}, mesh {r['mesh']}",
      f"  batches {tasks}; grad_accum {r['grad_accum_steps']}; remat {r['remat']}; "
      f"attention {r['attention']}; trains {'+'.join(r['trainable'])}",
      f"  compile {r['compile_s']:.1f}s (lower {r['lower_s']:.1f}s)",
      f"  HBM per device {_g(m['total_bytes'])} GiB = arguments {_g(m['argument_bytes'])} + "
      f"outputs {_g(m['output_bytes'])} - donated {_g(m['alias_bytes'])} + temporaries "
      f"{_g(m['temp_bytes'])} + code {_g(m['code_bytes'])}"
      + (f"; capacity {_g(r['hbm_bytes'])} GiB, headroom {r['headroom']:.0%}: "
         f"{'fits' if r['fits'] else 'DOES NOT FIT'}" if r["hbm_bytes"] else ""),
      f"  FLOPs per step: compiled {f['compiled_total']:.4g} (per device "
      f"{f['compiled_per_device']:.4g}, of which splash attention "
      f"{f['compiled_attention_per_device']:.3g}; cost_analysis {f['cost_analysis_per_device']:.3g}"
      f" counts loop bodies once); analytic {f['analytic_total']:.4g}; compiled / analytic "
      f"{f['compiled_over_analytic']:.2f}"
      + (f"; {f['unknown_loops']} loops of unknown trip count counted once"
         if f["unknown_loops"] else ""),
  ]
  if "estimate" in r:
    e = r["estimate"]
    lines.append(f"  estimate: compute {e['compute_s']:.3f}s at {e['peak_flops'] / 1e12:.0f} "
                 f"TFLOP/s, collectives {e['collective_bytes'] / 2 ** 30:.2f} GiB ~ "
                 f"{e['ici_s']:.3f}s at ICI bandwidth -> step >= {e['step_s']:.3f}s, "
                 f"MFU <= {e['mfu']:.1%}")
  parts = f.get("compiled_by_part_per_device", {})
  if parts:
    ana = f.get("analytic_by_part", {})
    lines.append("  compiled FLOPs by part (share; compiled / analytic):")
    for k, v in parts.items():
      ratio = v * r["devices"] / ana[k] if ana.get(k) else float("nan")
      lines.append(f"    {k:<30s}{v / max(f['compiled_per_device'], 1):>6.1%}   {ratio:6.2f}")
  lines.append("  collectives per step per device:")
  for kind, c in r["collectives"].items():
    lines.append(f"    {kind:<20s}{c['count']:>10,.0f} x  {c['bytes'] / 2 ** 30:10.3f} GiB  "
                 f"groups {' '.join(c['groups'])}")
  return "\n".join(lines)


TABLE_HEADER = (
    "| experiment | stage | topology (chips) | mesh (data, fsdp, tensor) | rows/device x "
    "micro-batches | remat | HBM/device GiB (of) | compile s | FLOPs/step compiled | "
    "analytic | compiled/analytic | step s (bound) | est. MFU (bound) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def table_row(r: dict) -> str:
  f, m = r["flops"], r["memory"]
  rows = " / ".join(f"{v['rows_per_device']:g}" for v in r["tasks"].values())
  mesh = ", ".join(str(v) for v in r["mesh"].values())
  mfu = f"{r['estimate']['mfu']:.0%}" if "estimate" in r else "n/a"
  step = f"{r['estimate']['step_s']:.2f}" if "estimate" in r else "n/a"
  return (f"| {r['experiment']} | {r['stage']} | {r['topology']} ({r['devices']}) | {mesh} | "
          f"{rows} x {r['grad_accum_steps']} | {r['remat']} | {_g(m['total_bytes'])} "
          f"({_g(r['hbm_bytes'])}) | {r['compile_s']:.0f} | {f['compiled_total']:.3g} | "
          f"{f['analytic_total']:.3g} | {f['compiled_over_analytic']:.2f} | {step} | {mfu} |")


def render(paths) -> str:
  reports = []
  for p in paths:
    with open(p) as fh:
      reports.extend(json.load(fh))
  return "\n".join([TABLE_HEADER] + [table_row(r) for r in reports])


def main(argv):
  del argv
  if _REANALYZE.value:
    for path in _REANALYZE.value:
      reports = reanalyze(path)
      with open(path, "w") as fh:
        json.dump(reports, fh, indent=2)
      for r in reports:
        print(format_report(r))
    return
  if _RENDER.value:
    print(render(_RENDER.value))
    return
  if _CONFIG.value is None or not _TOPOLOGY.value:
    raise app.UsageError("--config and --topology are required (or --render)")
  from synergen_jax.training import experiment
  from synergen_jax.tpu import hlo_stats as tpu_fit
  config = experiment.resolve_workdir(_CONFIG.value, "/nonexistent")
  if _MESH.value:
    config.mesh.shape = tuple(int(x) for x in _MESH.value)
  config_file = config_flags.get_config_filename(flags.FLAGS["config"])
  name = os.path.splitext(os.path.basename(config_file))[0]
  stages = _STAGES.value or list(config.stage_order)
  try:
    devices = topology_devices(_TOPOLOGY.value, _CHIP_CONFIG.value, _SLICES.value)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
  reports, status = [], 0
  for stage in stages:
    try:
      r = compile_stage(config, stage, devices, topology=_TOPOLOGY.value,
                        attention=_ATTENTION.value, headroom=_HEADROOM.value,
                        hbm_bytes=_HBM_GIB.value * 2 ** 30, image_fraction=_IMAGE_FRACTION.value,
                        require_fit=False, name=name, hlo_out=_HLO_OUT.value,
                        config_file=config_file)
    except (experiment.ConfigError, tpu_fit.FitError, ValueError) as e:
      print(f"error: {e}", file=sys.stderr, flush=True)
      status = max(status, 3 if isinstance(e, tpu_fit.FitError) else 2)
      continue
    if _SLICES.value > 1:
      r["topology"] = f"{_TOPOLOGY.value} x {_SLICES.value} slices"
    reports.append(r)
    print(format_report(r), flush=True)
    if not r["fits"]:
      try:
        tpu_fit.check_fit(r["memory"], r["hbm_bytes"], r["headroom"],
                          f"{name} stage {stage!r} on {r['topology']}")
      except tpu_fit.FitError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        status = 3
  if _JSON_OUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_JSON_OUT.value)), exist_ok=True)
    with open(_JSON_OUT.value, "w") as fh:
      json.dump(reports, fh, indent=2)
  if reports:
    print(TABLE_HEADER)
    for r in reports:
      print(table_row(r))
  sys.exit(status)


def run():
  app.run(main)


if __name__ == "__main__":
  run()
