"""TPU tooling: ahead-of-time compilation of the train step for a libtpu topology.

  aot.py        the CLI: python -m synergen_jax.tpu.aot --config=... --topology=v5:8x8x4
  compiler.py   compile a stage's real train step for a topology's devices (the report)
  analysis.py   compiled vs analytic FLOPs, collectives, step-time / MFU bound
  hlo.py        reading optimized HLO text: computations, shapes, loop trip counts
  hlo_stats.py  FLOPs (matmuls, Mosaic kernels, by model part) and collectives of a module
  fit.py        HBM fit of a compiled step (FitError), the TPU chips of `hardware.CHIPS`
  report.py     the text report and the markdown table of docs/TPU_FIT.md

The chip table itself is `synergen_jax/hardware.py` (shared with the trainer's MFU).
"""
