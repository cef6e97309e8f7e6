"""Restarts of the real demo job, each run a separate process (issue 14).

In-process `stop_at` runs share caches (compiled eval functions, specs) with the run
before them and so hide bugs that only a fresh process meets. Here every run is
`python -m synergen_jax.demo` (experiments/demo.py's recipe at test size) in a
subprocess, interrupted by a signal and run again with the same command:

* SIGTERM in each phase in turn: dataset build, tokenizer, VQ training, pretokenization,
  every training stage of `config.stage_order` (periodic validation on, so each resumed
  stage validates right after its restart), evaluation;
* SIGKILL in the first stage while the asynchronous Orbax checkpoint of its last step is
  being written (in the run that resumes that stage after its SIGTERM): Orbax leaves the
  incomplete (tmp) checkpoint, the next run resumes from the last complete one and
  replaces it.

The last rerun finishes, and its metrics, logged losses and validations (each step
once), data and final params equal an uninterrupted run's, bitwise.

What the size is for: every phase and every stage of the recipe is kept (the kinds of
stage differ in what a restart restores: trained groups, tasks, data mixes, the first
multimodal stage's initialisation); only sizes shrink (24 + 8 records, one layer, 4
steps per stage, 6 VQ steps): step 1 is the earliest SIGTERM point, steps 2 and 4 are a
periodic validation and checkpoint after a restart and the last step's checkpoint (the
SIGKILL), so 4 steps are the fewest that show all of it. The SIGKILL rides along in the
demo's own runs (one process more) instead of a run of its own (three more processes).

The interruption points come from the `SYNERGEN_SIGTERM_AT` / `SYNERGEN_SIGKILL_AT` hook
(`synergen_jax/preemption.signal_point`); evaluation is interrupted from here once it logs.
The runs use one CPU device and share one persistent compilation cache; the straight run
starts in the background when the module starts and the interrupted runs trail it (see
the `straight` fixture).
"""

import json
import os
import signal
import subprocess
import sys
import threading

import jax
import numpy as np
import pytest

from synergen_jax import workdir as workdir_lib
from synergen_jax import experiment
from synergen_jax import preemption

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow  # the demo job and train.py, each run many times as processes
RUN_TIMEOUT_S = 1800  # a safety net only: a run on a loaded 2-core box can take minutes
# Keys that measure time or throughput (or count this run's steps): they differ run to run.
TIMING_KEYS = ("step_s", "tokens_per_s", "mfu", "model_flops_per_step", "wall_s",
               "wall_s_this_run", "compile_s", "steps_this_run", "eval_s", "train_wall_s",
               "images_per_s")

# The reduced demo experiment: experiments/demo.py's recipe (stages, data mix, optimizers,
# whatever they are) with test sizes. Only sizes are overridden.
DEMO_CONFIG = '''
"""experiments/demo.py at test size (tests/test_restart.py)."""
from data_pipelines.scenes import tfds_scenes
from synergen_jax import experiment

TRAIN, EVAL = 24, 8


def get_config():
  c = experiment.load_sibling({demo_file!r}, "demo").get_config()
  c.demo.update(dict(train_size=TRAIN, eval_size=EVAL, vq_config={vq_file!r}, vq_steps=6,
                     vq_eval_images=8))
  c.data.source.name = "synergen_scenes/" + tfds_scenes.config_name(
      c.demo.image_size, TRAIN, EVAL, c.demo.get("cell", 0), c.demo.get("max_objects", 4))
  c.data.num_shards, c.data.encode_batch_size = 2, 16
  c.data.understanding.batch_size = c.data.generation.batch_size = 2
  c.text_data.batch_size = 2
  c.model.num_layers = c.model.head.num_layers = 1
  for name in c.stage_order:
    st = c.stages[name]
    st.steps, st.optimizer.warmup_steps = 4, 1
    for task in ("understanding", "generation"):
      if task in st.data and "batch_size" in st.data[task]:
        st.data[task].batch_size = 2
    if "batch_size" in st.text_data:
      st.text_data.batch_size = 2
  # Validation every 2 steps: a stage interrupted at step 1 validates right after its
  # restart (the first evaluation of a fresh process happens inside the training loop).
  c.train.update(dict(log_every=1, eval_every=2, eval_batches=1, checkpoint_every=2,
                      compilation_cache=False, peak_flops_per_device=1e11))
  c.eval.update(dict(vqa_questions=16, gen_prompts=1, gen_samples=1, text_batches=1,
                     batch_size=4, grid_prompts=1, timing_images=0, max_answer_tokens=4))
  return c
'''

VQ_CONFIG = '''
"""The demo's VQ experiment (experiments/demo.py's `demo.vq_config`) at test size
(tests/test_restart.py)."""
from synergen_jax import experiment


def get_config():
  c = experiment.load_sibling({vq_file!r}, {vq_name!r}).get_config()
  c.model.base_channels = 8
  c.model.hidden_size = 8 * c.model.channel_multiplier[-1]
  c.train.update(dict(log_every=1, checkpoint_every=2))
  return c
'''


def _env(cache_dir: str, **extra) -> dict:
  """One CPU device (conftest's 8 fake devices dropped, its quick XLA flags kept) and a
  persistent compilation cache shared by the test's runs."""
  env = {k: v for k, v in os.environ.items() if k not in preemption.SIGNAL_AT_ENV}
  env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                              if "xla_force_host_platform_device_count" not in f)
  env.update(JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=cache_dir,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0", PYTHONUNBUFFERED="1")
  env.update(extra)
  return env


class _Run:
  """`python -m args` from the repository root, its output read by a thread.

  `term_when(line)`: the test sends SIGTERM once an output line satisfies it.
  """

  def __init__(self, args, env, term_when=None):
    self.proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=env,
                                 text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    self.lines, self.ended, self.term_when = [], False, term_when
    self.cond = threading.Condition()
    self.timer = threading.Timer(RUN_TIMEOUT_S, self.proc.kill)
    self.timer.start()
    self.reader = threading.Thread(target=self._read, daemon=True)
    self.reader.start()

  def _read(self):
    sent = False
    for line in self.proc.stdout:
      if self.term_when is not None and not sent and self.term_when(line):
        self.proc.send_signal(signal.SIGTERM)
        sent = True
      with self.cond:
        self.lines.append(line)
        self.cond.notify_all()
    self.proc.wait()
    self.timer.cancel()
    with self.cond:
      self.ended = True
      self.cond.notify_all()

  def _wait(self, done) -> None:
    with self.cond:
      self.cond.wait_for(lambda: self.ended or done(), RUN_TIMEOUT_S)

  def passed(self, prefix: str | None) -> None:
    """Waits until the run logged a line starting with `prefix` (or ended)."""
    if prefix is not None:
      self._wait(lambda: any(line.startswith(prefix) for line in self.lines))

  def finish(self) -> tuple[int, str]:
    """(exit status, output) once the run ended."""
    self._wait(lambda: False)
    return self.proc.returncode, "".join(self.lines)

  def kill(self) -> None:
    if self.proc.poll() is None:
      self.proc.kill()


def _run(args, env, term_when=None) -> tuple[int, str]:
  return _Run(args, env, term_when).finish()


def _is_timing(key: str) -> bool:
  name = key.rpartition("/")[2]
  return (name in TIMING_KEYS or name.startswith("timings_s") or name.endswith("_s_per_image")
          or name == "speedup")


def _without_timing(d):
  if isinstance(d, dict):
    return {k: _without_timing(v) for k, v in d.items() if not _is_timing(k)}
  if isinstance(d, list):
    return [_without_timing(v) for v in d]
  return d


def _json(path):
  with open(path) as f:
    return json.load(f)


def _jsonl(path):
  with open(path) as f:
    return [_without_timing(json.loads(line)) for line in f]


def _bytes(path):
  with open(path, "rb") as f:
    return f.read()


def _final_params(workdir, stage):
  return jax.device_get(workdir_lib.load_params(workdir, stage=stage)[0])


def _assert_same_params(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(np.testing.assert_array_equal, a, b)


# ---- the straight (uninterrupted) run: in the background, from the module's start ----
@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """The straight demo run, started in the background.

  The interrupted runs trail it: before each one the test waits until the straight run
  has passed the same point, so every program the interrupted run compiles is already
  in the shared persistent compilation cache (no program is compiled twice), and the
  straight run overlaps the interrupted ones on a multi-core machine.
  """
  demo_root = tmp_path_factory.mktemp("demo")
  vq_file = demo_root / "vq_small.py"
  demo_vq = experiment.load_sibling(os.path.join(REPO, "experiments", "demo.py"),
                                    "demo").get_config().demo.vq_config
  vq_file.write_text(VQ_CONFIG.format(vq_file=os.path.join(REPO, "experiments", demo_vq),
                                      vq_name=os.path.splitext(demo_vq)[0]))
  config_file = demo_root / "demo_small.py"
  config_file.write_text(DEMO_CONFIG.format(
      demo_file=os.path.join(REPO, "experiments", "demo.py"), vq_file=str(vq_file)))
  demo = {"root": demo_root, "config_file": str(config_file),
          "config": experiment.load_sibling(str(config_file), "demo_small").get_config(),
          "env": _env(str(demo_root / "jax_cache")),
          "straight": str(demo_root / "straight")}
  demo["run"] = _Run(["synergen_jax.demo", f"--workdir={demo['straight']}",
                      f"--config={config_file}"], demo["env"])
  yield demo
  demo["run"].kill()


def _finished(run) -> None:
  status, out = run.finish()
  assert status == 0, "the straight run failed:\n" + out[-5000:]


# ---- the demo job, interrupted in every phase -------------------------------------------
SIGTERM_AT, SIGKILL_AT = "SYNERGEN_SIGTERM_AT", "SYNERGEN_SIGKILL_AT"


def _demo_points(config) -> list[tuple[str, dict, str | None]]:
  """(phase, the interrupting hook's environment, the straight run's log line once it
  compiled what the interrupted run needs) in the order the demo reaches them. The run
  that resumes the first stage after its SIGTERM gets the SIGKILL while that stage's
  last checkpoint (step 4) is written."""
  first = config.stage_order[0]
  points = [("dataset", {SIGTERM_AT: "dataset"}, None),
            ("tokenizer", {SIGTERM_AT: "tokenizer"}, None),
            ("vq", {SIGTERM_AT: "vq@5"}, "[demo] VQ tokenizer: {"),
            ("pretokenize", {SIGTERM_AT: "pretokenize/train"}, "[demo] pretokenized:")]
  for s in config.stage_order:
    points.append((f"stage {s}", {SIGTERM_AT: f"train/{s}@1"}, f"[{s}] first step"))
    if s == first:
      points.append((f"checkpoint {s}", {SIGKILL_AT: f"checkpoint/{s}@4"}, f"[{s}] done;"))
  return points + [("evaluation", {}, "[demo] evaluation:")]


def _stage_of(point: str) -> str:
  """"train/<stage>@N" or "checkpoint/<stage>@N" -> <stage>."""
  return point.partition("/")[2].partition("@")[0]


def test_demo_interrupted_in_every_phase_finishes_like_a_straight_run(straight):
  demo = straight
  config, w = demo["config"], str(demo["root"] / "interrupted")
  cmd = ["synergen_jax.demo", f"--workdir={w}", f"--config={demo['config_file']}"]
  data = os.path.join(w, "data")
  order = list(config.stage_order)
  resumed = None  # (stage, step): where the previous run left a stage it was stopped in
  for phase, hook, straight_passed in _demo_points(config):
    demo["run"].passed(straight_passed)
    if not hook:  # evaluation: SIGTERM as soon as it logs
      status, out = _run(cmd, demo["env"],
                         term_when=lambda line: line.startswith("[evaluate]"))
    else:
      status, out = _run(cmd, dict(demo["env"], **hook))
    killed = hook.get(SIGKILL_AT)
    where = f"{'SIGKILL' if killed else 'SIGTERM'} in {phase}: status {status}\n{out[-5000:]}"
    if resumed is not None:
      stage, at = resumed
      # A restarted stage resumes from its last complete checkpoint; after a preemption at
      # step 1 its first validation is the periodic one inside the training loop (issue 14).
      assert f"[{stage}] resumed from {w}/{stage}/checkpoints at step {at}" in out, where
      if at == 1:
        assert f"[{stage}] step 2 validation:" in out, where
      if not killed:
        assert workdir_lib.stage_done(w, stage), where
      resumed = None
    if killed:
      # SIGKILL while the asynchronous write of step 4's checkpoint is under way (step 2's
      # is complete: Orbax finishes one save before it starts the next).
      stage = _stage_of(killed)
      ckpts = os.path.join(w, stage, "checkpoints")
      assert status == -signal.SIGKILL, where
      names = sorted(os.listdir(ckpts))
      assert "2" in names and "4" not in names, (names, where)
      assert any(n.startswith("4.") and "tmp" in n for n in names), names  # Orbax's tmp dir
      assert not workdir_lib.stage_done(w, stage), where
      rows = _jsonl(os.path.join(w, stage, "metrics.jsonl"))
      assert [r["step"] for r in rows if "train/loss" in r] == [1, 2, 3, 4], where  # logged
      resumed = (stage, 2)
      continue
    point = hook.get(SIGTERM_AT)
    if point is not None and point.startswith("train/"):
      stage = _stage_of(point)
      assert status == preemption.PREEMPTED_EXIT_CODE, where
      assert "preempted at step 1" in out, where
      assert os.path.isdir(os.path.join(w, stage, "checkpoints", "1")), where
      assert not workdir_lib.stage_done(w, stage), where
      assert all(workdir_lib.stage_done(w, s) for s in order[:order.index(stage)]), where
      resumed = (stage, 1)
      continue
    if phase == "vq":  # the VQ trainer saves the step it is at (5; checkpoints every 2)
      assert status == preemption.PREEMPTED_EXIT_CODE, where
      assert "preempted at step 5" in out, where
      assert os.path.isfile(os.path.join(data, "tokenizer.model")), where
      assert os.path.isdir(os.path.join(w, "vq", "checkpoints", "5")), where
      assert not os.path.exists(os.path.join(w, "vq", "checkpoints", "6")), where
      assert not os.path.exists(os.path.join(w, "vq", "eval", "metrics.json")), where
      continue
    assert status == -signal.SIGTERM, where  # the default action outside the trainers
    if phase == "dataset":
      assert "[demo] dataset:" not in out and not os.path.exists(
          os.path.join(data, "tokenizer.model")), where
    elif phase == "tokenizer":
      assert "[demo] dataset:" in out, where
      assert not os.path.exists(os.path.join(data, "tokenizer.model")), where
    elif phase == "pretokenize":
      names = os.listdir(os.path.join(data, "pretokenized"))
      assert sum(n.startswith("train.") and n.endswith("-of-00002") for n in names) == 2, where
      assert not any(n.startswith("validation.") and n.endswith("-of-00002")
                     for n in names), where
    elif phase == "evaluation":
      assert workdir_lib.stage_done(w, order[-1]), where
      assert not os.path.exists(os.path.join(w, "eval", "metrics.json")), where

  _finished(demo["run"])
  status, out = _run(cmd, demo["env"])
  assert status == 0, out[-5000:]
  s = demo["straight"]
  # Final metrics: the report (validation per stage, evaluation headline, VQ evaluation,
  # dataset sizes) and the full evaluation, timings aside.
  assert _without_timing(_json(os.path.join(w, "report.json"))) == _without_timing(
      _json(os.path.join(s, "report.json")))
  want_eval = _without_timing(_json(os.path.join(s, "eval", "metrics.json")))
  got_eval = _without_timing(_json(os.path.join(w, "eval", "metrics.json")))
  assert want_eval and got_eval == want_eval
  for stage in order:
    # Every logged train / validation row (each step once), and the stage's validation.
    assert _jsonl(os.path.join(w, stage, "metrics.jsonl")) == _jsonl(
        os.path.join(s, stage, "metrics.jsonl")), stage
    assert (_json(os.path.join(w, stage, "summary.json"))["validation"]
            == _json(os.path.join(s, stage, "summary.json"))["validation"]), stage
  # The killed stage: two validations (step 2 and the end), the incomplete checkpoint
  # replaced by a complete one.
  first = os.path.join(w, order[0])
  assert len([r for r in _jsonl(os.path.join(first, "metrics.jsonl"))
              if any(k.startswith("val/") for k in r)]) == 2
  assert sorted(os.listdir(os.path.join(first, "checkpoints"))) == ["2", "4"]
  assert _jsonl(os.path.join(w, "vq", "metrics.jsonl")) == _jsonl(
      os.path.join(s, "vq", "metrics.jsonl"))
  # The data the stages trained on: tokenizer and VQ codes, byte for byte.
  assert _bytes(os.path.join(data, "tokenizer.model")) == _bytes(
      os.path.join(s, "data", "tokenizer.model"))
  pretok = sorted(n for n in os.listdir(os.path.join(s, "data", "pretokenized"))
                  if not n.endswith(".json"))
  assert sorted(n for n in os.listdir(os.path.join(data, "pretokenized"))
                if not n.endswith(".json")) == pretok and len(pretok) == 4
  for n in pretok:
    assert _bytes(os.path.join(data, "pretokenized", n)) == _bytes(
        os.path.join(s, "data", "pretokenized", n)), n
  for stage in order:  # every stage's final params (the killed one's and the last's too)
    _assert_same_params(_final_params(w, stage), _final_params(s, stage))
