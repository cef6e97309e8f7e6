"""report.md of a benchmark run: the headline numbers, the conventions used, counts,
and every metric."""

HEADLINE = {"vqav2": ["accuracy"], "textvqa": ["accuracy"], "gqa": ["accuracy"],
            "pope": ["f1", "accuracy", "precision", "recall", "yes_ratio"],
            "mme": ["perception", "cognition"],
            "mmbench": ["circular_accuracy", "vanilla_accuracy"], "mmmu": ["accuracy"],
            "geneval": ["overall"]}
PAPER = {"pope": "SynerGen-VL reports POPE 85.3", "mme": "SynerGen-VL reports MME-P 1381.0",
         "mmbench": "SynerGen-VL reports MMBench 53.7", "mmmu": "SynerGen-VL reports MMMU 34.2",
         "geneval": "SynerGen-VL reports GenEval 0.61"}


def _fmt(v):
  return f"{v:.2f}" if isinstance(v, float) else str(v)


def markdown(benchmark: str, metrics: dict, source: str, options: dict,
             submission: str | None) -> str:
  lines = [f"# {benchmark}", "", f"Params: {source}  ",
           f"Convention: {metrics.get('convention', '')}  ",
           f"Options: {', '.join(f'{k}={v}' for k, v in sorted(options.items()) if v is not None) or 'defaults'}",
           "", "| metric | value |", "|---|---|"]
  lines += [f"| {k} | {_fmt(metrics[k])} |" for k in HEADLINE.get(benchmark, []) if k in metrics]
  if benchmark in PAPER:
    lines += ["", f"For scale: {PAPER[benchmark]} (docs/EVALUATION.md has the peers)."]
  lines += ["", f"Questions {metrics.get('questions')}, scored {metrics.get('scored')}, "
            f"missing predictions {metrics.get('missing_predictions')}, skipped rows "
            f"{metrics.get('skipped')}."]
  if submission:
    lines += ["", f"EvalAI result file: `{submission}`."]
  lines += ["", "## All metrics", "", "| key | value |", "|---|---|"]
  lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(metrics.items()) if k != "convention"]
  return "\n".join(lines) + "\n"
