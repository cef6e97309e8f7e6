"""VQ training: the loss falls, checkpoints round-trip, resume is deterministic.

Compile time dominates on CPU: one small trainer (2 stages, 32 px, 16 codes, with the
discriminator and a temporal residual block) is built once and its step, init, encode and
decode are compiled once for the whole module.
"""

import dataclasses
import glob
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synergen_jax import experiment
from synergen_jax import loop
from synergen_jax.vq_training import config as vq_config
from synergen_jax.vq_training import vq_checkpoint
from synergen_jax.vq_training.trainer import VQTrainer
from tests import model_utils as mu

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


LOOP_RUNS = []  # (signal name, first step, last step, hook names) of each `loop.run`


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """One uninterrupted run, and the same run preempted at step STOP and resumed."""
  trainer = VQTrainer(_tiny_config())  # 8 fake devices: the batch is split 8 ways
  full = str(tmp_path_factory.mktemp("full"))
  split = str(tmp_path_factory.mktemp("split"))
  run = loop.run

  def spy(state, step, last, next_batch, train_step, hooks, timers, signal_name):
    LOOP_RUNS.append((signal_name, step, last, [h.name for h in hooks]))
    return run(state, step, last, next_batch, train_step, hooks, timers, signal_name)

  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(loop, "run", spy)
    metrics = trainer.train_and_evaluate(full)
    first = trainer.train_and_evaluate(split, stop_at=STOP)
    second = trainer.train_and_evaluate(split)
  return trainer, full, split, metrics, first, second


@pytest.mark.slow
def test_trainer_runs_the_shared_loop(trained):
  """The VQ trainer's loop is `synergen_jax.loop`'s, with its hooks in its order."""
  hooks = ["log", "checkpoint", "preempt", "evaluate"]
  assert LOOP_RUNS == [("vq", 0, STEPS, hooks), ("vq", 0, STOP, hooks),
                       ("vq", STOP, STEPS, hooks)]


def _rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.mark.slow
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
  assert rows[2]["g_adv_loss"] == 0 and rows[-1]["g_adv_loss"] != 0  # (skipped by a cond)
  for key in ("psnr", "codebook_usage", "perplexity", "object_recovery"):
    assert key in metrics and np.isfinite(metrics[key])
  with open(os.path.join(full, "eval", "metrics.json")) as f:
    assert json.load(f)["vq/psnr"] == pytest.approx(metrics["psnr"])


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_discriminator_untouched_before_start(trained):
  """Before disc.start_step the discriminator is skipped: its parameters stay at init."""
  trainer, _, split, _, _, _ = trained
  restored = vq_checkpoint.restore(vq_checkpoint.make_manager(split), STOP,
                                   *trainer.abstract_state())
  with jax.set_mesh(trainer.mesh):
    _, fresh = trainer.init()
  for a, b in zip(jax.tree_util.tree_leaves(fresh["disc_params"]),
                  jax.tree_util.tree_leaves(restored[vq_checkpoint.TRAIN]["disc_params"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  later = vq_checkpoint.restore(vq_checkpoint.make_manager(split), STEPS,
                                *trainer.abstract_state())[vq_checkpoint.TRAIN]["disc_params"]
  assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(
      jax.tree_util.tree_leaves(fresh["disc_params"]), jax.tree_util.tree_leaves(later)))


def test_imported_weights_checkpoint(tmp_path):
  # Arbitrary values of the right structure (no init to compile): the round trip must
  # restore every leaf bit for bit.
  tok, variables = mu.write_random_vq(str(tmp_path), seed=5)
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


@pytest.mark.parametrize("field, value, message", [
    ("foreground_weight", -1.0, "config.train.foreground_weight: -1.0: expected >= 0"),
    ("gradient_weight", -0.5, "config.train.gradient_weight"),
    ("edge_weight", -2.0, "config.train.edge_weight"),
    ("codebook_ema_decay", 1.0, r"config.train.codebook_ema_decay: 1.0: expected in \[0, 1\)"),
    ("codebook_ema_epsilon", 0.0, "config.train.codebook_ema_epsilon"),
    ("restart_every", 0, "config.train.restart_every"),
    ("ema_decay", 0.9, "config.train.ema_decay: unknown field"),
])
def test_bad_train_config_rejected(field, value, message):
  c = _tiny_config()
  c.train[field] = value
  with pytest.raises(ValueError, match=message):
    VQTrainer(c)


def test_optional_train_fields_default_to_emu3():
  """An experiment written before the optional fields existed trains as Emu3 does."""
  c = _tiny_config()
  for name in ("foreground_weight", "codebook_ema_decay", "codebook_ema_epsilon",
               "gradient_weight", "edge_weight"):
    if name in c.train:
      del c.train[name]
  del c.data.cell, c.data.max_objects
  exp = vq_config.resolve(c)
  assert (exp.train.foreground_weight, exp.train.gradient_weight, exp.train.edge_weight,
          exp.train.codebook_ema_decay) == (0.0, 0.0, 0.0, 0.0)
  assert exp.train.codebook_ema_epsilon == 1e-5
  assert not exp.train.weighs_pixels
  assert exp.train.codebook_loss_weight == exp.train.codebook_weight == 1.0
  assert (exp.data.cell, exp.data.max_objects) == (0, 4)


VQ_FILES = [f for f in sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..",
                                                     "experiments", "*.py")))
            if "stage_order" not in experiment.load_sibling(
                f, os.path.splitext(os.path.basename(f))[0]).get_config()]


@pytest.mark.parametrize("path", VQ_FILES, ids=[os.path.basename(f) for f in VQ_FILES])
def test_vq_experiment_files_resolve_typed_and_frozen(path):
  config = experiment.load_sibling(path, os.path.splitext(os.path.basename(path))[0]).get_config()
  exp = vq_config.resolve(config)
  assert vq_config.resolve(exp) is exp
  for section, cls in ((exp.data, vq_config.Data), (exp.train, vq_config.Train),
                       (exp.train.disc, vq_config.Disc)):
    assert isinstance(section, cls)
    for f in dataclasses.fields(cls):  # every value has its field's type
      v = getattr(section, f.name)
      want = {"int": int, "float": float, "bool": bool}.get(getattr(f.type, "__name__", ""))
      if want is not None:
        assert type(v) is want, (f.name, v)
  assert exp.train.steps == config.train.steps and exp.data.image_size == config.data.image_size
  with pytest.raises(dataclasses.FrozenInstanceError):
    exp.train.steps = 1
  shorter = dataclasses.replace(exp, train=dataclasses.replace(exp.train, steps=5))
  assert shorter.train.steps == 5 and exp.train.steps == config.train.steps
  with pytest.raises(experiment.ConfigError, match="steps: 0: expected >= 1"):
    dataclasses.replace(exp.train, steps=0)  # a changed copy is checked again
  assert exp.config.to_dict() == config.to_dict()  # what config.json and checkpoints hold


def _set(c, path, value):
  *parents, name = path.split(".")
  node = c
  for p in parents:
    node = node[p]
  if name in node:
    del node[name]  # (a ConfigDict keeps a field's type: a new field takes any)
  if value is not _DELETE:
    node[name] = value


_DELETE = object()


@pytest.mark.parametrize("path, value, message", [
    ("data.batchsize", 2, r"config.data.batchsize: unknown field"),
    ("data.eval_images", _DELETE, r"config.data.eval_images: missing"),
    ("data.batch_size", 0, r"config.data.batch_size: 0: expected >= 1"),
    ("data.text_prob", 1.5, r"config.data.text_prob: 1.5: expected in \[0, 1\]"),
    ("data.image_size", 32.5, r"config.data.image_size: 32.5: expected an int"),
    ("data.crop", 12, r"config.data.crop: 12: expected 0 or a multiple of 8"),
    ("train.steps", "10", r"config.train.steps: '10': expected an int"),
    ("train.disc.enabled", 1, r"config.train.disc.enabled: 1: expected a bool"),
    ("train.disc.start_step", _DELETE, r"config.train.disc.start_step: missing"),
    ("train.disc", _DELETE, r"config.train.disc: missing"),
    ("train.log_every", 0, r"config.train.log_every: 0: expected >= 1"),
    ("train.eval_every", -1, r"config.train.eval_every: -1: expected >= 0"),
    ("model.hidden_size", 24, r"config.model: VQ config field `hidden_size`"),
    ("sead", 0, r"config.sead: unknown field"),
    ("seed", _DELETE, r"config.seed: missing"),
])
def test_bad_config_names_the_field(path, value, message):
  c = _tiny_config()
  _set(c, path, value)
  with pytest.raises(experiment.ConfigError, match=message):
    vq_config.resolve(c)


def test_ema_codebook_update():
  from synergen_jax.vq_training.losses import ema_codebook_update
  rng = np.random.default_rng(0)
  count = rng.uniform(0, 2, 4).astype(np.float32)
  total = rng.normal(size=(4, 3)).astype(np.float32)
  codes = np.array([0, 0, 2, 3, 3, 3])
  latents = rng.normal(size=(6, 3)).astype(np.float32)
  decay, eps = 0.9, 1e-3
  new_count, new_sum, codebook = jax.jit(ema_codebook_update, static_argnums=(4, 5))(
      count, total, codes, latents, decay, eps)
  want_count = decay * count + (1 - decay) * np.bincount(codes, minlength=4)
  want_sum = decay * total + (1 - decay) * np.stack(
      [latents[codes == i].sum(0) for i in range(4)])
  n = want_count.sum()
  want = want_sum / ((want_count + eps) / (n + 4 * eps) * n)[:, None]
  np.testing.assert_allclose(np.asarray(new_count), want_count, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(new_sum), want_sum, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(codebook), want, rtol=1e-5, atol=1e-6)


def test_foreground_mask_and_weighted_loss():
  from data_pipelines.scenes import palette as pal
  from data_pipelines.scenes.render import render_scene
  from synergen_jax.model.vq.tokenizer import images_to_float
  from synergen_jax.vq_training.losses import foreground_mask, reconstruction_loss
  pairs = [render_scene(i, 32, "validation", text_prob=0.0) for i in range(3)]
  x = images_to_float(np.stack([p[0] for p in pairs]))
  exact, dilated = (np.asarray(foreground_mask(x, dilate=d)) for d in (0, 1))
  for i, (_, scene) in enumerate(pairs):
    truth = np.zeros((32, 32), bool)
    for obj in scene["objects"]:
      truth |= pal.shape_mask(obj["shape"], obj["box"], 32, 32)
    np.testing.assert_array_equal(exact[i], truth)
  assert np.all(dilated >= exact) and dilated.sum() > exact.sum()
  recon = x + 0.1 * jax.random.normal(jax.random.key(0), x.shape)
  plain = reconstruction_loss(recon, x, 1.0, 4.0)
  uniform = reconstruction_loss(recon, x, 1.0, 4.0, pixel_weight=np.full(x.shape[:3], 3.0))
  assert float(uniform) == pytest.approx(float(plain), rel=1e-5)
  err = np.asarray(jnp.abs(recon - x) + 4.0 * (recon - x) ** 2).mean(-1)  # [batch, H, W]
  w = 1.0 + 2.0 * exact
  weighted = reconstruction_loss(recon, x, 1.0, 4.0, pixel_weight=w)
  assert float(weighted) == pytest.approx(float((w * err).sum() / w.sum()), rel=1e-5)


def test_gradient_loss():
  from synergen_jax.vq_training.losses import gradient_loss
  rng = np.random.default_rng(1)
  target = rng.uniform(-1, 1, (2, 5, 6, 3)).astype(np.float32)
  recon = rng.uniform(-1, 1, (2, 5, 6, 3)).astype(np.float32)
  def diffs(x):
    return np.diff(x, axis=2), np.diff(x, axis=1)  # along width, along height
  (rx, ry), (tx, ty) = diffs(recon), diffs(target)
  want = 0.5 * (np.abs(rx - tx).mean() + np.abs(ry - ty).mean())
  assert float(gradient_loss(recon, target)) == pytest.approx(want, rel=1e-5)
  # Blind to a constant offset (only edges count), not to a blurred edge.
  assert float(gradient_loss(target + 0.3, target)) == pytest.approx(0.0, abs=1e-6)
  step = np.zeros((1, 4, 4, 1), np.float32)
  step[:, :, 2:] = 1.0
  blurred = step.copy()
  blurred[:, :, 1] = 0.5
  blurred[:, :, 2] = 0.5
  # Row-wise differences (0, 1, 0) vs (.5, 0, .5): 2 / 3 per row; no vertical change.
  assert float(gradient_loss(blurred, step)) == pytest.approx(0.5 * (2.0 / 3.0), rel=1e-6)


def test_edge_mask():
  from data_pipelines.scenes import palette as pal
  from data_pipelines.scenes.render import render_scene
  from scipy import ndimage
  from synergen_jax.model.vq.tokenizer import images_to_float
  from synergen_jax.vq_training.losses import edge_mask
  # A 2 x 2 block on a plain background: the band is the 4 x 4 box around it.
  x = np.full((1, 6, 7, 3), -0.8, np.float32)
  x[0, 2:4, 3:5] = 0.6
  want = np.zeros((6, 7), np.float32)
  want[1:5, 2:6] = 1.0
  np.testing.assert_array_equal(np.asarray(edge_mask(x))[0], want)
  assert float(np.asarray(edge_mask(np.full((1, 4, 4, 3), 0.3, np.float32))).sum()) == 0.0
  # On rendered scenes without text: the pixels whose 3 x 3 neighbourhood mixes object
  # and background, i.e. the objects dilated minus the objects eroded.
  pairs = [render_scene(i, 32, "validation", text_prob=0.0) for i in range(3)]
  x = images_to_float(np.stack([p[0] for p in pairs]))
  got = np.asarray(edge_mask(x))
  square = np.ones((3, 3), bool)
  for i, (_, scene) in enumerate(pairs):
    edges = np.zeros((32, 32), bool)
    for obj in scene["objects"]:  # objects are apart, so their bands add up
      m = pal.shape_mask(obj["shape"], obj["box"], 32, 32)
      edges |= ndimage.binary_dilation(m, square) & ~ndimage.binary_erosion(
          m, square, border_value=1)
    np.testing.assert_array_equal(got[i], edges.astype(np.float32))


def test_crops_hold_an_object_or_the_text_aligned_to_the_cell():
  """`data.crop`: each training image is a crop x crop window of the step's own scene,
  its origin a multiple of the cell, holding the centre of one of its objects (or of its
  text); the same (seed, step) gives the same windows."""
  from data_pipelines.scenes.render import render_scene
  from synergen_jax.vq_training import data as vq_data
  full = vq_data.train_batch(3, 6, 64, seed=1, cell=16, max_objects=3)
  crops = vq_data.train_batch(3, 6, 64, seed=1, cell=16, max_objects=3, crop=32)
  assert crops.shape == (6, 32, 32, 3) and crops.dtype == np.uint8
  np.testing.assert_array_equal(crops, vq_data.train_batch(3, 6, 64, seed=1, cell=16,
                                                           max_objects=3, crop=32))
  first = 1 * 10**8 + 3 * 6
  for i in range(6):
    image, scene = render_scene(first + i, 64, "train", 0.3, 16, 3)
    np.testing.assert_array_equal(image, full[i])
    windows = [(oy, ox) for oy in range(0, 33, 16) for ox in range(0, 33, 16)
               if np.array_equal(image[oy:oy + 32, ox:ox + 32], crops[i])]
    assert windows, i  # an aligned window of the image
    boxes = [o["box"] for o in scene["objects"]] + (
        [scene["text_box"]] if scene.get("text_box") else [])
    assert any(oy <= (b[1] + b[3]) / 2 < oy + 32 and ox <= (b[0] + b[2]) / 2 < ox + 32
               for oy, ox in windows for b in boxes), i


def test_the_demo_trains_its_vq_on_crops_of_its_own_world(tmp_path):
  """The demo job's VQ experiment (demo_phases.Job.vq_config): the demo's scene world
  (cell, objects), steps and crop reach the VQ config, which resolves."""
  from synergen_jax import demo_phases
  demo_file = os.path.join(os.path.dirname(__file__), "..", "experiments", "demo.py")
  config = experiment.load_sibling(demo_file, "demo").get_config()
  job = demo_phases.Job(experiment.resolve(config, str(tmp_path)), str(tmp_path), demo_file)
  exp = vq_config.resolve(job.vq_config)
  d = job.demo
  assert (exp.data.cell, exp.data.max_objects, exp.data.crop) == (d.cell, d.max_objects,
                                                                   d.vq_crop)
  assert d.vq_crop > 0 and exp.train.steps == d.vq_steps
  assert exp.train.restart_until <= d.vq_steps - 25
