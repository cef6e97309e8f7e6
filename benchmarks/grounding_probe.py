"""How many answers does the demo model need to ground a question type? A fast probe.

  python benchmarks/grounding_probe.py --workdir=runs/demo --types=color --steps=300
  python benchmarks/grounding_probe.py --workdir=runs/demo --types=color --code_init=codebook

Starts from the text-pretrained params of a demo workdir (its `text` stage; the VQ-code
tables, fold MLP and unfolding head as that stage initialised them, vision FFNs copied
from the text FFNs as stage 1 does), then trains every parameter on understanding only:
rows of one question about one image (`sequences.build_understanding`, the pipeline's
own builder), drawn at random from the pretokenized train split, filtered by
`--types` and by the scene's object count (`--max_objects`; `--single_object_steps=N`
draws the first N steps from single-object scenes only, a curriculum). No generation, no
captions, no packing: the fastest way to see how answers per question type turn into
accuracy, which is what the full recipe spends its steps on (benchmarks/learning.py
runs the whole recipe).

Every `--eval_every` steps it prints the teacher-forced accuracy of the first answer
token per question type on up to 1,024 validation questions, with the true image and
with another validation image ("swapped"): a model that looks loses its accuracy when
the image changes; a model that answers from the question's wording does not.

`--code_init=codebook` starts the VQ-code tables from the VQ codebook first
(`vq_code_init.from_codebook`, what `stages.X.code_embed_from_vq` does);
`--slot_shared` starts the fold's fc1 slot-shared (`model.fold_slot_shared_init`: the
text stage never trains the fold, so its fc1 is the init, made slot-shared here);
`--shift=K` moves each training row's code grid by up to K whole codes
(`data_pipelines.pipeline.augment.shift_codes`); `--vision_lr_mult=K` trains the vision group (code tables, fold MLP, vision FFNs, head)
at K times the learning rate (`optimizer.group_lr_mult`); `--groups=vision,llm_attention`
trains only those parameter groups (a stage's `trainable`; default every group);
`--from_stage=S` starts from stage S's final params as they are (no stage-1-style
initialisation; `--steps=0` just measures a trained stage with the probe's yardstick).
"""

import argparse
import collections
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import grain  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from data_pipelines.pipeline import augment  # noqa: E402
from data_pipelines.pipeline import records  # noqa: E402
from data_pipelines.pipeline import sequences  # noqa: E402
from synergen_jax import sharding  # noqa: E402
from synergen_jax import workdir  # noqa: E402
from synergen_jax.inference.session import pad_prompts  # noqa: E402
from synergen_jax.tokenizer import Tokenizer  # noqa: E402
from synergen_jax.state import train_state as state_lib  # noqa: E402
from synergen_jax.training import step as step_lib  # noqa: E402
from synergen_jax.model import folding  # noqa: E402
from synergen_jax.training import vq_code_init  # noqa: E402

EVAL_QUESTIONS = 1024
EVAL_CHUNK = 128


def load_questions(pretokenized_dir: str, split: str, types, max_objects: int,
                   max_records: int = 0) -> list:
  """[(codes [T, h, w], question, answer, type, objects)] of the split's (first
  `max_records`) records."""
  src = grain.sources.ArrayRecordDataSource(records.shard_files(pretokenized_dir, split))
  out = []
  for i in range(min(len(src), max_records or len(src))):
    rec = records.decode_record(src[i])
    objects = len(json.loads(rec["scene_graph"])["objects"]) if rec["scene_graph"] else 0
    if objects > max_objects:
      continue
    for q, a, t in zip(rec["questions"], rec["answers"], rec["question_types"]):
      if not types or t in types:
        out.append((rec["und_codes"], q, a, t, objects))
  if not out:
    raise SystemExit(f"no {split} questions of types {types or 'any'} with <= {max_objects} "
                     f"objects in {pretokenized_dir}")
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True, help="demo workdir whose text stage has finished")
  p.add_argument("--types", default="", help="comma-separated question types (default all)")
  p.add_argument("--max_objects", type=int, default=99)
  p.add_argument("--pretokenized", default="", help="pretokenized records to use instead "
                 "of the workdir's (same VQ tokenizer; e.g. more scenes)")
  p.add_argument("--train_records", type=int, default=0, help="use only the first N train "
                 "records (how much does the number of scenes matter?)")
  p.add_argument("--single_object_steps", type=int, default=0, help="a curriculum: the "
                 "first N steps draw from single-object scenes only")
  p.add_argument("--steps", type=int, default=300)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--seq_len", type=int, default=64)
  p.add_argument("--lr", type=float, default=1e-3)
  p.add_argument("--eval_every", type=int, default=100)
  p.add_argument("--code_init", choices=("random", "codebook"), default="random")
  p.add_argument("--vision_lr_mult", type=float, default=1.0, help="learning-rate factor "
                 "of the vision group (optimizer.group_lr_mult.vision)")
  p.add_argument("--slot_shared", action="store_true", help="fold fc1 starts slot-shared")
  p.add_argument("--shift", type=int, default=0, help="whole-code shift augmentation")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--groups", default="vision,llm_attention,llm", help="trainable parameter "
                 "groups (the stages' `params`), comma-separated")
  p.add_argument("--from_stage", default="text", help="start from this stage's params "
                 "(`text`: vision initialised as stage 1 does; a later stage: as it ended)")
  args = p.parse_args()

  params, config = workdir.load_params(args.workdir, args.from_stage)
  from_text = args.from_stage == "text"
  model_config = config.model
  fold = tuple(model_config.fold)
  mn = fold[0] * fold[1]
  tok = Tokenizer.load(config.tokenizer)
  types = tuple(t for t in args.types.split(",") if t)
  data_dir = args.pretokenized or config.data.pretokenized_dir
  train = load_questions(data_dir, "train", types, args.max_objects, args.train_records)
  val = load_questions(data_dir, "validation", types, args.max_objects)
  single = [x for x in train if x[4] == 1]
  if args.single_object_steps and not single:
    raise SystemExit("--single_object_steps: the train split has no single-object scene")
  print(f"{len(train)} train ({len(single)} single-object) / {len(val)} validation "
        "questions", flush=True)

  if args.code_init == "codebook" and from_text:
    params = vq_code_init.from_codebook(params, vq_code_init.codebook_of(config.vq_tokenizer),
                                        args.seed)
  if args.slot_shared and from_text:
    fc1 = params["fold"]["fc1"]
    fc1["kernel"] = folding.share_slots(fc1["kernel"], mn)
  sft = config.stage("sft").optimizer
  opt = dataclasses.replace(
      sft, lr=args.lr, schedule="constant", warmup_steps=20, weight_decay=0.0,
      group_lr_mult=tuple(sorted({**dict(sft.group_lr_mult),
                                  "vision": args.vision_lr_mult}.items())))
  mesh = sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1])
  spec = state_lib.StateSpec(model_config, mesh, tuple(args.groups.split(",")), opt,
                             args.steps)
  state = spec.state_from_params(params, vision_ffn_from_text=from_text)
  train_step = step_lib.make_train_step(spec, ("understanding",), 1)

  @jax.jit
  def next_token_logits(params, batch, last):
    hidden = spec.model.apply({"params": params}, batch, method="hidden_states")
    h = jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
    return spec.model.apply({"params": params}, h, method="text_logits")

  rng = np.random.default_rng(args.seed)
  evals = [val[i] for i in rng.choice(len(val), min(EVAL_QUESTIONS, len(val)), replace=False)]
  others = rng.permutation(len(evals))  # the swapped image of each question
  if len(evals) > 1:
    others = np.where(others == np.arange(len(evals)), (others + 1) % len(evals), others)

  def accuracy(params) -> dict:
    right = collections.defaultdict(lambda: [0, 0, 0])  # type -> [true, swapped, n]
    for start in range(0, len(evals), EVAL_CHUNK):
      idx = range(start, min(start + EVAL_CHUNK, len(evals)))
      for swapped in (0, 1):
        prompts = [sequences.build_understanding(
            tok, evals[others[j]][0] if swapped else evals[j][0], evals[j][1], None, fold,
            config.data.system_prompt) for j in idx]
        lengths = [len(x["tokens"]) for x in prompts]
        with sharding.mesh_context(mesh):
          logits = next_token_logits(params, pad_prompts(prompts, len(prompts), tok.pad_id,
                                                         mn, max(lengths)),
                                     jnp.asarray(lengths) - 1)
        pred = np.asarray(jnp.argmax(logits, axis=-1))
        for j, token in zip(idx, pred):
          _, _, answer, qtype, _ = evals[j]
          ok = int(token == tok.encode(answer)[0])
          for key in (qtype, "all"):
            right[key][swapped] += ok
            right[key][2] += 1 - swapped
    return {k: {"true": round(v[0] / v[2], 3), "swapped": round(v[1] / v[2], 3), "n": v[2]}
            for k, v in sorted(right.items())}

  print(json.dumps({"step": 0, "accuracy": accuracy(state.params)}), flush=True)
  train_s, losses = 0.0, []
  with sharding.mesh_context(mesh):
    for step in range(1, args.steps + 1):
      pool = single if step <= args.single_object_steps else train
      picks = [pool[i] for i in rng.integers(len(pool), size=args.batch)]
      rows = [sequences.build_understanding(
          tok, augment.shift_codes(c, args.shift, rng) if args.shift else c, q, a, fold,
          config.data.system_prompt) for c, q, a, _, _ in picks]
      batch = pad_prompts(rows, len(rows), tok.pad_id, mn, args.seq_len, with_targets=True)
      t = time.time()
      state, metrics = train_step(state, {"understanding": batch})
      losses.append(float(metrics["text_loss"]))  # blocks until the step is done
      train_s += time.time() - t
      if step % args.eval_every == 0 or step == args.steps:
        row = {"step": step, "answers_seen": step * args.batch,
               "train_s": round(train_s, 1),
               "text_loss": round(float(np.mean(losses[-args.eval_every:])), 4),
               "load_avg": round(os.getloadavg()[0], 2)}
        row["accuracy"] = accuracy(state.params)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
  main()
