"""The demo main job: from nothing to a trained SynerGen-VL on one CPU, in one command.

  python -m synergen_jax.demo --workdir=runs/demo [--config=experiments/demo.py]

1. builds the embedded dataset (TFDS synergen_scenes 64 px + synergen_text)  W/data/tfds
2. trains the SentencePiece tokenizer                                       W/data/tokenizer.model
3. trains the VQ image tokenizer (synergen_jax.vq_training)                 W/vq
4. pretokenizes the scenes with that VQ encoder                             W/data/pretokenized
5. runs every stage of the experiment (text pretraining -> stage 1 -> stage 2 -> SFT)
6. evaluates the final model (synergen_jax.evaluate): VQA, GenEval-style generation,
   text retention, folded vs no-fold generation time              W/eval
7. writes W/report.md (+ report.json, demo_timings.json)
Every step is resumable: running the command again with the same workdir skips what is
done and resumes what is not (SIGTERM during training saves a checkpoint and exits with
status 143; in the other phases it ends the process, and the rerun redoes the phase or
resumes the VQ training from its last checkpoint). tests/test_restart.py interrupts each
phase (the SYNERGEN_SIGTERM_AT hook, see synergen_jax/preemption.py) and checks that the
rerun ends with the metrics of an uninterrupted run.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from synergen_jax import files

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "experiments", "demo.py"), "Demo experiment file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.")

TIMINGS_FILE = "demo_timings.json"


def log(msg: str) -> None:
  print(f"[demo] {msg}", flush=True)


class Timings:
  """Wall seconds per phase, accumulated over (resumed) runs in W/demo_timings.json."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, TIMINGS_FILE)
    self.data = {}
    if os.path.isfile(self.path):
      with open(self.path) as f:
        self.data = json.load(f)

  def add(self, phase: str, seconds: float) -> None:
    self.data[phase] = round(self.data.get(phase, 0.0) + seconds, 2)
    files.write_json(self.path, self.data)  # a rerun reads it back


def build_dataset(config, demo) -> dict:
  """TFDS scenes + text (idempotent); returns sizes."""
  from data_pipelines import build
  from synergen_jax import preemption
  data_dir = os.path.expanduser(config.data.source.data_dir)
  scenes = build.build_scenes(data_dir, demo.image_size, demo.train_size, demo.eval_size,
                              demo.get("cell", 0), demo.get("max_objects", 4))
  preemption.signal_point("dataset")  # test hook: scenes built, text not yet
  name = f"synergen_scenes/{scenes.builder_config.name}"
  if name != config.data.source.name:
    raise ValueError(f"config.data.source.name is {config.data.source.name!r} but the "
                     f"demo sizes build {name!r}; make them agree")
  text = build.build_text(data_dir)
  return {"scenes": name, "train_records": len(scenes.as_data_source("train")),
          "text_records": len(text.as_data_source("train"))}


def train_tokenizer(config, demo):
  from data_pipelines import build
  import tensorflow_datasets as tfds
  from synergen_jax.tokenizer import Tokenizer
  from synergen_jax import preemption
  path = os.path.expanduser(config.tokenizer)
  if os.path.isfile(path):
    return Tokenizer.load(path)
  data_dir = os.path.expanduser(config.data.source.data_dir)
  scenes = tfds.data_source(config.data.source.name, data_dir=data_dir,
                            decoders={"image": tfds.decode.SkipDecoding()})["train"]
  text = tfds.data_source("synergen_text", data_dir=data_dir)["train"]
  corpus = build.tokenizer_corpus(scenes, text)
  preemption.signal_point("tokenizer")  # test hook: corpus read, model not trained
  return Tokenizer.train(corpus, path, vocab_size=demo.vocab_size)


def vq_config(config_file: str, demo):
  from synergen_jax import experiment
  experiment_dir = os.path.dirname(os.path.abspath(config_file))
  vq_path = os.path.join(experiment_dir, demo.vq_config)
  module = experiment.load_sibling(vq_path, os.path.splitext(os.path.basename(vq_path))[0])
  cfg = module.get_config()
  cfg.train.steps = int(demo.vq_steps)
  cfg.train.restart_until = min(cfg.train.restart_until, max(int(demo.vq_steps) - 25, 0))
  cfg.train.checkpoint_every = min(cfg.train.checkpoint_every, int(demo.vq_steps))
  cfg.data.eval_images = int(demo.vq_eval_images)
  cfg.data.cell = int(demo.get("cell", 0))  # the VQ learns the world the model sees
  cfg.data.max_objects = int(demo.get("max_objects", 4))
  cfg.data.eval_batch_size = min(cfg.data.eval_batch_size, int(demo.vq_eval_images))
  return cfg


def train_vq(cfg, vq_dir: str) -> dict:
  """Trains (or resumes) the VQ tokenizer; returns its evaluation metrics."""
  from synergen_jax.vq_training import checkpoint as vq_checkpoint
  from synergen_jax.vq_training.trainer import VQTrainer
  metrics_path = os.path.join(vq_dir, "eval", "metrics.json")
  if os.path.isfile(metrics_path):
    manager = vq_checkpoint.make_manager(vq_dir)
    done = manager.latest_step() == cfg.train.steps
    manager.close()
    if done:
      with open(metrics_path) as f:
        return json.load(f)
  VQTrainer(cfg).train_and_evaluate(vq_dir)
  with open(metrics_path) as f:
    return json.load(f)


def pretokenize_with_vq(config, vq_dir: str) -> dict:
  from data_pipelines import pretokenize
  from synergen_jax.vq_training import checkpoint as vq_checkpoint
  tok, variables, _ = vq_checkpoint.load_tokenizer(vq_dir)
  if tok.factor != config.data.vq_downsample:
    raise ValueError(f"the VQ tokenizer downsamples by {tok.factor}, config.data."
                     f"vq_downsample is {config.data.vq_downsample}")
  from synergen_jax import preemption
  encode = tok.batch_encoder(variables)
  out = {}
  for split in ("train", "validation"):
    out[split] = pretokenize.pretokenize(config.data, encode, split=split)
    preemption.signal_point(f"pretokenize/{split}")  # test hook: after this split
  return out


EVAL_HEADLINE = ("vqa/overall", "vqa/test/overall", "vqa/compositional/overall",
                 "vqa/swapped_image/overall", "vqa/swapped_image/same_answer",
                 "vqa/overall_majority", "vqa/wording_majority", "vqa/color", "vqa/shape",
                 "gen/overall", "gen/colors", "gen/single_object",
                 "gen/other_prompt_image/overall",
                 "gen/reference/overall", "gen/vq_reconstruction/overall",
                 "text/perplexity", "text/start/perplexity", "text/pretrained/perplexity",
                 "gen/fold_s_per_image",
                 "gen/no_fold_s_per_image", "gen/speedup")


def evaluate_final(experiment, workdir: str) -> dict:
  """W/eval of the last stage's final params (reused if newer than those params)."""
  from synergen_jax import workdir as workdir_lib
  from synergen_jax.evaluation import run as eval_run
  path = os.path.join(workdir, "eval", "metrics.json")
  summary = workdir_lib.summary_path(workdir, experiment.stage_order[-1])
  if os.path.isfile(path) and os.path.getmtime(path) > os.path.getmtime(summary):
    with open(path) as f:
      return json.load(f)
  return eval_run.run_evaluation(workdir)


def run_demo(config, workdir: str, config_file: str) -> dict:
  from synergen_jax.training import run as run_lib
  from synergen_jax import experiment
  from synergen_jax.training import report as report_lib
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  exp = experiment.resolve(config, workdir)  # fail on a bad config before any work
  demo = exp.demo
  timings = Timings(workdir)
  t_all = time.time()

  t = time.time()
  sizes = build_dataset(exp, demo)
  timings.add("dataset_s", time.time() - t)
  log(f"dataset: {sizes} ({time.time() - t:.1f}s)")

  t = time.time()
  tok = train_tokenizer(exp, demo)
  timings.add("tokenizer_s", time.time() - t)
  log(f"tokenizer: {tok.name}, text vocabulary {tok.text_vocab_size} ({time.time() - t:.1f}s)")

  t = time.time()
  vq_dir = os.path.join(workdir, "vq")
  vq_cfg = vq_config(config_file, demo)
  log(f"VQ tokenizer: training {vq_cfg.train.steps} steps into {vq_dir}")
  vq_metrics = train_vq(vq_cfg, vq_dir)
  timings.add("vq_s", time.time() - t)
  log(f"VQ tokenizer: {json.dumps({k: round(v, 4) for k, v in vq_metrics.items()})} "
      f"({time.time() - t:.1f}s)")

  t = time.time()
  pretok = pretokenize_with_vq(exp, vq_dir)
  timings.add("pretokenize_s", time.time() - t)
  log(f"pretokenized: { {s: v['written'] for s, v in pretok.items()} } "
      f"({time.time() - t:.1f}s)")

  t = time.time()
  out = run_lib.run_experiment(exp, workdir)
  timings.add("train_s", time.time() - t)

  t = time.time()
  eval_metrics = evaluate_final(exp, workdir)
  timings.add("evaluate_s", time.time() - t)
  headline = {k: round(eval_metrics[k], 4) for k in EVAL_HEADLINE if k in eval_metrics}
  log(f"evaluation: {json.dumps(headline)} ({time.time() - t:.1f}s)")
  timings.add("total_s", time.time() - t_all)

  out["extra"] = {
      "Evaluation of the final model (full tables: eval/report.md)": headline,
      "Demo job": {"dataset": sizes, "vq_eval": vq_metrics,
                   "timings_s (accumulated over runs)": timings.data}}
  report_lib.write(workdir, out, title="SynerGen-VL demo report")
  log(f"done in {time.time() - t_all:.0f}s this run; report: {workdir}/report.md")
  return out


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from synergen_jax import experiment, preemption
  from synergen_jax.training import report
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  try:
    out = run_demo(_CONFIG.value, _WORKDIR.value,
                   config_flags.get_config_filename(flags.FLAGS["config"]))
  except experiment.ConfigError as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
  except preemption.Preempted as e:
    print(str(e), flush=True)
    sys.exit(preemption.PREEMPTED_EXIT_CODE)
  print(report.markdown(out, title="SynerGen-VL demo report"))


def run():
  app.run(main)


if __name__ == "__main__":
  run()
