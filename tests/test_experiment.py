"""The resolved experiment: one typed, frozen view of an experiment config with every
default filled in from its one home, checked by field name."""

import dataclasses
import re

import ml_collections
import pytest

from data_pipelines import config as data_config
from synergen_jax import experiment
from synergen_jax import typed_config
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
           (experiment.Eval, defaults.default_eval_config()),
           (experiment.DataConfig, data_config.default_data_config()),
           (data_config.TaskData, data_config.default_data_config().understanding),
           (data_config.Source, data_config.default_data_config().source),
           (data_config.SourceFields, data_config.default_data_config().source.fields),
           (experiment.TextData, data_config.default_text_data_config())]
  for cls, cfg in pairs:
    assert {f.name for f in dataclasses.fields(cls)} == set(cfg.keys()), cls.__name__
  demo = {f.name for f in dataclasses.fields(experiment.Demo)}
  assert set(defaults.default_demo_config().keys()) < demo
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
  with pytest.raises(dataclasses.FrozenInstanceError):  # data configs are frozen too
    exp.stage("s1").data.seed = 3
  with pytest.raises(dataclasses.FrozenInstanceError):
    exp.stage("s1").data.understanding.batch_size = 3
  with pytest.raises(dataclasses.FrozenInstanceError):
    exp.text_data.seq_len = 3
  opt = exp.stage("s1").optimizer
  assert hash(opt) == hash(experiment.Optimizer.from_config(dict(lr=3e-3)))
  assert {opt: 1}[experiment.Optimizer.from_config(dict(lr=3e-3))] == 1
  with pytest.raises(KeyError, match="stage 'nope'"):
    exp.stage("nope")
  # a whole stage (data configs included) is a value: equal stages hash alike
  again = experiment.resolve(_config()).stage("s1")
  assert again is not exp.stage("s1") and {exp.stage("s1"): 1}[again] == 1


def test_a_state_spec_takes_a_typed_optimizer():
  from synergen_jax.state import train_state
  with pytest.raises(TypeError, match="StateSpec.opt"):
    train_state.StateSpec(ModelConfig.from_config_dict(models.tiny()), None, ("vision",),
                          defaults.default_optimizer_config(), 10)


def test_bad_fields_are_named():
  c = _config()
  c.stages.s1.optimizer.lr_typo = 1.0
  with pytest.raises(experiment.ConfigError, match=r"config\.stages\.s1\.optimizer\.lr_typo"):
    experiment.resolve(c)
  c = _config()
  c.eval.gen_top_p = 0.0
  with pytest.raises(experiment.ConfigError, match=r"config\.eval\.gen_top_p: sampling\.top_p"):
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


def test_every_config_dataclass_field_has_a_comment():
  """One comment line above every field of every config dataclass (what it means)."""
  import inspect
  from synergen_jax.state import optimizer
  classes = [experiment.Experiment, experiment.Stage, experiment.Train, experiment.Eval,
             experiment.Demo, optimizer.Optimizer, data_config.DataConfig,
             data_config.TaskData, data_config.Source, data_config.SourceFields,
             data_config.TextData]
  for cls in classes:
    lines = inspect.getsource(cls).splitlines()
    for f in dataclasses.fields(cls):
      i = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{f.name}:"))
      above = lines[i - 1].strip()
      assert above.startswith("#"), f"{cls.__name__}.{f.name} has no comment above it"


def _fails(c, field, fragment=""):
  with pytest.raises(experiment.ConfigError) as e:
    experiment.resolve(c)
  assert str(e.value).startswith(field + ":"), str(e.value)
  assert fragment in str(e.value), str(e.value)
  return e.value


@pytest.mark.parametrize("path, value, field, fragment", [
    ("data.cfg_dropout", 1.5, "config.data.cfg_dropout", "[0, 1]"),
    ("data.overlong", "cut", "config.data.overlong", "'drop' or 'truncate'"),
    ("data.und_qa_turns", 0, "config.data.und_qa_turns", ">= 1"),
    ("data.image_size", 60, "config.data.image_size", "divisible"),
    ("data.understanding.seq_len", 4, "config.data.understanding.seq_len", ">= 8"),
    ("data.und_type_weights", (("color", -1.0),), "config.data.und_type_weights", ">= 0"),
    ("data.und_type_weights", (("color",),), "config.data.und_type_weights[0]", "2 values"),
    ("data.und_object_keep", (("one", 0.5),), "config.data.und_object_keep[0][0]", "an int"),
    ("data.und_object_keep", ((1, 2.0),), "config.data.und_object_keep", "[0, 1]"),
    ("data.source.kind", "csv", "config.data.source.kind", "expected one of"),
    ("data.source.fields.image", "", "config.data.source.fields.image", "empty"),
    ("data.num_epochs", 0, "config.data.num_epochs", ">= 1 or None"),
    ("text_data.seq_len", 1, "config.text_data.seq_len", ">= 2"),
    ("stages.s1.data.und_caption_prob", -0.1, "config.stages.s1.data.und_caption_prob",
     "[0, 1]"),
    ("stages.s1.text_data.batch_size", 0, "config.stages.s1.text_data.batch_size", ">= 1"),
    ("stages.s1.optimizer.lr", 0.0, "config.stages.s1.optimizer.lr", "> 0"),
    ("stages.s1.optimizer.schedule", "linear", "config.stages.s1.optimizer.schedule",
     "not one of"),
    ("stages.s1.optimizer.group_lr_mult.vision", -1.0,
     "config.stages.s1.optimizer.group_lr_mult.vision", ">= 0"),
    ("stages.s1.optimizer.group_lr_mult.vison", 2.0,
     "config.stages.s1.optimizer.group_lr_mult.vison", "unknown field"),
    ("stages.s1.steps", 0, "config.stages.s1.steps", ">= 1"),
    ("stages.s1.kind", "video", "config.stages.s1.kind", "not one of"),
    ("stages.s1.tasks", ("text",), "config.stages.s1.tasks", "at least one of"),
    ("stages.s1.trainable", ("vision", "eyes"), "config.stages.s1.trainable", "subset"),
    ("stages.s1.text_loss_weights", (("understanding", 1.0),),
     "config.stages.s1.text_loss_weights", "one (task, weight >= 0) pair per task"),
    ("train.input_streams", -1, "config.train.input_streams", ">= 0"),
    ("train.log_every", 0, "config.train.log_every", ">= 1"),
    ("train.eval_sets", ("understanding", "video"), "config.train.eval_sets", "not one of"),
    ("eval.gen_prompts", 0, "config.eval.gen_prompts", ">= 1"),
    ("eval.vqa_splits", ("test", "test"), "config.eval.vqa_splits", "duplicate"),
    ("eval.gen_temperature", -1.0, "config.eval.gen_temperature", "temperature"),
    ("mesh.shape", (1, "x", 1), "config.mesh.shape[1]", "an int"),
    ("seed", None, "config.seed", "an int"),
])
def test_each_bad_value_names_its_field(path, value, field, fragment):
  c = _config()
  *parents, last = path.split(".")
  node = c
  for p in parents:
    if p not in node:  # a partial stage: only what it overrides
      node[p] = ml_collections.ConfigDict()
    node = node[p]
  node[last] = value
  _fails(c, field, fragment)


def test_wrong_types_are_named():
  """(ConfigDicts refuse most wrong types themselves; dicts and JSON do not.)"""
  for cfg, field in ((dict(generation=dict(batch_size="8")), "data.generation.batch_size"),
                     (dict(shuffle=1), "data.shuffle"), (dict(seed=0.5), "data.seed"),
                     (dict(source=dict(kind=3)), "data.source.kind")):
    with pytest.raises(experiment.ConfigError, match=rf"^{re.escape(field)}: "):
      data_config.resolve(cfg)
  with pytest.raises(experiment.ConfigError, match=r"^text_data\.scene_text: 'yes'"):
    data_config.resolve_text(dict(scene_text="yes"))
  with pytest.raises(experiment.ConfigError, match=r"^o\.warmup_steps: 2\.5: expected an int"):
    experiment.Optimizer.from_config(dict(warmup_steps=2.5), "o")
  c = experiment.to_json(_config())
  c["stages"]["s1"]["steps"] = "7"
  _fails(experiment.from_json(c), "config.stages.s1.steps", "expected a")
  with pytest.raises(experiment.ConfigError, match=r"^o\.group_lr_mult\.vison: unknown"):
    experiment.Optimizer.from_config(dict(group_lr_mult=dict(vison=2.0)), "o")


def test_unknown_and_missing_fields_are_named():
  c = _config()
  c.data.understanding.batchsize = 4
  _fails(c, "config.data.understanding.batchsize", "unknown field")
  c = _config()
  c.stages.s1.data = dict(source=dict(fields=dict(capton="txt")))
  _fails(c, "config.stages.s1.data.source.fields.capton", "unknown field")
  c = _config()
  c.text_data.seqlen = 4
  _fails(c, "config.text_data.seqlen", "unknown field")
  c = _config()
  c.demo = ml_collections.ConfigDict(dict(train_size=10))
  _fails(c, "config.demo.eval_size", "missing")


def test_derived_values_are_computed_not_configured():
  exp = experiment.resolve(_config())
  text, s1 = exp.stages
  # tasks: a text stage trains "text"; a multimodal one without tasks both vision tasks
  assert text.tasks == ("text",) and s1.tasks == ("understanding", "generation")
  # the code grid comes from image_size / vq_downsample (64 / 16 for the tiny model)
  assert exp.data.code_grid == (4, 4) == tuple(exp.model.tile_grid)
  # a task's records: its own directory, else data.pretokenized_dir
  assert s1.data.task_pretokenized_dir("understanding") == exp.data.pretokenized_dir
  d = dataclasses.replace(s1.data, understanding=dataclasses.replace(
      s1.data.understanding, pretokenized_dir="/sft"))
  assert d.task_pretokenized_dir("understanding") == "/sft"
  assert d.task_pretokenized_dir("generation") == exp.data.pretokenized_dir
  # group_lr_mult: every group, sorted (group, factor) pairs over the 1.0 default
  c = _config()
  c.stages.s1.optimizer.group_lr_mult = dict(vision=3)
  opt = experiment.resolve(c).stage("s1").optimizer
  assert opt.group_lr_mult == (("llm", 1.0), ("llm_attention", 1.0), ("vision", 3.0))
  assert isinstance(opt.group_lr_mult[2][1], float)


def test_data_fold_is_the_models():
  """data.fold is no data field: the pipeline folds with model.fold. A fold that experiment
  files and old config.json files write is accepted when it is the model's."""
  c = _config()
  assert "fold" not in c.data
  assert not hasattr(experiment.resolve(c).data, "fold")
  c.data.fold = tuple(models.tiny().fold)
  experiment.resolve(c)
  c.data.fold = (1, 2)
  _fails(c, "config.data.fold", "differs from model.fold")
  c = _config()
  c.stages.s1.data = dict(fold=(1, 1))
  _fails(c, "config.stages.s1.data.fold", "differs from model.fold")
  c = _config()
  c.data.vq_downsample = 8  # 64 px -> 8 x 8 codes, the tiny model has 4 x 4
  _fails(c, "config.stages.s1.data.image_size", "code grid")


def test_an_old_config_json_still_resolves(tmp_path):
  """config.json of an earlier version: data.fold written, fields added since absent."""
  exp = experiment.resolve(_config(), str(tmp_path))
  old = experiment.to_json(exp.config)
  old["data"]["fold"] = list(models.tiny().fold)
  for k in ("und_qa_turns", "und_type_weights", "und_object_keep", "gen_object_keep"):
    del old["data"][k]
  del old["model"]["image_first_code_weight"]
  for t in ("understanding", "generation"):
    del old["data"][t]["pretokenized_dir"]
  again = experiment.resolve(experiment.from_json(old))
  assert again.data == exp.data and again.stages == exp.stages


def test_changes_go_through_replace_and_are_checked():
  exp = experiment.resolve(_config())
  d = dataclasses.replace(exp.data, shuffle=False, num_epochs=1)
  assert (d.shuffle, d.num_epochs, exp.data.shuffle) == (False, 1, True)
  with pytest.raises(typed_config.ConfigError, match=r"^cfg_dropout: 2"):
    dataclasses.replace(exp.data, cfg_dropout=2)
  with pytest.raises(typed_config.ConfigError, match=r"^warmup_steps: -1"):
    dataclasses.replace(exp.stage("s1").optimizer, warmup_steps=-1)
  with pytest.raises(typed_config.ConfigError, match=r"^steps: 0"):
    dataclasses.replace(exp.stage("s1"), steps=0)
  with pytest.raises(typed_config.ConfigError, match=r"^und_object_keep\[0\]\[0\]: '1'"):
    dataclasses.replace(exp.data, und_object_keep=(("1", 0.5),))  # types are checked too
  cast = dataclasses.replace(exp.data, cfg_dropout=0, und_type_weights=[["color", 2]])
  assert type(cast.cfg_dropout) is float and cast.und_type_weights == (("color", 2.0),)
  with pytest.raises(experiment.ConfigError, match=r"config\.eval\.nope: unknown field"):
    exp.replace_eval(nope=1)


def test_data_configs_resolve_alone():
  """The pretokenize command line and the data tests resolve a data ConfigDict alone."""
  c = data_config.default_data_config()
  c.source.fields.captions = "txt"
  d = data_config.resolve(c)
  assert d.source.fields.captions == "txt" and d.source.fields.image is None
  assert data_config.resolve(d) is d
  with pytest.raises(experiment.ConfigError, match=r"^data\.max_tiles: 0: expected >= 1"):
    data_config.resolve(dict(max_tiles=0))
  assert data_config.resolve_text(dict(seq_len=64)).seq_len == 64
  with pytest.raises(experiment.ConfigError, match=r"^task: 'text' is not one of"):
    d.task("text")


def test_typed_config_casts_and_names_fields():
  @dataclasses.dataclass(frozen=True)
  class C:
    a: int
    b: float
    c: tuple[str, ...]
    d: int | None
  got = typed_config.from_dict(C, dict(a=2.0, b=1, c=["x", "y"], d=None), "cfg")
  assert got == C(a=2, b=1.0, c=("x", "y"), d=None)
  assert type(got.a) is int and type(got.b) is float
  for bad, field in ((dict(a=True, b=1, c=(), d=None), "cfg.a"),
                     (dict(a=1, b="1", c=(), d=None), "cfg.b"),
                     (dict(a=1, b=1, c=(3,), d=None), "cfg.c[0]"),
                     (dict(a=1, b=1, c=(), d=0.5), "cfg.d"),
                     (dict(a=1, b=1, c=()), "cfg.d"),
                     (dict(a=1, b=1, c=(), d=1, e=2), "cfg.e")):
    with pytest.raises(typed_config.ConfigError, match=rf"^{re.escape(field)}: "):
      typed_config.from_dict(C, bad, "cfg")
