"""The workdir module on hand-made workdirs: layout, config round trip, the latest stage,
where a stage starts (`init_from`) and which earlier params are at hand."""

import os

import pytest

from synergen_jax import workdir as workdir_lib
from synergen_jax.configs import models
from synergen_jax import experiment


def _raw(init_params=""):
  c = experiment.base_config(models.tiny())
  c.init_params = init_params
  c.data.vq_downsample = 16  # 64 px -> the tiny model's 4 x 4 code grid
  c.stage_order = ("text", "s1", "s2")
  c.stages.text = experiment.make_stage("text", ("llm",), 4)
  c.stages.s1 = experiment.make_stage("multimodal", ("vision",), 4)
  c.stages.s2 = experiment.make_stage("multimodal", ("vision",), 4)
  return c


def _config(init_params="", s2_init_from=None):
  c = _raw(init_params)
  if s2_init_from is not None:
    c.stages.s2.init_from = s2_init_from
  return experiment.resolve(c)


def _finish(w, stage):
  os.makedirs(workdir_lib.final_params_dir(w, stage))
  with open(workdir_lib.summary_path(w, stage), "w") as f:
    f.write("{}")


def test_config_round_trip_and_missing_config(tmp_path):
  w = str(tmp_path / "w")
  with pytest.raises(FileNotFoundError, match="not a training workdir"):
    workdir_lib.read_config(w)
  config = _config()
  workdir_lib.write_config(w, config)
  back = workdir_lib.read_config(w)
  assert back.stage_order == config.stage_order
  assert back.stages.s1.trainable == ("vision",)


def test_latest_stage_prefers_the_newest_of_finished_and_started(tmp_path):
  w, config = str(tmp_path), _config()
  with pytest.raises(FileNotFoundError, match="no finished stage"):
    workdir_lib.latest_stage(w, config)
  os.makedirs(workdir_lib.checkpoints_dir(w, "text"))
  assert workdir_lib.latest_stage(w, config) == ("text", False)
  _finish(w, "text")
  assert workdir_lib.latest_stage(w, config) == ("text", True)
  os.makedirs(workdir_lib.checkpoints_dir(w, "s1"))
  assert workdir_lib.stage_started(w, "s1") and not workdir_lib.stage_done(w, "s1")
  assert workdir_lib.latest_stage(w, config) == ("s1", False)
  _finish(w, "s1")
  assert workdir_lib.latest_stage(w, config) == ("s1", True)


def test_start_point_resolves_init_from(tmp_path):
  w = str(tmp_path)
  config = _config()
  assert workdir_lib.start_point(w, config, "text") == workdir_lib.StartPoint(None)
  assert workdir_lib.start_point(w, config, "s1") == workdir_lib.StartPoint(
      workdir_lib.final_params_dir(w, "text"), "text")
  imported = str(tmp_path / "imported")
  assert workdir_lib.start_point(w, _config(imported), "text") == workdir_lib.StartPoint(
      imported)
  config = _config(s2_init_from="scratch")
  assert workdir_lib.start_point(w, config, "s2") == workdir_lib.StartPoint(None)
  config = _config(s2_init_from=imported)
  assert workdir_lib.start_point(w, config, "s2") == workdir_lib.StartPoint(imported)


def test_start_and_text_pretrained_params_only_when_at_hand(tmp_path):
  w = str(tmp_path)
  config = _config()
  assert workdir_lib.start_params_dir(w, config, "text") is None       # random init
  assert workdir_lib.start_params_dir(w, config, "s1") is None         # not written yet
  assert workdir_lib.text_pretrained_params_dir(w, config, "s2") is None
  _finish(w, "text")
  assert workdir_lib.start_params_dir(w, config, "s1") == workdir_lib.final_params_dir(
      w, "text")
  assert workdir_lib.text_pretrained_params_dir(w, config, "s2") == (
      workdir_lib.final_params_dir(w, "text"))
  assert workdir_lib.text_pretrained_params_dir(w, config, "text") is None
  imported = tmp_path / "imported"
  assert workdir_lib.start_params_dir(w, _config(str(imported)), "text") is None
  imported.mkdir()
  assert workdir_lib.start_params_dir(w, _config(str(imported)), "text") == str(imported)


def test_text_pretrained_params_are_those_before_any_vision_training(tmp_path):
  """A text stage after a multimodal one (the demo's `retext`) restores the LLM; text
  retention is still measured against the text stage before vision training."""
  w = str(tmp_path)
  c = _raw("")
  c.stages.retext = experiment.make_stage("text", ("llm",), 3)
  c.stage_order = ("text", "s1", "retext", "s2")
  config = experiment.resolve(c)
  for stage in ("text", "s1", "retext"):
    _finish(w, stage)
  want = workdir_lib.final_params_dir(w, "text")
  assert workdir_lib.text_pretrained_params_dir(w, config, "s2") == want
  assert workdir_lib.text_pretrained_params_dir(w, config, "retext") == want
