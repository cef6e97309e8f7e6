"""The run report: validation losses per stage (W/report.md and W/report.json)."""

import json
import os

from synergen_jax import workdir as workdir_lib

COLUMNS = (("multimodal/loss", "und. CE + 2 x gen. CE"),
           ("understanding/text_loss", "und. answer CE"),
           ("understanding/text_accuracy", "und. answer acc"),
           ("generation/image_loss", "gen. image CE"),
           ("generation/image_accuracy", "gen. image acc"),
           ("text/text_loss", "text CE"),
           ("text/text_accuracy", "text acc"))


def collect(workdir: str, experiment, init_eval: dict | None) -> dict:
  """{"rows": [{"stage", "steps", "wall_s", "validation"}...]} from the stage summaries."""
  rows = []
  if init_eval is not None:
    rows.append({"stage": "init", "steps": 0, "wall_s": 0.0, "validation": init_eval})
  for stage in experiment.stage_order:
    path = workdir_lib.summary_path(workdir, stage)
    if not os.path.isfile(path):
      continue
    with open(path) as f:
      s = json.load(f)
    rows.append({"stage": stage, "steps": s["steps"], "trainable": s["trainable"],
                 "wall_s": s["wall_s_this_run"], "compile_s": s.get("compile_s"),
                 "validation": s["validation"]})
  return {"rows": rows}


def markdown(report: dict, title: str = "Training report") -> str:
  present = [(k, name) for k, name in COLUMNS
             if any(k in r["validation"] for r in report["rows"])]
  lines = [f"# {title}", "", "Validation metrics after each stage (fixed validation batches; "
           "CE in nats per target token / image code).", "",
           "| stage | trains | steps | wall s | " + " | ".join(n for _, n in present) + " |",
           "|---|---|---|---|" + "---|" * len(present)]
  for r in report["rows"]:
    vals = " | ".join(f"{r['validation'][k]:.4f}" if k in r["validation"] else "-"
                      for k, _ in present)
    trains = "+".join(r.get("trainable", [])) or "-"
    lines.append(f"| {r['stage']} | {trains} | {r['steps']} | {r['wall_s']:.0f} | {vals} |")
  for key, value in report.get("extra", {}).items():
    lines += ["", f"## {key}", "", value if isinstance(value, str) else
              "```\n" + json.dumps(value, indent=2) + "\n```"]
  return "\n".join(lines) + "\n"


def write(workdir: str, report: dict, title: str = "Training report") -> None:
  with open(os.path.join(workdir, "report.json"), "w") as f:
    json.dump(report, f, indent=2)
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write(markdown(report, title))
