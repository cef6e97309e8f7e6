"""The resolved experiment: one typed, frozen view of an experiment config with every
default filled in from its one home, checked by field name."""

import dataclasses

import ml_collections
import pytest

from synergen_jax import experiment
from synergen_jax.configs import models
from synergen_jax.experiment import defaults
from synergen_jax.model import ModelConfig


def _config():
  c = experiment.base_config(models.tiny())
  c.data.vq_downsample = 16  # 64 px -> the tiny model's 4 x 4 code grid
  c.stage_order = ("text", "s1")
  c.stages.text = experiment.make_stage("text", ("llm",), 4)
  # A partial stage: only what differs from the defaults.
  c.stages.s1 = ml_collections.ConfigDict(dict(
      trainable=("vision",), steps=7, optimizer=dict(lr=3e-3),
      data=dict(generation=dict(batch_size=16))))
  return c


def test_dataclass_fields_are_the_default_fields():
  """A field added to the defaults without its typed twin (or the reverse) fails here."""
  pairs = [(experiment.Optimizer, defaults.default_optimizer_config()),
           (experiment.Train, defaults.default_train_config()),
           (experiment.Eval, defaults.default_eval_config())]
  for cls, cfg in pairs:
    assert {f.name for f in dataclasses.fields(cls)} == set(cfg.keys()), cls.__name__
  stage = {f.name for f in dataclasses.fields(experiment.Stage)} - {"name"}
  assert stage == set(defaults.default_stage_config().keys())


def test_resolve_fills_defaults_and_applies_stage_overrides(tmp_path):
  exp = experiment.resolve(_config(), str(tmp_path))
  assert exp.stage_order == ("text", "s1")
  text, s1 = exp.stages
  assert text.tasks == ("text",) and s1.tasks == ("understanding", "generation")
  assert s1.steps == 7 and s1.trainable == ("vision",) and s1.init_from == "previous"
  assert s1.optimizer.lr == 3e-3 and s1.optimizer.warmup_steps == 200  # the default
  assert dict(s1.optimizer.group_lr_mult) == {"vision": 1.0, "llm_attention": 1.0,
                                              "llm": 1.0}
  assert s1.data.generation.batch_size == 16 and exp.data.generation.batch_size == 8
  assert s1.data.understanding.batch_size == 8
  assert exp.train == experiment.resolve(_config()).train  # typed values compare
  assert exp.eval.guidance == 7.5 and exp.eval.sampling.temperature == 1.0
  assert exp.model == ModelConfig.from_config_dict(models.tiny())


def test_resolved_experiment_is_frozen_and_its_optimizer_is_a_cache_key():
  exp = experiment.resolve(_config())
  with pytest.raises(dataclasses.FrozenInstanceError):
    exp.seed = 1
  with pytest.raises(dataclasses.FrozenInstanceError):
    exp.stage("s1").optimizer.lr = 1.0
  with pytest.raises(AttributeError):  # data configs are frozen too
    exp.stage("s1").data.seed = 3
  opt = exp.stage("s1").optimizer
  assert hash(opt) == hash(experiment.Optimizer.from_config(dict(lr=3e-3)))
  assert {opt: 1}[experiment.Optimizer.from_config(dict(lr=3e-3))] == 1
  with pytest.raises(KeyError, match="stage 'nope'"):
    exp.stage("nope")


def test_bad_fields_are_named():
  c = _config()
  c.stages.s1.optimizer.lr_typo = 1.0
  with pytest.raises(experiment.ConfigError, match=r"config\.stages\.s1\.optimizer\.lr_typo"):
    experiment.resolve(c)
  c = _config()
  c.eval.gen_top_p = 0.0
  with pytest.raises(experiment.ConfigError, match=r"config\.eval: sampling\.top_p"):
    experiment.resolve(c)
  exp = experiment.resolve(_config())
  with pytest.raises(experiment.ConfigError, match=r"config\.eval\.vqa_questions"):
    exp.replace_eval(vqa_questions=-1)
  assert exp.replace_eval(vqa_questions=5).eval.vqa_questions == 5


def test_to_json_round_trip_resolves_to_the_same_experiment(tmp_path):
  exp = experiment.resolve(_config(), str(tmp_path))
  again = experiment.resolve(experiment.from_json(experiment.to_json(exp.config)))
  assert again.stages == exp.stages and again.train == exp.train and again.eval == exp.eval
  assert again.model == exp.model and again.mesh_shape == exp.mesh_shape
