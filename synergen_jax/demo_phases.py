"""The demo job (`python -m synergen_jax.demo`) as an ordered list of phases, one loop.

  run_demo(config, workdir, config_file) -> the report dict (W/report.md, report.json)

Each `Phase` has a name, an optional done check (`finished`: the result of an earlier
run that completed it, read back, or None), a `run` (does the phase, resuming what an
interrupted run left: TFDS skips a prepared dataset, pretokenization finished shards,
the trainers their checkpoints) and the log line of its result. The loop adds each
phase's wall seconds to W/demo_timings.json (`<name>_s`, accumulated over reruns, and
`total_s`), so a rerun of the same command skips or resumes every phase.
"""

import dataclasses
import functools
import json
import os
import time
from typing import Any, Callable

import tensorflow_datasets as tfds

from data_pipelines import build
from data_pipelines.pipeline import pretokenize
from synergen_jax import experiment
from synergen_jax import files
from synergen_jax import preemption
from synergen_jax import workdir as workdir_lib
from synergen_jax.evaluation import run as eval_run
from synergen_jax.tokenizer import Tokenizer
from synergen_jax.training import report as report_lib
from synergen_jax.training import run as run_lib
from synergen_jax.vq_training import vq_checkpoint
from synergen_jax.vq_training.trainer import VQTrainer

TIMINGS_FILE = "demo_timings.json"
TITLE = "SynerGen-VL demo report"
EVAL_HEADLINE = ("vqa/overall", "vqa/test/overall", "vqa/compositional/overall",
                 "vqa/swapped_image/overall", "vqa/swapped_image/same_answer",
                 "vqa/overall_majority", "vqa/wording_majority", "vqa/color", "vqa/shape",
                 "gen/overall", "gen/colors", "gen/single_object",
                 "gen/other_prompt_image/overall", "gen/generated_other_prompt/overall",
                 "gen/objects_per_image", "gen/objects_per_prompt",
                 "gen/reference/overall", "gen/vq_reconstruction/overall",
                 "text/perplexity", "text/start/perplexity", "text/pretrained/perplexity",
                 "gen/fold_s_per_image",
                 "gen/no_fold_s_per_image", "gen/speedup")


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


@dataclasses.dataclass
class Job:
  """What the phases share: the resolved experiment, the paths, the results so far."""
  exp: experiment.Experiment
  workdir: str
  config_file: str
  results: dict = dataclasses.field(default_factory=dict)  # phase name -> its result

  @property
  def demo(self):
    return self.exp.demo

  @property
  def data_dir(self) -> str:
    return os.path.expanduser(self.exp.data.source.data_dir)

  @property
  def vq_dir(self) -> str:
    return os.path.join(self.workdir, "vq")

  @functools.cached_property
  def vq_config(self):
    """The VQ experiment of `demo.vq_config` (next to the config file) at the demo's
    sizes: its steps, evaluation images and scene world."""
    demo = self.demo
    vq_path = os.path.join(os.path.dirname(os.path.abspath(self.config_file)), demo.vq_config)
    module = experiment.load_sibling(vq_path, os.path.splitext(os.path.basename(vq_path))[0])
    cfg = module.get_config()
    cfg.train.steps = int(demo.vq_steps)
    cfg.train.restart_until = min(cfg.train.restart_until, max(int(demo.vq_steps) - 25, 0))
    cfg.train.checkpoint_every = min(cfg.train.checkpoint_every, int(demo.vq_steps))
    cfg.data.eval_images = int(demo.vq_eval_images)
    cfg.data.cell = demo.cell  # the VQ learns the world the model sees
    cfg.data.max_objects = demo.max_objects
    cfg.data.crop = demo.vq_crop
    cfg.data.eval_batch_size = min(cfg.data.eval_batch_size, int(demo.vq_eval_images))
    return cfg


@dataclasses.dataclass(frozen=True)
class Phase:
  """One step of the job (see the module doc)."""
  name: str                                   # demo_timings.json key: "<name>_s"
  run: Callable[[Job], Any]                   # does (or resumes) the phase -> its result
  finished: Callable[[Job], Any] = lambda job: None  # an earlier run's result, or None
  summary: Callable[[Job, Any], str | None] = lambda job, result: None  # its log line
  start: Callable[[Job], str | None] = lambda job: None  # a log line before it


def build_dataset(job: Job) -> dict:
  """TFDS scenes + text (idempotent); returns sizes."""
  demo, config = job.demo, job.exp
  scenes = build.build_scenes(job.data_dir, demo.image_size, demo.train_size, demo.eval_size,
                              demo.cell, demo.max_objects)
  preemption.signal_point("dataset")  # test hook: scenes built, text not yet
  name = f"synergen_scenes/{scenes.builder_config.name}"
  if name != config.data.source.name:
    raise ValueError(f"config.data.source.name is {config.data.source.name!r} but the "
                     f"demo sizes build {name!r}; make them agree")
  text = build.build_text(job.data_dir)
  return {"scenes": name, "train_records": len(scenes.as_data_source("train")),
          "text_records": len(text.as_data_source("train"))}


def trained_tokenizer(job: Job) -> Tokenizer | None:
  path = os.path.expanduser(job.exp.tokenizer)
  return Tokenizer.load(path) if os.path.isfile(path) else None


def train_tokenizer(job: Job) -> Tokenizer:
  scenes = tfds.data_source(job.exp.data.source.name, data_dir=job.data_dir,
                            decoders={"image": tfds.decode.SkipDecoding()})["train"]
  text = tfds.data_source("synergen_text", data_dir=job.data_dir)["train"]
  corpus = build.tokenizer_corpus(scenes, text)
  preemption.signal_point("tokenizer")  # test hook: corpus read, model not trained
  return Tokenizer.train(corpus, os.path.expanduser(job.exp.tokenizer),
                         vocab_size=job.demo.vocab_size)


def _vq_metrics(job: Job) -> dict:
  with open(os.path.join(job.vq_dir, "eval", "metrics.json")) as f:
    return json.load(f)


def trained_vq(job: Job) -> dict | None:
  """The VQ evaluation metrics if its training reached the demo's steps."""
  if not os.path.isfile(os.path.join(job.vq_dir, "eval", "metrics.json")):
    return None
  manager = vq_checkpoint.make_manager(job.vq_dir)
  done = manager.latest_step() == job.vq_config.train.steps
  manager.close()
  return _vq_metrics(job) if done else None


def train_vq(job: Job) -> dict:
  """Trains (or resumes) the VQ tokenizer; returns its evaluation metrics."""
  VQTrainer(job.vq_config).train_and_evaluate(job.vq_dir)
  return _vq_metrics(job)


def pretokenize_with_vq(job: Job) -> dict:
  """Both splits through the trained VQ encoder (finished shards are kept)."""
  config = job.exp
  tok, variables, _ = vq_checkpoint.load_tokenizer(job.vq_dir)
  if tok.factor != config.data.vq_downsample:
    raise ValueError(f"the VQ tokenizer downsamples by {tok.factor}, config.data."
                     f"vq_downsample is {config.data.vq_downsample}")
  encode = tok.batch_encoder(variables)
  out = {}
  for split in ("train", "validation"):
    out[split] = pretokenize.pretokenize(config.data, encode, split=split)
    preemption.signal_point(f"pretokenize/{split}")  # test hook: after this split
  return out


def evaluated(job: Job) -> dict | None:
  """W/eval's metrics if newer than the last stage's final params."""
  path = os.path.join(job.workdir, "eval", "metrics.json")
  summary = workdir_lib.summary_path(job.workdir, job.exp.stage_order[-1])
  if os.path.isfile(path) and os.path.getmtime(path) > os.path.getmtime(summary):
    with open(path) as f:
      return json.load(f)
  return None


def headline(eval_metrics: dict) -> dict:
  return {k: round(eval_metrics[k], 4) for k in EVAL_HEADLINE if k in eval_metrics}


PHASES = (
    Phase("dataset", build_dataset, summary=lambda job, sizes: f"dataset: {sizes}"),
    Phase("tokenizer", train_tokenizer, trained_tokenizer,
          lambda job, tok: f"tokenizer: {tok.name}, text vocabulary {tok.text_vocab_size}"),
    Phase("vq", train_vq, trained_vq,
          lambda job, m: f"VQ tokenizer: {json.dumps({k: round(v, 4) for k, v in m.items()})}",
          start=lambda job: (f"VQ tokenizer: training {job.vq_config.train.steps} steps "
                             f"into {job.vq_dir}")),
    Phase("pretokenize", pretokenize_with_vq,
          summary=lambda job, r: f"pretokenized: { {s: v['written'] for s, v in r.items()} }"),
    Phase("train", lambda job: run_lib.run_experiment(job.exp, job.workdir)),
    Phase("evaluate", lambda job: eval_run.run_evaluation(job.workdir), evaluated,
          lambda job, m: f"evaluation: {json.dumps(headline(m))}"),
)


def run_demo(config, workdir: str, config_file: str) -> dict:
  """Every phase in order, each skipped or resumed when done, then the report."""
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  job = Job(experiment.resolve(config, workdir), workdir, config_file)  # a bad config fails here
  timings = Timings(workdir)
  t_all = time.time()
  for phase in PHASES:
    t = time.time()
    if (line := phase.start(job)) is not None:
      log(line)
    result = phase.finished(job)
    job.results[phase.name] = phase.run(job) if result is None else result
    timings.add(f"{phase.name}_s", time.time() - t)
    if (line := phase.summary(job, job.results[phase.name])) is not None:
      log(f"{line} ({time.time() - t:.1f}s)")
  timings.add("total_s", time.time() - t_all)

  out = job.results["train"]
  out["extra"] = {
      "Evaluation of the final model (full tables: eval/report.md)":
          headline(job.results["evaluate"]),
      "Demo job": {"dataset": job.results["dataset"], "vq_eval": job.results["vq"],
                   "timings_s (accumulated over runs)": timings.data}}
  report_lib.write(workdir, out, title=TITLE)
  log(f"done in {time.time() - t_all:.0f}s this run; report: {workdir}/report.md")
  return out


def markdown(out: dict) -> str:
  """The demo report (`run_demo`'s) as the markdown the command prints."""
  return report_lib.markdown(out, title=TITLE)
