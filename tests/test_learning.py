"""The model learns to look: a task whose answer is only in the image.

A tiny SynerGenVL (tests' tiny config: 4 x 4 codes folded 2 x 2 -> 4 image tokens) is
trained with the real train step on understanding examples built by the data pipeline's
own sequence builder and the real SentencePiece tokenizer. Each image is a dark
background (code 0) with one object: a 2 x 2 block of cells, placed anywhere, whose codes
name its colour (mean-colour codes, several codes per colour). The question never
changes ("What color is the object?"), so the answer can only come from the image:

- after training, the greedy answer is right for >= 90% of held-out images;
- asked about another image (of another colour), the answers follow that image's colour
  and match the original answer on none of the questions, where a model that ignores the
  image would keep its answers.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines.pipeline import sequences
from synergen_jax import sharding
from synergen_jax.configs import models
from synergen_jax.inference import session
from synergen_jax.model import ModelConfig
from synergen_jax.tokenizer import Tokenizer
from synergen_jax import experiment
from synergen_jax.state import train_state as state_lib
from synergen_jax.training import step as step_lib

pytestmark = pytest.mark.slow  # trains a model (~25 s)

COLORS = ("red", "green", "blue", "yellow")
CODES_PER_COLOR = 3  # codes 1 + 3c .. 3 + 3c all mean colour c (a VQ has many per colour)
QUESTION = "What color is the object?"
FOLD = (2, 2)
SEQ_LEN = 48
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _scene(rng) -> tuple[np.ndarray, int]:
  """codes [1, 4, 4] (one tile) and the object's colour index."""
  color = int(rng.integers(len(COLORS)))
  grid = np.zeros((4, 4), np.int32)
  r, c = rng.integers(0, 3, size=2)
  grid[r:r + 2, c:c + 2] = 1 + CODES_PER_COLOR * color + rng.integers(CODES_PER_COLOR,
                                                                      size=(2, 2))
  return grid[None], color


def _example(tok, codes, color=None) -> dict:
  return sequences.build_understanding(tok, codes, QUESTION,
                                       None if color is None else COLORS[color], FOLD)


def _batch(tok, examples, with_targets=True) -> dict:
  """One example per row, padded to SEQ_LEN."""
  return session.pad_prompts(examples, len(examples), tok.pad_id, FOLD[0] * FOLD[1], SEQ_LEN,
                             with_targets=with_targets)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  corpus = [QUESTION] + [f"The object is {c}." for c in COLORS] * 4 + list(COLORS)
  tok = Tokenizer.train(corpus, tmp_path_factory.mktemp("tok") / "t.model", vocab_size=320)
  config = ModelConfig.from_config_dict(models.tiny())
  config = dataclasses.replace(config, vocab_size=tok.text_vocab_size)
  opt = experiment.Optimizer.from_config(
      dict(lr=3e-3, warmup_steps=10, schedule="constant", weight_decay=0.0))
  mesh = sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1])
  spec = state_lib.StateSpec(config, mesh, ("vision", "llm_attention", "llm"), opt, 1000,
                             FAST_COMPILE)
  state = spec.state_from_params(spec.init_params(0))
  train_step = step_lib.make_train_step(spec, ("understanding",), 1, FAST_COMPILE)
  rng = np.random.default_rng(0)
  losses = []
  with sharding.mesh_context(mesh):
    for _ in range(100):
      scenes = [_scene(rng) for _ in range(32)]
      batch = _batch(tok, [_example(tok, codes, color) for codes, color in scenes])
      state, metrics = train_step(state, {"understanding": batch})
      losses.append(float(metrics["text_loss"]))
  return tok, spec, state.params, mesh, losses


def _greedy_first_answer_token(spec, params, mesh, batch, lengths) -> np.ndarray:
  """argmax of the next token after each prompt (the first answer token)."""
  @jax.jit
  def logits_at(params, batch, last):
    hidden = spec.model.apply({"params": params}, batch, method="hidden_states")
    h = jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
    return spec.model.apply({"params": params}, h, method="text_logits")
  with sharding.mesh_context(mesh):
    return np.asarray(jnp.argmax(logits_at(params, batch, jnp.asarray(lengths) - 1), axis=-1))


def test_answers_come_from_the_image(trained):
  tok, spec, params, mesh, losses = trained
  assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
  answer_ids = [tok.encode(c)[0] for c in COLORS]
  assert len(set(answer_ids)) == len(COLORS), "each colour must start with its own token"

  rng = np.random.default_rng(123)  # held-out images
  scenes = [_scene(rng) for _ in range(64)]
  prompts = [_example(tok, codes) for codes, _ in scenes]
  lengths = [len(p["tokens"]) for p in prompts]
  pred = _greedy_first_answer_token(spec, params, mesh, _batch(tok, prompts, with_targets=False), lengths)
  truth = np.asarray([answer_ids[c] for _, c in scenes])
  accuracy = float(np.mean(pred == truth))
  assert accuracy >= 0.9, accuracy

  # The same questions about other images, each of another colour than the original.
  others = []
  for _, color in scenes:
    while True:
      codes, c = _scene(rng)
      if c != color:
        others.append((codes, c))
        break
  swapped = [_example(tok, codes) for codes, _ in others]
  pred_swapped = _greedy_first_answer_token(
      spec, params, mesh, _batch(tok, swapped, with_targets=False), lengths)
  follows_new_image = float(np.mean(pred_swapped == np.asarray([answer_ids[c]
                                                                for _, c in others])))
  keeps_old_answer = float(np.mean(pred_swapped == truth))
  assert follows_new_image >= 0.9, follows_new_image
  assert keeps_old_answer <= 0.1, keeps_old_answer
