"""Trainer configs fail early and name the field; optimizer pieces; stage memory."""

import dataclasses
import os
import signal
import sys

import jax
import numpy as np
import pytest

from synergen_jax.configs import models
from synergen_jax.model import ModelConfig
from synergen_jax import experiment
from synergen_jax.state import freezing
from synergen_jax.state import optimizer
from synergen_jax import preemption
from synergen_jax.state import train_state as state_lib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from experiments import tiny  # noqa: E402


def _config(tmp_path):
  cfg = experiment.resolve_workdir(tiny.get_config(), str(tmp_path))
  return cfg


def _fails(cfg, *fragments, check_files=False, devices=4):
  with pytest.raises(ValueError) as e:
    experiment.validate(experiment.resolve(cfg), devices, check_files=check_files)
  for f in fragments:
    assert f in str(e.value), str(e.value)


def test_valid_config_passes_schema(tmp_path):
  exp = experiment.resolve(_config(tmp_path))
  experiment.validate(exp, 4, check_files=False)
  assert isinstance(exp.model, ModelConfig)


def test_unknown_fields_are_named(tmp_path):
  cfg = _config(tmp_path)
  cfg.learning_rate = 1.0
  _fails(cfg, "config.learning_rate", "unknown field")
  cfg = _config(tmp_path)
  cfg.stages.stage1.optimizer.lrr = 1e-4
  _fails(cfg, "config.stages.stage1.optimizer.lrr", "unknown field")
  cfg = _config(tmp_path)
  cfg.stages.stage1.data.understanding = {"batchsize": 4}
  _fails(cfg, "config.stages.stage1.data.understanding.batchsize")
  cfg = _config(tmp_path)
  cfg.model.num_experts = 2
  _fails(cfg, "config.model", "num_experts")


def test_mesh_must_divide_devices(tmp_path):
  cfg = _config(tmp_path)
  cfg.mesh.shape = (3, -1, 1)
  _fails(cfg, "config.mesh.shape", "4 devices")
  cfg.mesh.shape = (2, 1, 1)
  _fails(cfg, "config.mesh.shape")


def test_fold_must_divide_grid(tmp_path):
  cfg = _config(tmp_path)
  cfg.model.fold = (3, 2)
  _fails(cfg, "model.fold")
  cfg = _config(tmp_path)
  cfg.data.fold = (1, 2)  # not a data field: the model's fold, checked where written
  _fails(cfg, "config.data.fold", "differs from model.fold")


def test_batch_must_split_over_devices_and_microbatches(tmp_path):
  cfg = _config(tmp_path)
  cfg.data.understanding.batch_size = 6
  _fails(cfg, "config.stages.stage1.data.understanding.batch_size", "divisible")
  cfg = _config(tmp_path)
  cfg.data.generation.batch_size = 8
  cfg.data.understanding.batch_size = 8
  cfg.stages.stage1.grad_accum_steps = 4
  _fails(cfg, "grad_accum_steps")


def test_batch_must_split_into_input_streams(tmp_path):
  cfg = _config(tmp_path)
  cfg.train.input_streams = 3
  _fails(cfg, "config.stages.text.text_data.batch_size", "train.input_streams = 3",
         devices=1)
  cfg.train.input_streams = -1
  _fails(cfg, "config.train.input_streams", "expected >= 0", devices=1)
  cfg.train.input_streams = 4
  experiment.validate(experiment.resolve(cfg), 1, check_files=False)


def test_missing_dataset_is_named(tmp_path):
  cfg = _config(tmp_path)  # nothing built under tmp_path
  _fails(cfg, "config.data.pretokenized_dir", "missing dataset", check_files=True, devices=1)
  cfg.stage_order = ("stage1",)
  _fails(cfg, "config.stages.stage1.data.pretokenized_dir", "missing dataset",
         check_files=True, devices=1)


def test_train_prepare_fails_before_compiling(tmp_path):
  from synergen_jax.training import run as run_lib
  cfg = tiny.get_config()
  cfg.stages.stage1.optimizer.schedule = "linear"
  with pytest.raises(ValueError, match="stages.stage1.optimizer.schedule"):
    run_lib.prepare(cfg, str(tmp_path))


def test_decay_mask_skips_norms_biases_embeddings():
  params = {"text_embed": 0, "decoder": {"final_norm": {"scale": 0},
                                         "layers": {"q": {"kernel": 0}}},
            "fold": {"fc1": {"bias": 0, "kernel": 0}, "code_embed": 0,
                     "position_embed": 0}, "lm_head": 0}
  mask = optimizer.decay_mask(params)
  assert mask["decoder"]["layers"]["q"]["kernel"] and mask["fold"]["fc1"]["kernel"]
  assert mask["lm_head"]
  assert not (mask["text_embed"] or mask["decoder"]["final_norm"]["scale"]
              or mask["fold"]["fc1"]["bias"] or mask["fold"]["code_embed"]
              or mask["fold"]["position_embed"])
  assert all(jax.tree.leaves(optimizer.decay_mask(params, decay_everything=True)))


def test_schedules():
  opt = experiment.Optimizer.from_config(dict(lr=1.0, warmup_steps=10, schedule="constant"))
  s = optimizer.schedule(opt, 100)
  np.testing.assert_allclose([s(0), s(5), s(10), s(99)], [0.0, 0.5, 1.0, 1.0], rtol=1e-6)
  opt = dataclasses.replace(opt, schedule="cosine", end_lr_frac=0.1)
  s = optimizer.schedule(opt, 110)
  np.testing.assert_allclose([s(10), s(60), s(110)], [1.0, 0.55, 0.1], rtol=1e-5)


def test_group_lr_mult_scales_each_groups_updates(tmp_path):
  params = {"fold": {"code_embed": np.ones(3, np.float32)},  # vision
            "decoder": {"attention": {"query": np.ones(2, np.float32)}},  # llm_attention
            "text_embed": np.ones(2, np.float32)}  # llm
  grads = jax.tree.map(lambda x: np.linspace(-1, 1, x.size).astype(np.float32), params)
  opt = experiment.Optimizer.from_config(
      dict(lr=0.1, warmup_steps=0, schedule="constant", weight_decay=0.01))

  def first_update(opt):
    tx = optimizer.make_optimizer(opt, 10, params)
    state = tx.init(params)
    return tx.update(grads, state, params)[0], state

  base, base_state = first_update(opt)
  scaled, scaled_state = first_update(experiment.Optimizer.from_config(
      dict(lr=0.1, warmup_steps=0, schedule="constant", weight_decay=0.01,
           group_lr_mult=dict(vision=3.0, llm=0.0))))
  np.testing.assert_allclose(scaled["fold"]["code_embed"], 3 * base["fold"]["code_embed"],
                             rtol=1e-6)
  np.testing.assert_array_equal(scaled["decoder"]["attention"]["query"],
                                base["decoder"]["attention"]["query"])
  np.testing.assert_array_equal(scaled["text_embed"], 0 * base["text_embed"])
  assert np.abs(base["text_embed"]).sum() > 0
  # All factors 1 (the default) is plain AdamW: the same optimizer state as before the field.
  plain = optimizer.make_optimizer(experiment.Optimizer.from_config(), 10, params)
  assert jax.tree.structure(plain.init(params)) == jax.tree.structure(base_state)
  assert jax.tree.structure(scaled_state) != jax.tree.structure(base_state)
  cfg = _config(tmp_path)
  cfg.stages.stage1.optimizer.group_lr_mult.vision = -1.0
  _fails(cfg, "config.stages.stage1.optimizer.group_lr_mult.vision", "expected >= 0")
  cfg = _config(tmp_path)
  cfg.stages.stage1.optimizer.group_lr_mult.visoin = 2.0
  _fails(cfg, "config.stages.stage1.optimizer.group_lr_mult.visoin", "unknown field")


def test_frozen_groups_get_no_optimizer_state():
  config = ModelConfig.from_config_dict(models.tiny())
  opt = experiment.Optimizer.from_config()
  by_stage = {name: state_lib.opt_state_bytes_for(config, groups, opt) for name, groups in
              [("stage1", ("vision",)), ("stage2", ("vision", "llm_attention")),
               ("sft", ("vision", "llm_attention", "llm"))]}
  # Adam: two f32 moments per trainable element (+ step counters).
  for m in by_stage.values():
    assert abs(m["opt_state_bytes"] - 8 * m["trainable_params"]) <= 64
  assert (by_stage["stage1"]["opt_state_bytes"] < by_stage["stage2"]["opt_state_bytes"]
          < by_stage["sft"]["opt_state_bytes"])
  assert by_stage["sft"]["frozen_params"] == 0


def test_split_merge_roundtrip_and_ffn_copy():
  params = {"decoder": {"mmoe": {"text_ffn": {"up": np.ones(2)},
                                 "vision_ffn": {"up": np.zeros(2)}},
                        "attention": {"query": np.ones(3)}},
            "text_embed": np.ones(4), "fold": {"code_embed": np.ones(5)}}
  trainable, frozen = freezing.split(params, ("vision",))
  assert set(trainable) == {"decoder", "fold"} and "attention" in frozen["decoder"]
  merged = freezing.merge(trainable, frozen)
  assert jax.tree.structure(merged) == jax.tree.structure(params)
  copied = freezing.copy_text_ffn_to_vision(params)
  np.testing.assert_array_equal(copied["decoder"]["mmoe"]["vision_ffn"]["up"], np.ones(2))


def test_sigterm_sets_the_stop_flag():
  with preemption.PreemptionWatcher() as w:
    assert not w.should_stop(None, 0)
    os.kill(os.getpid(), signal.SIGTERM)
    assert w.should_stop(None, 0)


@pytest.mark.parametrize("name,devices", [
    ("demo", 1), ("tiny", 1), ("synergen_vl_2_4b", 256), ("synergen_vl_2_4b_s1", 256),
    ("synergen_vl_2_4b_s2", 256), ("synergen_vl_2_4b_sft", 256), ("qwen2_0_5b_progressive", 64),
    ("qwen2_0_5b_full", 64), ("qwen2_0_5b_fold", 64), ("qwen2_0_5b_nofold", 64)])
def test_experiment_files_validate(name, devices):
  here = os.path.join(os.path.dirname(__file__), "..", "experiments", "x.py")
  cfg = experiment.load_sibling(here, name).get_config()
  cfg = experiment.resolve_workdir(cfg, "/nonexistent")
  exp = experiment.resolve(cfg)
  experiment.validate(exp, devices, check_files=False)
  model = exp.model
  assert exp.stage_order == tuple(cfg.stage_order)
  for st in exp.stages:
    assert st.trainable and st.steps > 0
    if name.startswith("synergen_vl_2_4b"):  # Table 8
      assert st.optimizer.b2 == 0.95 and st.optimizer.warmup_steps == 200
      assert model.dtype == "bfloat16" and model.param_dtype == "float32"


def test_stage_head_budget_must_not_be_negative(tmp_path):
  cfg = _config(tmp_path)
  cfg.stages.stage1.max_gen_patches = -1
  _fails(cfg, "config.stages.stage1.max_gen_patches", "expected >= 0")
  cfg.stages.stage1.max_gen_patches = 2  # below the model's buffer: allowed (a stage's own)
  assert experiment.resolve(cfg).stages[1].max_gen_patches == 2
