"""Import -> params checkpoint -> restore -> logits; vision parts untouched; export back to HF."""

import dataclasses

import jax
import ml_collections
import numpy as np
import pytest
import transformers

from synergen_jax import model_init, param_checkpoint as params_io, sharding
from synergen_jax.configs import models
from synergen_jax.model.param_groups import group_of
from synergen_jax.weights import export_hf, hf_files, import_hf, import_llm, param_paths as model_params
from tests import test_weights_helpers as wh

pytestmark = pytest.mark.slow  # transformers' Llama and our import of it, compiled (~10 s)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  """A tiny Llama, imported through the checkpoint path of `import_hf`."""
  tmp = tmp_path_factory.mktemp("rt")
  model = wh.tiny_hf_model("llama", seed=3)
  hf_dir = wh.save_hf(model, str(tmp / "hf"))
  experiment = ml_collections.ConfigDict(dict(seed=0, model=models.tiny(),
                                              mesh=dict(shape=(2, 2, 2))))
  with pytest.raises(ValueError, match=r"model.vocab_size=128 but config.json vocab_size=300"):
    import_hf.model_config_for(experiment, hf_dir)
  config = import_hf.model_config_for(experiment, hf_dir, derive=True)
  experiment.model = dataclasses.asdict(config)
  summary = import_hf.import_to_checkpoint(hf_dir, experiment, str(tmp / "ckpt"))
  assert summary.family == "llama"
  mesh = sharding.make_mesh((2, 2, 2))
  target = model_init.with_shardings(*model_init.abstract_params(config, mesh))
  params = params_io.restore_params(str(tmp / "ckpt"), target)
  return dict(tmp=tmp, model=model, hf_dir=hf_dir, experiment=experiment, config=config,
              params=params, mesh=mesh)


def test_checkpoint_restores_to_transformers_logits(imported):
  c, params = imported["config"], imported["params"]
  batch = wh.padded_batch(c, seed=1)
  err = wh.max_valid_diff(wh.our_logits(c, params, batch), wh.hf_logits(imported["model"], batch),
                          batch)
  print(f"checkpoint path: max |logit diff| = {err:.2e}")
  assert err < 1e-4


def test_fresh_import_text_path_ignores_vision_parts(imported):
  c, params = imported["config"], imported["params"]
  block = params["decoder"]["layers"]["block"]["mmoe"]
  jax.tree.map(np.testing.assert_array_equal, block["text_ffn"], block["vision_ffn"])
  np.testing.assert_allclose(params["new_token_embed"][0],
                             np.asarray(params["text_embed"][:wh.VOCAB]).mean(0), rtol=1e-6)
  # All-text input: every vision-group parameter can change, the text logits do not.
  flat = model_params.flatten(params)
  moved = {p: (v + 1.0 if group_of(p) == "vision" else v) for p, v in flat.items()}
  batch = wh.padded_batch(c, seed=2)
  base = wh.our_logits(c, params, batch)[..., :c.vocab_size]
  after = wh.our_logits(c, model_params.unflatten(moved), batch)[..., :c.vocab_size]
  np.testing.assert_array_equal(base, after)
  # ... and equal the base LLM alone (the same weights without vision experts): exactly
  # with the reference MMoE (the text expert is the same matmul), to float rounding with
  # the sorted one (ragged_dot instead of a dense matmul).
  plain = dataclasses.replace(c, vision_experts=False)
  p_plain = dict(params, decoder=jax.tree.map(lambda x: x, params["decoder"]))
  del p_plain["decoder"]["layers"]["block"]["mmoe"]["vision_ffn"]
  llm = wh.our_logits(plain, p_plain, batch)[..., :c.vocab_size]
  ref = dataclasses.replace(c, mmoe_impl="reference")
  ref_logits = wh.our_logits(ref, params, batch)[..., :c.vocab_size]
  valid = batch["segment_ids"] > 0
  np.testing.assert_array_equal(ref_logits[valid], llm[valid])
  print("sorted MMoE vs plain LLM: max diff", np.max(np.abs(base - llm)[valid]))
  np.testing.assert_allclose(base[valid], llm[valid], atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", ["llama", "internlm2"])
def test_export_round_trip(imported, family):
  c, tmp = imported["config"], imported["tmp"]
  out = str(tmp / f"export_{family}")
  files = export_hf.export_checkpoint(str(tmp / "ckpt"), imported["experiment"], out,
                                      like=imported["hf_dir"], family=family,
                                      max_shard_bytes=40_000)
  assert len(files) > 1  # sharded, with an index
  assert hf_files.read_config(out)["vocab_size"] == wh.VOCAB
  # Re-importing gives the same parameters (LLM part and the vision copy of the FFN).
  p2, _ = import_llm.import_llm_params(out, c, imported["mesh"])
  jax.tree.map(np.testing.assert_array_equal, p2["decoder"], imported["params"]["decoder"])
  np.testing.assert_array_equal(p2["text_embed"], imported["params"]["text_embed"])
  if family == "llama":  # loads in transformers and gives the original model's logits
    reloaded = transformers.LlamaForCausalLM.from_pretrained(out).eval()
    batch = wh.padded_batch(c, seed=3)
    theirs = wh.hf_logits(reloaded, batch)
    err = wh.max_valid_diff(theirs, wh.hf_logits(imported["model"], batch), batch)
    print(f"export -> transformers: max |logit diff| = {err:.2e}")
    assert err < 1e-5


def test_stage1_training_keeps_text_logits_bit_identical(imported):
  """Two stage-1 steps (vision group only) move the vision parts, never the text path."""
  from synergen_jax.model.synthetic import synthetic_task_batch
  from synergen_jax import experiment
  from synergen_jax.state import train_state as state_lib
  from synergen_jax.training import step as step_lib
  c, mesh, params = imported["config"], imported["mesh"], imported["params"]
  opt = experiment.Optimizer.from_config(dict(warmup_steps=0, lr=1e-2))
  spec = state_lib.StateSpec(c, mesh, ("vision",), opt, total_steps=2)
  tasks = ("generation",)  # trains every vision part (fold, vision FFNs, head, new tokens)
  train = step_lib.make_train_step(spec, tasks)
  rng = np.random.default_rng(0)
  with sharding.mesh_context(mesh):
    state = spec.state_from_params(params)
    for _ in range(2):
      state, metrics = train(state, {t: synthetic_task_batch(c, rng, 4, 32, t) for t in tasks})
  assert np.isfinite(float(metrics["grad_norm"])) and float(metrics["grad_norm"]) > 0
  trained = state.params
  assert not np.array_equal(trained["fold"]["fc1"]["kernel"], params["fold"]["fc1"]["kernel"])
  vision = trained["decoder"]["layers"]["block"]["mmoe"]["vision_ffn"]["gate"]
  assert not np.array_equal(vision, params["decoder"]["layers"]["block"]["mmoe"]["text_ffn"]["gate"])
  batch = wh.padded_batch(c, seed=4)
  np.testing.assert_array_equal(wh.our_logits(c, trained, batch)[..., :c.vocab_size],
                                wh.our_logits(c, params, batch)[..., :c.vocab_size])
