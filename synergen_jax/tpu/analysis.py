"""What a compiled step does against what the model needs: the compiled program's FLOPs
and collectives (`hlo_stats`), the analytic FLOPs of full rows (`flops.step_flops_by_part`:
the same model parts), and the step-time / MFU bound on the chip (`hardware.CHIPS`).
`analyze` fills a report (`compiler.compile_stage`); `reanalyze` redoes it from a saved
report and its saved HLO (`--reanalyze`).
"""

import dataclasses
import gzip
import json
import os

from synergen_jax import experiment
from synergen_jax.model import ModelConfig
from synergen_jax.tpu import fit, hlo_stats
from synergen_jax.training import flops
from synergen_jax.training import step as step_lib

# The block size splash attention runs with (attention_ops.splash_attention's default).
SPLASH_BLOCK = 128


def capacity_counts(config, shapes: dict, image_fraction: float) -> dict:
  """Analytic-FLOP counts of full rows: per task `(rows, length)`, every position real and
  one example per row (causal attention over the whole row, which is what the kernel
  computes), every text position a text target (at most `max_text_targets` per
  multimodal row), `image_fraction` of each row image tokens; generation rows have that
  many image targets, at most `max_gen_patches`."""
  counts = {}
  for task, (rows, length) in shapes.items():
    images = 0 if task == "text" else int(round(image_fraction * length))
    if task == "generation":
      images = min(images, config.max_gen_patches)
    counts[f"{task}/tokens"] = float(rows * length)
    counts[f"{task}/image_positions"] = float(rows * images)
    counts[f"{task}/context_sum"] = float(rows * length * (length + 1) / 2)
    text = length - images - 1
    if task != "text" and config.max_text_targets > 0:
      text = min(text, config.max_text_targets)  # the model drops (and counts) the rest
    counts[f"{task}/text_tokens"] = float(rows * text)
    counts[f"{task}/image_codes"] = float(
        rows * images * config.patch_size if task == "generation" else 0)
  return counts


def dcn_seconds(trainable_bytes: float, devices: int, slices: int,
                dcn_bytes_per_s: float) -> tuple[float, float]:
  """(bytes per chip, seconds) of a multi-slice step's cross-slice gradient reduction.

  The data axis spans the slices (`sharding.make_mesh`), so once per step every chip
  all-reduces its shard of the trainable gradients (1 / chips-per-slice of them) with
  its peers in the other slices over the data-center network: a ring all-reduce moves
  2 (S - 1) / S of the shard. The compiled module a CPU host dumps does not hold this
  reduction among its collectives, hence the estimate from the parameter bytes."""
  if slices <= 1 or dcn_bytes_per_s <= 0:
    return 0.0, 0.0
  moved = 2 * (slices - 1) / slices * trainable_bytes / (devices / slices)
  return moved, moved / dcn_bytes_per_s


# HBM bytes per logit of the cross-entropy's element-wise work (the logits are produced
# and consumed by matmuls; what lies between is memory-bound). fused: f32 logits written,
# read by the log-sum-exp and again by softmax - onehot, bf16 gradient written and read
# by the two gradient matmuls: 4 + 4 + 4 + 2 + 2 x 2. chunked (autodiff under
# jax.checkpoint): the forward's 4 + 4 + 4 (lse, target / argmax), its recompute in the
# backward pass 4 + 4, and the gradient 4 (read) + 2 + 2 x 2.
LOSS_BYTES_PER_LOGIT = {"fused": 18, "chunked": 30}


def loss_hbm_bytes(model, report: dict) -> float:
  """HBM bytes per device per step of the losses' element-wise work: every class of
  every position each output head runs on (the text-target / image-target budgets),
  times `LOSS_BYTES_PER_LOGIT`. Neither MFU estimate includes its time."""
  logits = 0.0
  for task, t in report["tasks"].items():
    rows = t["rows_per_device"] * report["grad_accum_steps"]
    # what the train step gives the model (the stage's head budget, in the report)
    budgets = step_lib.head_budgets(model, task, report.get("max_gen_patches"))
    text = min(t["length"], budgets["max_text_targets"] or t["length"])
    logits += rows * text * model.total_vocab
    logits += rows * budgets["max_gen_patches"] * model.patch_size * model.codebook_size
  return logits * LOSS_BYTES_PER_LOGIT[model.loss_impl]


def step_estimates(analytic: float, compute_s: float, ici_s: float, peak_flops: float,
                   devices: int, dcn_s: float = 0.0) -> dict:
  """Step time and MFU two ways: `step_s` / `mfu`, the bound (matmuls at peak, the
  collectives hidden behind them: the max of compute, ICI and DCN time), and
  `step_s_serial` / `mfu_serial`, the collectives not overlapped at all (their sum).
  The truth lies between."""
  bound, serial = max(compute_s, ici_s, dcn_s), compute_s + ici_s + dcn_s
  return {"step_s": bound, "mfu": analytic / max(bound * peak_flops * devices, 1e-9),
          "step_s_serial": serial,
          "mfu_serial": analytic / max(serial * peak_flops * devices, 1e-9)}


def analyze(report: dict, hlo_text: str, model) -> dict:
  """Fills report["flops"], ["collectives"] and ["estimate"] from the compiled module's
  text (also for a saved report and HLO file: `--reanalyze`)."""
  stats = hlo_stats.hlo_stats(hlo_text, SPLASH_BLOCK, report["image_fraction"])
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
      "analytic_by_part": flops.step_flops_by_part(model, counts, report["trainable"]),
  }
  # XLA names the mesh axes it partitions over axis_0, axis_1, ... (the axes of size > 1).
  names = {f"axis_{i}": a for i, a in enumerate(a for a, k in report["mesh"].items() if k > 1)}
  for c in stats["collectives"].values():
    c["groups"] = sorted({",".join(names.get(x, x) for x in g.rpartition(":")[0].split(","))
                          + ":" + g.rpartition(":")[2] for g in c["groups"]})
  report["collectives"] = stats["collectives"]
  chip = fit.tpu_chip_named(report["chip"])
  if chip is not None:
    compute_s = stats["flops"] / chip.peak_flops
    comm_bytes = sum(c["bytes"] for c in stats["collectives"].values())
    # A ring all-reduce moves each byte twice (reduce-scatter + all-gather).
    moved = sum(c["bytes"] * (2 if k == "all-reduce" else 1)
                for k, c in stats["collectives"].items())
    comm_s = moved / chip.ici_bytes_per_s
    dcn_bytes, dcn_s = dcn_seconds(report.get("trainable_param_bytes", 0.0), n,
                                   report.get("num_slices", 1), chip.dcn_bytes_per_s)
    loss_bytes = loss_hbm_bytes(model, report)
    report["estimate"] = {
        "peak_flops": chip.peak_flops, "compute_s": compute_s, "collective_bytes": comm_bytes,
        "ici_s": comm_s, "dcn_bytes": dcn_bytes, "dcn_s": dcn_s,
        "loss_hbm_bytes": loss_bytes, "loss_hbm_s": loss_bytes / chip.hbm_bytes_per_s,
        **step_estimates(analytic, compute_s, comm_s, chip.peak_flops, n, dcn_s)}
  return report


def reanalyze(path: str) -> list[dict]:
  """Recomputes the statistics of saved reports from their saved HLO files."""
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
