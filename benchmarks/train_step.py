"""Measures train-step throughput and MFU of the real (jitted, sharded) train step.

  python benchmarks/train_step.py [--models=demo,qwen2_0_5b] [--steps=3]
      [--stages=stage1,sft] [--qwen_batch=1] [--qwen_length=256]

For each model and stage (stage1 trains `vision`; sft trains everything) it builds the
experiment's model on all present devices (mesh (1, n, 1)), runs one compile step and
`--steps` timed steps on synthetic understanding + generation batches (one batch per task
per step), and prints a table: tokens/s (non-pad), step time, analytic model TFLOP per step
(training/flops.py, frozen weights get no weight-gradient FLOPs), and MFU against the
device's peak (spec sheet for TPU/GPU; on CPU a measured f32 matmul peak).
On a GPU the model runs in bf16 with cuDNN attention. The 0.5B model on a CPU runs at a
reduced batch/length (--qwen_batch x --qwen_length per task; the paper's ablation uses
longer rows), which the table states.
"""

import dataclasses
import os
import sys
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

_MODELS = flags.DEFINE_list("models", ["demo", "qwen2_0_5b"], "experiments to measure")
_STAGES = flags.DEFINE_list("stages", ["stage1", "sft"], "stage1 (vision) and/or sft (all)")
_STEPS = flags.DEFINE_integer("steps", 3, "timed steps after the compile step")
_DEMO_BATCH = flags.DEFINE_integer("demo_batch", 8, "demo rows per task")
_DEMO_LENGTH = flags.DEFINE_integer("demo_length", 128, "demo row length")
_QWEN_BATCH = flags.DEFINE_integer("qwen_batch", 1, "0.5B rows per task per device")
_QWEN_LENGTH = flags.DEFINE_integer("qwen_length", 256, "0.5B row length")

GROUPS = {"stage1": ("vision",), "stage2": ("vision", "llm_attention"),
          "sft": ("vision", "llm_attention", "llm")}


def _model_config(name: str, length: int):
  import jax
  from synergen_jax.model import ModelConfig
  from synergen_jax import experiment
  exp = experiment.load_sibling(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                             "..", "experiments", "x.py"), name).get_config()
  config = ModelConfig.from_config_dict(exp.model)
  if jax.default_backend() == "gpu":
    config = dataclasses.replace(config, dtype="bfloat16", attention_backend="cudnn")
  # Head budget: every image patch a synthetic row can hold (nothing dropped, nothing idle).
  return dataclasses.replace(config, max_gen_patches=min(config.max_gen_patches, length))


def measure(name: str, stage: str, batch: int, length: int, steps: int) -> dict:
  import jax
  import numpy as np
  from synergen_jax import sharding
  from synergen_jax.model.synthetic import synthetic_task_batch
  from synergen_jax import experiment
  from synergen_jax.state import train_state as state_lib
  from synergen_jax.training import flops, step as step_lib
  config = _model_config(name, length)
  mesh = sharding.make_mesh((1, -1, 1))
  n = jax.device_count()
  opt = experiment.Optimizer.from_config()
  spec = state_lib.StateSpec(config, mesh, GROUPS[stage], opt, 1000)
  state = spec.state_from_params(spec.init_params(0))
  rng = np.random.default_rng(0)
  per = max(1, length // (config.patches_per_tile + 16))  # examples per row
  batches = [{t: synthetic_task_batch(config, rng, batch * n, length, t, per)
              for t in ("understanding", "generation")} for _ in range(2)]
  fn = step_lib.make_train_step(spec, ("understanding", "generation"))
  with sharding.mesh_context(mesh):
    t0 = time.perf_counter()
    state, metrics = fn(state, batches[0])
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    history = []
    t0 = time.perf_counter()
    for i in range(steps):
      state, metrics = fn(state, batches[(i + 1) % 2])
      history.append(metrics)
    jax.block_until_ready(history)
    elapsed = time.perf_counter() - t0
  host = jax.device_get(history)
  counts = flops.total_counts(host)
  tokens = sum(v for k, v in counts.items() if k.endswith("/tokens"))
  step_flops = flops.step_flops(config, counts, GROUPS[stage]) / steps
  peak, source = flops.device_peak_flops()
  step_s = elapsed / steps
  return {"model": name, "stage": stage, "devices": f"{n} x {jax.devices()[0].device_kind}",
          "dtype": config.dtype, "rows": f"{batch * n} x {length} per task",
          "compile_s": compile_s, "step_s": step_s, "tokens_per_s": tokens / elapsed,
          "tflop_per_step": step_flops / 1e12,
          "mfu": flops.mfu(step_flops / step_s, peak, n), "peak": f"{peak / 1e12:.3g} TFLOP/s "
          f"per device ({source})"}


def main(argv):
  del argv
  rows = []
  for name in _MODELS.value:
    big = name != "demo"
    batch = _QWEN_BATCH.value if big else _DEMO_BATCH.value
    length = _QWEN_LENGTH.value if big else _DEMO_LENGTH.value
    for stage in _STAGES.value:
      r = measure(name, stage, batch, length, _STEPS.value)
      rows.append(r)
      print(r, flush=True)
  cols = ("model", "stage", "devices", "dtype", "rows", "compile_s", "step_s", "tokens_per_s",
          "tflop_per_step", "mfu")
  print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
  for r in rows:
    cells = [f"{r[c]:.4g}" if isinstance(r[c], float) and c != "mfu" else
             (f"{100 * r[c]:.2f}%" if c == "mfu" else str(r[c])) for c in cols]
    print("| " + " | ".join(cells) + " |")
  print(f"\npeak: {rows[0]['peak']}")


if __name__ == "__main__":
  app.run(main)
