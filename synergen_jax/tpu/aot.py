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
  - FLOPs per step: the compiled program's (`hlo_stats.hlo_stats`: matmuls with loop trip
    counts, Mosaic kernels estimated, split by model part; `cost_analysis()` alone counts
    every loop body once and is shown for reference) against the analytic model count
    (`flops.py`, split the same way) of full rows (see `analysis.capacity_counts`), and
    an MFU bound: analytic FLOPs over (step-time bound x chip peak x chips), the bound
    being the larger of the compiled FLOPs at peak and the collective bytes at the chip's
    ICI bandwidth (`hardware.CHIPS`);
  - the collectives of the compiled program (count and bytes per step per device).
`--json_out` saves the reports; `--render` turns saved reports into the markdown table of
docs/TPU_FIT.md. The work is in `compiler` (compile a stage), `analysis`, `hlo_stats`,
`fit` and `report` (see the package doc, `synergen_jax/tpu/__init__.py`).
"""

import json
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from synergen_jax import cli
from synergen_jax.tpu import fit, report

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
                               "this folder (hlo_stats.hlo_stats can re-read it).")


@cli.command
def main(argv):
  del argv
  if _RENDER.value and not _REANALYZE.value:
    print(report.render(_RENDER.value))
    return
  from synergen_jax import experiment  # keeps --help and --render free of JAX
  from synergen_jax.tpu import analysis, compiler  # keeps --help and --render free of JAX
  if _REANALYZE.value:
    for path in _REANALYZE.value:
      reports = analysis.reanalyze(path)
      with open(path, "w") as fh:
        json.dump(reports, fh, indent=2)
      for r in reports:
        print(report.format_report(r))
    return
  if _CONFIG.value is None or not _TOPOLOGY.value:
    raise app.UsageError("--config and --topology are required (or --render)")
  config = _CONFIG.value
  if _MESH.value:
    config.mesh.shape = tuple(int(x) for x in _MESH.value)
  exp = experiment.resolve(config, "/nonexistent")
  config_file = config_flags.get_config_filename(flags.FLAGS["config"])
  name = os.path.splitext(os.path.basename(config_file))[0]
  stages = _STAGES.value or list(exp.stage_order)
  devices = compiler.topology_devices(_TOPOLOGY.value, _CHIP_CONFIG.value, _SLICES.value)
  reports, status = [], 0
  for stage in stages:
    try:
      r = compiler.compile_stage(
          exp, stage, devices, topology=_TOPOLOGY.value, attention=_ATTENTION.value,
          headroom=_HEADROOM.value, hbm_bytes=_HBM_GIB.value * 2 ** 30,
          image_fraction=_IMAGE_FRACTION.value, require_fit=False, name=name,
          hlo_out=_HLO_OUT.value, config_file=config_file, num_slices=_SLICES.value)
    except (fit.FitError, ValueError) as e:  # ValueError: ConfigError among them
      print(f"error: {e}", file=sys.stderr, flush=True)
      status = max(status, 3 if isinstance(e, fit.FitError) else 2)
      continue
    if _SLICES.value > 1:
      r["topology"] = f"{_TOPOLOGY.value} x {_SLICES.value} slices"
    reports.append(r)
    print(report.format_report(r), flush=True)
    if not r["fits"]:
      try:
        fit.check_fit(r["memory"], r["hbm_bytes"], r["headroom"],
                      f"{name} stage {stage!r} on {r['topology']}")
      except fit.FitError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        status = 3
  if _JSON_OUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_JSON_OUT.value)), exist_ok=True)
    with open(_JSON_OUT.value, "w") as fh:
      json.dump(reports, fh, indent=2)
  if reports:
    print(report.TABLE_HEADER)
    for r in reports:
      print(report.table_row(r))
  sys.exit(status)


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
