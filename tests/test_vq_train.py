"""VQ training: the loss falls, checkpoints round-trip, resume is deterministic.

Compile time dominates on CPU: one small trainer (2 stages, 32 px, 16 codes, with the
discriminator and a temporal residual block) is built once and its step, init, encode and
decode are compiled once for the whole module.
"""

import json
import os

import jax
import numpy as np
import pytest

from synergen_jax.training import vq_checkpoint
from synergen_jax.training.vq_trainer import VQTrainer

import importlib.util

_SPEC = importlib.util.spec_from_file_location(
    "vq_demo", os.path.join(os.path.dirname(__file__), "..", "experiments", "vq_demo.py"))


STEPS, STOP = 8, 4
K = 16


def _tiny_config():
  demo = importlib.util.module_from_spec(_SPEC)
  _SPEC.loader.exec_module(demo)
  c = demo.get_config()
  c.model.update(dict(codebook_size=K, base_channels=8, channel_multiplier=(1, 2),
                      hidden_size=16, norm_groups=4, attn_resolutions=(1,),
                      num_attention_heads=2, num_res_blocks=1))
  c.data.update(dict(image_size=32, batch_size=8, eval_images=8, eval_batch_size=8))
  c.train.update(dict(steps=STEPS, warmup_steps=1, lr=1e-2, restart_every=2, restart_until=6,
                      log_every=1, checkpoint_every=STOP, eval_every=0))
  c.train.disc.update(dict(enabled=True, start_step=STOP, channels=8, num_layers=2, groups=4))
  return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """One uninterrupted run, and the same run preempted at step STOP and resumed."""
  trainer = VQTrainer(_tiny_config())  # 8 fake devices: the batch is split 8 ways
  full = str(tmp_path_factory.mktemp("full"))
  split = str(tmp_path_factory.mktemp("split"))
  metrics = trainer.train_and_evaluate(full)
  first = trainer.train_and_evaluate(split, stop_at=STOP)
  second = trainer.train_and_evaluate(split)
  return trainer, full, split, metrics, first, second


def _rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_loss_falls_and_metrics_logged(trained):
  _, full, _, metrics, _, _ = trained
  rows = [r for r in _rows(full) if "loss" in r]
  assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
  rec = [r["rec_loss"] for r in rows]
  assert np.mean(rec[-2:]) < 0.8 * np.mean(rec[:2]), rec
  assert rows[0]["restarted_codes"] == K  # step 0 initialises the codebook from data
  for key in ("batch_code_usage", "batch_perplexity", "psnr", "d_loss", "g_adv_loss"):
    assert np.isfinite(rows[-1][key])
  assert rows[-1]["d_loss"] > 0 and rows[2]["d_loss"] == 0  # the discriminator waits
  for key in ("psnr", "codebook_usage", "perplexity", "object_recovery"):
    assert key in metrics and np.isfinite(metrics[key])
  with open(os.path.join(full, "eval", "metrics.json")) as f:
    assert json.load(f)["vq/psnr"] == pytest.approx(metrics["psnr"])


def test_checkpoint_round_trip(trained):
  trainer, full, _, _, _, _ = trained
  tok, variables, step = vq_checkpoint.load_tokenizer(full)
  assert step == STEPS
  assert tok.config.codebook_size == K and tuple(tok.config.channel_multiplier) == (1, 2)
  # The restored variables reproduce the trained tokenizer's codes.
  restored = vq_checkpoint.restore(vq_checkpoint.make_manager(full), STEPS,
                                   *trainer.abstract_state())
  for a, b in zip(jax.tree_util.tree_leaves(variables),
                  jax.tree_util.tree_leaves(restored[vq_checkpoint.MODEL])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert int(restored[vq_checkpoint.TRAIN]["step"]) == STEPS
  # The loaded tokenizer (its own jitted encode) gives the trainer's evaluation encoder's
  # codes (already compiled for this batch shape).
  images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
  ours = np.asarray(tok.encode(variables, images))
  np.testing.assert_array_equal(
      ours, trainer.tok.batch_encoder(restored[vq_checkpoint.MODEL], trainer.mesh)(images))
  assert len(np.unique(ours)) > 1


def test_resume_is_deterministic(trained):
  _, full, split, metrics, first, second = trained
  assert first["steps_this_run"] == STOP and second["steps_this_run"] == STEPS - STOP
  a = {r["step"]: r["loss"] for r in _rows(full) if "loss" in r}
  b = {r["step"]: r["loss"] for r in _rows(split) if "loss" in r}
  assert sorted(b) == list(range(1, STEPS + 1))
  for s in range(1, STEPS + 1):
    assert a[s] == pytest.approx(b[s], rel=1e-5, abs=1e-6), s
  _, va, _ = vq_checkpoint.load_tokenizer(full)
  _, vb, _ = vq_checkpoint.load_tokenizer(split)
  for x, y in zip(jax.tree_util.tree_leaves(va), jax.tree_util.tree_leaves(vb)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
  assert second["psnr"] == pytest.approx(metrics["psnr"], abs=1e-3)


def test_imported_weights_checkpoint(tmp_path):
  from synergen_jax.model.vq import VQTokenizer, config as vq_config
  tok = VQTokenizer(vq_config.tiny_config())
  # Arbitrary values of the right structure (no init to compile): the round trip must
  # restore every leaf bit for bit.
  rng = np.random.default_rng(5)
  variables = jax.tree_util.tree_map(lambda a: rng.standard_normal(a.shape).astype(a.dtype),
                                     tok.abstract_variables())
  vq_checkpoint.write_imported(str(tmp_path), tok.config, variables)
  tok2, restored, step = vq_checkpoint.load_tokenizer(str(tmp_path))
  assert step == 0 and tok2.config == tok.config
  leaves, restored_leaves = (jax.tree_util.tree_leaves(t) for t in (variables, restored))
  assert len(leaves) == len(restored_leaves)
  for a, b in zip(leaves, restored_leaves):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_batch_must_split_over_devices():
  c = _tiny_config()
  c.data.batch_size = 12
  with pytest.raises(ValueError, match="batch_size 12 must be divisible by the 8 devices"):
    VQTrainer(c)
