"""Metrics sinks of a training run (an LLM stage, `training/trainer.py`; the VQ tokenizer,
`vq_training/trainer.py`): TensorBoard event files, a JSONL log, and console lines.

Only process 0 writes. `MetricsWriter(directory, resume_step)` writes `metrics.jsonl` and
`tensorboard/` under `directory`; `console_line(...)` formats one progress line.
A run resumed from the checkpoint of step s first drops the JSONL rows of steps after s
(`drop_rows_after`): those steps are trained again, so a run interrupted after its last
checkpoint (SIGKILL, a crash) logs every step once, as a straight run does.
"""

import json
import os
from typing import Mapping

import jax
from tensorboardX import SummaryWriter

from synergen_jax import files


def drop_rows_after(path: str, step: int) -> None:
  """Rewrites a JSONL metrics log without its rows of steps > `step` (and without a
  torn last line of a killed writer). No file: nothing to do."""
  if not os.path.isfile(path):
    return
  keep = []
  with open(path) as f:
    for line in f:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue
      if int(row.get("step", 0)) <= step:
        keep.append(json.dumps(row) + "\n")
  files.write_atomic(path, "".join(keep))


class MetricsWriter:
  def __init__(self, directory: str, resume_step: int | None = None):
    """`resume_step`: the step the run starts from (drops logged rows after it)."""
    self.enabled = jax.process_index() == 0
    self._tb = None
    self._jsonl = None
    if self.enabled:
      os.makedirs(directory, exist_ok=True)
      if resume_step is not None:
        drop_rows_after(os.path.join(directory, "metrics.jsonl"), resume_step)
      self._tb = SummaryWriter(os.path.join(directory, "tensorboard"))
      self._jsonl = open(os.path.join(directory, "metrics.jsonl"), "a")

  def write(self, step: int, metrics: Mapping[str, float], prefix: str = "") -> None:
    if not self.enabled:
      return
    row = {"step": int(step)}
    for k, v in metrics.items():
      name = f"{prefix}{k}"
      row[name] = float(v)
      self._tb.add_scalar(name, float(v), int(step))
    self._jsonl.write(json.dumps(row) + "\n")
    self._jsonl.flush()
    self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      self._tb.close()
      self._jsonl.close()


def _fmt_time(seconds: float) -> str:
  seconds = max(int(seconds), 0)
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def console_line(stage: str, step: int, total: int, m: Mapping[str, float],
                 eta_s: float | None) -> str:
  """`[stage] step 120/400 | loss 3.21 (text 2.10, image 0.55) | ... | eta 1:05`."""
  parts = [f"[{stage}] step {step}/{total}",
           f"loss {m['loss']:.4f} (text {m['text_loss']:.4f}, image {m['image_loss']:.4f})"]
  for task in ("understanding", "generation", "text"):
    if f"{task}/text_loss" in m:
      if task == "generation":
        parts.append(f"gen img {m[f'{task}/image_loss']:.3f} acc "
                     f"{m[f'{task}/image_accuracy']:.3f}")
      else:
        parts.append(f"{task[:3]} txt {m[f'{task}/text_loss']:.3f} acc "
                     f"{m[f'{task}/text_accuracy']:.3f}")
  parts.append(f"gnorm {m['grad_norm']:.3f} lr {m['lr']:.2e}")
  if "tokens_per_s" in m:  # absent when the interval held only the compiling step
    parts.append(f"{m['tokens_per_s']:,.0f} tok/s mfu {100 * m['mfu']:.2f}%")
    parts.append(f"{m['step_s']:.2f} s/step")
  parts.append("eta " + ("?" if eta_s is None else _fmt_time(eta_s)))
  return " | ".join(parts)
