"""Does the demo model look at its images? Controlled runs of the multimodal recipe.

  python benchmarks/learning.py --base=runs/demo --out=runs/learning --variant=shipped
  python benchmarks/learning.py --base=runs/demo --out=runs/learning --variant=all \
      [--set=stages.sft.steps=600 ...]

`--base` is a demo workdir whose dataset, tokenizers, VQ tokenizer, pretokenized data and
text-pretraining stage are done (`python -m synergen_jax.demo` makes one). Each variant is
the demo experiment (`--config`, default experiments/demo.py) with the overrides listed in
VARIANTS (and `--set` dotted overrides on top); it trains every stage after the base's
text stage in OUT/<variant> (the base's data, VQ, text stage and XLA cache are linked,
not copied) and evaluates the final model as the demo does, including the swapped-image
control. One row per run is printed and appended to OUT/learning.jsonl:

  minutes (multimodal training + evaluation, this machine), VQA val / test / comp.,
  VQA val. with each question asked about another image (and the share of unchanged
  answers), per-type VQA, GenEval-style colours / single object / overall, the text
  perplexity after the run vs after text pretraining.

Variants differ from the demo only in what they list, so the table reads as controlled
experiments; a variant with the name of an experiment file's `get_config` ("demo",
"demo_long") uses that file unchanged.
"""

import argparse
import ast
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_EXPERIMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "experiments")

_TURNS = {"data.und_qa_turns": 8, "data.understanding.seq_len": 256,
          "data.understanding.batch_size": 4}  # same tokens per step as 8 x 128


def _stages(stages, fields: dict) -> dict:
  return {f"stages.{s}.{k}": v for s in stages for k, v in fields.items()}


# name -> (experiment file, {dotted field: value}); applied to a fresh get_config().

# The demo recipe before the learning work (main at 54c693d; on the base's VQ tokenizer):
# one question or caption per understanding example, no text replay, code tables from a
# random init, 180 + 150 + 150 vision steps. The controlled
# experiments below change it in one respect each.
BEFORE = {
    "stage_order": ("text", "stage1", "stage2", "sft"),  # no binding curriculum
    **_stages(("stage1", "stage2", "sft"), {"data.und_qa_turns": 1, "tasks": (),
                                            "data.und_type_weights": ()}),
    "stages.stage1.code_embed_from_vq": False,
    "stages.stage1.steps": 180, "stages.stage2.steps": 150, "stages.sft.steps": 150,
    "stages.stage2.data.und_caption_prob": 0.5, "stages.sft.data.und_caption_prob": 0.3}

_QA300 = {**BEFORE, "stage_order": ("text", "sft"), "stages.sft.steps": 300,
          "stages.sft.tasks": ("understanding",), "stages.sft.data.und_caption_prob": 0.0,
          "stages.sft.optimizer.lr": 1e-3, "stages.sft.optimizer.schedule": "constant"}

_NO_GENBIND = {"stage_order": ("text", "bind", "bind2", "retext", "stage2", "sft")}
_GENBIND_200X32 = {"stages.genbind.steps": 200, "stages.genbind.data.generation.batch_size": 32}

VARIANTS = {
    "demo": ("demo.py", {}),
    "demo_long": ("demo_long.py", {}),
    "demo_before": ("demo.py", BEFORE),
    # Multi-turn QA (8 questions about one image per example, 4 rows of 256 tokens: the
    # same tokens per step) where the recipe asks questions (stage 2, SFT).
    "turns": ("demo.py", {**BEFORE, **_stages(("stage2", "sft"), _TURNS)}),
    # The VQ-code tables start from the VQ codebook (stage 1).
    "vq_init": ("demo.py", {**BEFORE, "stages.stage1.code_embed_from_vq": True}),
    # Understanding alone in every vision stage: does generation's loss drown it?
    "und_only": ("demo.py", {**BEFORE, **_stages(("stage1", "stage2", "sft"),
                                                 {"tasks": ("understanding",)})}),
    # Folded image embeddings at the text embeddings' scale (fc2 init x 0.1).
    "fold_scale": ("demo.py", {**BEFORE, "model.fold_init_scale": 0.1}),
    # One short understanding stage after text pretraining: questions only, every
    # parameter trained (what do 300 steps learn at all?) ...
    "qa300": ("demo.py", _QA300),
    # ... with the VQ-code tables from the codebook ...
    "qa300+vq_init": ("demo.py", {**_QA300, "stages.sft.code_embed_from_vq": True}),
    # ... from a random initialisation (no text pretraining: no answer prior).
    "qa300_scratch": ("demo.py", {**_QA300, "stages.sft.init_from": "scratch"}),
    # The generator's binding (docs/LEARNING.md, "why the generator ignored its prompt"),
    # against the demo (genbind: 120 steps of 24 rows, before bind2). F: no genbind ...
    "no_genbind": ("demo.py", _NO_GENBIND),
    # ... nor the first-code weight (the recipe before, 3837dee) ...
    "no_genbind_w1": ("demo.py", {**_NO_GENBIND, "model.image_first_code_weight": 1.0}),
    # ... G: genbind of 200 steps x 32 rows after bind2 ... G2: the same before bind2.
    "genbind_after_bind2": ("demo.py", {**_GENBIND_200X32, "stage_order": (
        "text", "bind", "bind2", "genbind", "retext", "stage2", "sft")}),
    "genbind_200x32": ("demo.py", _GENBIND_200X32),
}

HEADLINE = ("vqa/overall", "vqa/test/overall", "vqa/compositional/overall",
            "vqa/swapped_image/overall", "vqa/swapped_image/same_answer",
            "vqa/overall_majority", "vqa/wording_majority", "vqa/color", "vqa/shape",
            "vqa/count", "vqa/position",
            "vqa/relation", "vqa/existence", "vqa/text", "gen/colors", "gen/single_object",
            "gen/overall", "gen/vq_reconstruction/overall", "gen/other_prompt_image/overall",
            "gen/generated_other_prompt/overall", "gen/generated_other_prompt/colors",
            "gen/objects_per_image",
            "text/perplexity",
            "text/start/perplexity", "text/pretrained/perplexity",
            "text/perplexity_ratio_vs_pretrained")


def _set(config, dotted: str, value) -> None:
  import ml_collections
  node = config
  *path, last = dotted.split(".")
  for p in path:
    if p not in node:
      node[p] = ml_collections.ConfigDict()
    node = node[p]
  node[last] = value


def _parse_set(item: str):
  key, _, raw = item.partition("=")
  try:
    value = ast.literal_eval(raw)
  except (ValueError, SyntaxError):
    value = raw
  return key, value


def variant_config(name: str, extra: list[str], config_file: str = ""):
  from synergen_jax import experiment
  if name not in VARIANTS:
    raise SystemExit(f"--variant: unknown {name!r}; known: {sorted(VARIANTS)}")
  file, overrides = VARIANTS[name]
  path = os.path.abspath(config_file) if config_file else os.path.join(_EXPERIMENTS, file)
  file = os.path.basename(path)
  config = experiment.load_sibling(path, os.path.splitext(file)[0]).get_config()
  for k, v in list(overrides.items()) + [_parse_set(s) for s in extra]:
    _set(config, k, v)
  return config


def _link(src: str, dst: str) -> None:
  if not os.path.lexists(dst):
    os.symlink(os.path.abspath(src), dst)


def run(base: str, out: str, name: str, extra: list[str], config_file: str = "",
        reuse: tuple[str, ...] = ()) -> dict:
  from synergen_jax.evaluation import run as eval_run
  from synergen_jax import workdir as workdir_lib
  from synergen_jax.training import run as run_lib
  config = variant_config(name, extra, config_file)
  first = config.stage_order[0]
  if not workdir_lib.stage_done(base, first):
    raise SystemExit(f"--base={base}: its stage {first!r} has not finished (run the demo)")
  tag = (os.path.splitext(os.path.basename(config_file))[0] + "=" if config_file else "") + \
      name + "".join(f"+{s}" for s in extra)
  workdir = os.path.abspath(os.path.join(out, tag.replace("/", "_")))
  os.makedirs(workdir, exist_ok=True)
  # The base's first (text) stage is reused unless the variant changes the model, whose
  # initialisation (vision parameters included) that stage makes.
  model_changed = any(k.startswith("model.") for k in VARIANTS[name][1]) or any(
      s.startswith("model.") for s in extra)
  for stage in reuse:
    if not workdir_lib.stage_done(base, stage):
      raise SystemExit(f"--reuse={stage}: that stage of --base={base} has not finished")
  for sub in ("data", "vq", "jax_cache") + (() if model_changed else (first,) + tuple(reuse)):
    _link(os.path.join(base, sub), os.path.join(workdir, sub))
  t = time.time()
  run_lib.run_experiment(config, workdir)
  train_s = time.time() - t
  t = time.time()
  metrics = eval_run.run_evaluation(workdir, parts=("vqa", "gen", "text"))
  eval_s = time.time() - t
  row = {"variant": tag, "train_s": round(train_s, 1), "eval_s": round(eval_s, 1),
         "load_avg": round(os.getloadavg()[0], 2),
         **{k: round(float(metrics[k]), 4) for k in HEADLINE if k in metrics}}
  with open(os.path.join(out, "learning.jsonl"), "a") as f:
    f.write(json.dumps(row) + "\n")
  return row


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--base", required=True, help="finished demo workdir (data, VQ, text stage)")
  p.add_argument("--out", required=True, help="directory of the runs")
  p.add_argument("--variant", required=True, help=f"one of {sorted(VARIANTS)}")
  p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                 help="extra config override (python literal), e.g. stages.sft.steps=600")
  p.add_argument("--config", default="", help="an experiment file to use instead of the "
                 "variant's (its overrides still apply; `--variant=demo` applies none)")
  p.add_argument("--reuse", default="", help="comma-separated stages after the first whose "
                 "finished runs in --base are reused (linked), e.g. bind,retext: the variant "
                 "must keep them unchanged")
  args = p.parse_args()
  os.makedirs(args.out, exist_ok=True)
  row = run(os.path.abspath(args.base), args.out, args.variant, args.set, args.config,
            tuple(s for s in args.reuse.split(",") if s))
  print(json.dumps(row, indent=1))


if __name__ == "__main__":
  main()
