"""The GenEval-style generation controls: objects per image, and each prompt scored on
the images generated for another prompt (the prompt-following control)."""

import json
import types

import numpy as np
import pytest

from data_pipelines.scenes import render
from synergen_jax.evaluation import geneval
from synergen_jax.evaluation import run as eval_run


def _scenes(n=60):
  return [render.sample_scene(seed, 64, "validation", cell=16, max_objects=3) for seed in range(n)]


def test_objects_per_image_counts_what_the_scorer_finds():
  scenes = _scenes(12)
  items = [{"category": "counting", "scene": s, "prompt": ""} for s in scenes]
  images = [[render.draw_scene(s)] for s in scenes]
  m = geneval.score(items, images, "x")
  assert m["x/objects_per_image"] == pytest.approx(geneval.objects_per_prompt(items))
  assert m["x/objects_per_image"] == pytest.approx(np.mean([len(s["objects"]) for s in scenes]))
  blank = [[np.zeros((64, 64, 3), np.uint8)] for _ in scenes]
  assert geneval.score(items, blank, "x")["x/objects_per_image"] == 0.0


def _session_and_records(monkeypatch, draw):
  """A fake inference session whose generator draws `draw(prompt_index)`; the records are
  rendered scenes (their scene graphs and images)."""
  scenes = _scenes()
  records = [types.SimpleNamespace(image=render.draw_scene(s), scene_graph=json.dumps(s))
             for s in scenes]
  monkeypatch.setattr(eval_run.data, "records", lambda config, split: (records, 0))
  calls = {}

  def generate(prompts, seed, cfg_scale, sampling):
    calls["prompts"] = list(prompts)
    return [draw(i, p) for i, p in enumerate(prompts)]

  session = types.SimpleNamespace(
      experiment=None, image_size=64, generate=generate,
      encode_images=lambda x: x, decode_images=lambda x: x)
  e = types.SimpleNamespace(gen_split="validation", gen_prompts=4, gen_samples=2, seed=0,
                            guidance=7.5, sampling=None, grid_prompts=2)
  return session, e, scenes, calls


def test_a_generator_that_draws_its_prompts_beats_the_control(monkeypatch):
  by_prompt = {}
  session, e, scenes, _ = _session_and_records(
      monkeypatch, lambda i, p: by_prompt[p])
  for s in scenes:  # the perfect generator: each prompt's own scene
    for c in range(3):
      by_prompt.setdefault(geneval.scene_text.captions(s)[c], render.draw_scene(s))
  m, _ = eval_run.evaluate_generation(session, e)
  assert m["gen/overall"] == 1.0
  # Its images, scored against another prompt of the category, are the dataset images of
  # another prompt: the control equals the floor computed from the dataset images.
  assert m["gen/generated_other_prompt/overall"] == pytest.approx(
      m["gen/other_prompt_image/overall"])
  assert m["gen/generated_other_prompt/overall"] < 0.5
  assert m["gen/objects_per_image"] == pytest.approx(m["gen/objects_per_prompt"])


def test_a_prompt_blind_generator_scores_alike_on_the_control(monkeypatch):
  # One cluttered image for every prompt: the control cannot tell it from its own score.
  clutter = np.maximum.reduce([render.draw_scene(s) for s in _scenes(8)])
  session, e, _, _ = _session_and_records(monkeypatch, lambda i, p: clutter)
  m, _ = eval_run.evaluate_generation(session, e)
  assert m["gen/overall"] == pytest.approx(m["gen/generated_other_prompt/overall"])
  assert m["gen/objects_per_image"] > m["gen/objects_per_prompt"]
