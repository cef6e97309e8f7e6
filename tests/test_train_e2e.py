"""End to end on a tiny dataset: a two-stage run (text pretraining -> stage 1), the
workdir layout, frozen groups bit-identical across a stage, resume equality, SIGTERM."""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from synergen_jax import experiment
from synergen_jax import loop
from synergen_jax import param_checkpoint as params_io
from synergen_jax import workdir as workdir_lib
from synergen_jax.training import run as run_lib
from synergen_jax.training.compiled import Compiled
from synergen_jax.state import freezing
from synergen_jax import preemption

LOSS_KEYS = ("train/loss", "train/text_loss", "train/image_loss", "train/grad_norm")



@pytest.fixture(scope="module")
def setup(tiny_run):
  """The session's tiny two-stage run (tests/tiny_run.py; evaluation tests share it), and
  the compiled functions that this module's runs share (`training/compiled.py`)."""
  exp = experiment.resolve(tiny_run["cfg"])
  compiled = Compiled(exp.model, tiny_run["mesh"], exp.train.xla_compiler_options)
  return dict(tiny_run, compiled=compiled)


def _rows(workdir, stage):
  with open(os.path.join(workdir, stage, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if '"train/loss"' in line]


def _params(workdir, stage):
  return jax.device_get(workdir_lib.load_params(workdir, stage=stage, mesh=None)[0])


def test_two_stage_run_writes_the_workdir(setup):
  w = setup["straight"]
  rows = setup["report"]["rows"]
  assert [r["stage"] for r in rows] == ["init", "text", "stage1"]
  for r in rows:
    assert all(np.isfinite(v) for v in r["validation"].values())
  init, text, stage1 = (r["validation"] for r in rows)
  assert text["text/text_loss"] < init["text/text_loss"]          # LLM pretraining
  assert stage1["generation/image_loss"] < text["generation/image_loss"]  # stage 1
  for stage in ("text", "stage1"):
    assert workdir_lib.stage_done(w, stage)
    assert os.path.isdir(os.path.join(w, stage, "params"))
    assert os.listdir(os.path.join(w, stage, "tensorboard"))
    assert [r["step"] for r in _rows(w, stage)] == [2, 4]
    assert all(r["train/tokens_per_s"] > 0 and r["train/mfu"] > 0 for r in _rows(w, stage))
  # Stage 1 replays text beside its vision tasks (experiments/tiny.py): its steps train on
  # text tokens too.
  assert all(r["train/text/text_tokens"] > 0 and r["train/understanding/text_tokens"] > 0
             for r in _rows(w, "stage1"))
  assert os.path.isfile(os.path.join(w, "report.md"))
  assert workdir_lib.read_config(w).model.vocab_size == setup["cfg"].model.vocab_size
  # Rerunning the same command resumes: nothing left to train.
  again = run_lib.run_experiment(setup["cfg"], w, mesh=setup["mesh"],
                                 compiled=setup["compiled"])
  assert again["rows"] == rows


def test_stage1_keeps_frozen_groups_bit_identical(setup):
  w = setup["straight"]
  before, after = _params(w, "text"), _params(w, "stage1")
  train_b, frozen_b = freezing.split(before, ("vision",))
  train_a, frozen_a = freezing.split(after, ("vision",))
  jax.tree.map(np.testing.assert_array_equal, frozen_b, frozen_a)
  changed = jax.tree.map(lambda a, b: bool(np.any(a != b)), train_b, train_a)
  assert all(jax.tree.leaves(changed["fold"])) and all(jax.tree.leaves(changed["unfold_head"]))


def test_resume_equals_straight_run(setup, monkeypatch):
  runs, run = [], loop.run  # each stage's steps go through the shared loop

  def spy(state, step, last, next_batch, train_step, hooks, timers, signal_name):
    runs.append((signal_name, step, last, [h.name for h in hooks]))
    return run(state, step, last, next_batch, train_step, hooks, timers, signal_name)

  monkeypatch.setattr(loop, "run", spy)
  w = str(setup["tmp"].mktemp("resumed"))
  first = run_lib.run_experiment(setup["cfg"], w, stop_at=2, mesh=setup["mesh"],
                                 compiled=setup["compiled"])
  assert [r["stage"] for r in first["rows"]] == ["init"]
  assert not workdir_lib.stage_done(w, "text")
  run_lib.run_experiment(setup["cfg"], w, mesh=setup["mesh"], compiled=setup["compiled"])
  hooks = ["metrics", "log", "evaluate", "checkpoint", "preempt"]
  assert runs == [("train/text", 0, 2, hooks), ("train/text", 2, 4, hooks),
                  ("train/stage1", 0, 4, hooks)]
  for stage in ("text", "stage1"):
    a, b = _rows(setup["straight"], stage), _rows(w, stage)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
      for k in LOSS_KEYS:
        assert ra[k] == rb[k], (stage, ra["step"], k)
    jax.tree.map(np.testing.assert_array_equal, _params(setup["straight"], stage),
                 _params(w, stage))


def test_preemption_saves_and_resumes(setup):
  w = str(setup["tmp"].mktemp("preempted"))
  ctx = run_lib.prepare(setup["cfg"], w, mesh=setup["mesh"], compiled=setup["compiled"])
  ctx.watcher.request()  # as if SIGTERM arrived before the first step
  with pytest.raises(preemption.Preempted) as e:
    run_lib.run_experiment(setup["cfg"], w, ctx=ctx)
  assert e.value.step == 1
  assert os.path.isdir(os.path.join(w, "text", "checkpoints", "1"))
  report = run_lib.run_experiment(setup["cfg"], w, mesh=setup["mesh"],
                                  compiled=setup["compiled"])
  assert [r["stage"] for r in report["rows"]] == ["init", "text", "stage1"]
  jax.tree.map(np.testing.assert_array_equal, _params(setup["straight"], "stage1"),
               _params(w, "stage1"))


def test_compiled_functions_belong_to_one_model_and_mesh(setup):
  exp = experiment.resolve(setup["cfg"])
  other = Compiled(dataclasses.replace(exp.model, num_layers=exp.model.num_layers + 1),
                   setup["mesh"], exp.train.xla_compiler_options)
  with pytest.raises(ValueError, match="another model, mesh or XLA options"):
    run_lib.prepare(setup["cfg"], str(setup["tmp"].mktemp("other")), mesh=setup["mesh"],
                    compiled=other)


def test_stage_params_feed_params_io(setup):
  """A finished stage's params are a params_io checkpoint (what the next stage, eval and
  inference restore), loadable onto another mesh."""
  params, exp = workdir_lib.load_params(setup["straight"])
  assert exp.model.vocab_size == setup["cfg"].model.vocab_size
  assert exp.stage_order == ("text", "stage1")
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                        params)
  again = params_io.restore_params(os.path.join(setup["straight"], "stage1", "params"), target)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(params), jax.device_get(again))
