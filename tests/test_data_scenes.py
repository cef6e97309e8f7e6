"""Scene renderer, captions/QA and the pixel-only scorer."""

import json

import numpy as np
import pytest

from data_pipelines.scenes import corpus
from data_pipelines.scenes import palette as pal
from data_pipelines.scenes import render
from data_pipelines.scenes import scorer
from data_pipelines.scenes import text as scene_text


def test_render_is_deterministic_and_split_dependent():
  a_img, a_graph = render.render_scene(7, 64, "train")
  b_img, b_graph = render.render_scene(7, 64, "train")
  np.testing.assert_array_equal(a_img, b_img)
  assert a_graph == b_graph
  c_img, _ = render.render_scene(7, 64, "test")
  assert not np.array_equal(a_img, c_img)
  assert a_img.dtype == np.uint8 and a_img.shape == (64, 64, 3)
  json.dumps(a_graph)  # JSON-serialisable


@pytest.mark.parametrize("split", render.SPLITS)
def test_scene_graph_invariants(split):
  for seed in range(60):
    g = render.sample_scene(seed, 64, split)
    objs = g["objects"]
    assert 1 <= len(objs) <= 4
    pairs = [(o["shape"], o["color"]) for o in objs]
    assert len(set(pairs)) == len(pairs)
    held = [p in pal.HELDOUT_PAIRS for p in pairs]
    assert any(held) if split == "compositional" else not any(held)
    boxes = [o["box"] for o in objs] + ([g["text_box"]] if g["text"] else [])
    for i, a in enumerate(boxes):
      assert 0 <= a[0] < a[2] <= 64 and 0 <= a[1] < a[3] <= 64
      for b in boxes[i + 1:]:
        assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


@pytest.mark.parametrize("split", ["train", "compositional"])
def test_in_cell_placement_puts_each_object_in_its_own_token_cell(split):
  """cell=16: every object and the text centred in a distinct 16 px cell, sides from
  CELL_SIDES, 1-max_objects objects; the question types and the scorer still work."""
  counts, types = set(), set()
  for seed in range(80):
    img, g = render.render_scene(seed, 64, split, text_prob=0.5, cell=16, max_objects=3)
    objs = g["objects"]
    counts.add(len(objs))
    assert 1 <= len(objs) <= 3
    cells = []
    for box in [o["box"] for o in objs] + ([g["text_box"]] if g["text"] else []):
      x0, y0, x1, y1 = box
      col, row = x0 // 16, y0 // 16
      assert (x1 - 1) // 16 == col and (y1 - 1) // 16 == row, box  # inside one cell
      assert abs((x0 + x1) / 2 - (col * 16 + 8)) <= 0.5  # centred
      assert abs((y0 + y1) / 2 - (row * 16 + 8)) <= 0.5
      cells.append((row, col))
    assert len(set(cells)) == len(cells)
    for o in objs:
      lo, hi = render.CELL_SIDES[o["size"]]
      assert round(16 * lo) <= o["box"][2] - o["box"][0] <= round(16 * hi)
    pred = scorer.score_image(img)
    assert scorer.match_fraction(pred, g, max_center_dist=0.05) == 1.0
    types |= {t for t, _, _ in scene_text.qa_pairs(g)}
  assert counts == {1, 2, 3}
  assert types == set(scene_text.QA_TYPES)  # relations included: cells are 16 px apart


def test_placement_errors_and_the_free_world_default():
  with pytest.raises(ValueError, match="cell must be 0"):
    render.sample_scene(0, 64, cell=24)
  with pytest.raises(ValueError, match="max_objects"):
    render.sample_scene(0, 64, max_objects=5)
  # cell=0, max_objects=4 is the free world: the same scenes as before the option existed.
  assert render.sample_scene(9, 64) == render.sample_scene(9, 64, cell=0, max_objects=4)
  from data_pipelines.scenes import tfds_scenes
  assert tfds_scenes.config_name(64, 3000, 300) == "64px_3000_300"
  assert tfds_scenes.config_name(64, 6000, 300, 16, 3) == "64px_cell16_max3_6000_300"


def test_pixels_match_scene_graph():
  img, g = render.render_scene(3, 64, "train", text_prob=1.0)
  for o in g["objects"]:
    cx, cy = (int(v) for v in o["center"])
    assert tuple(img[cy, cx]) == pal.COLORS[o["color"]]
  assert g["text"]
  x0, y0, x1, y1 = g["text_box"]
  assert (img[y0:y1, x0:x1] == np.array(pal.TEXT_COLOR, np.uint8)).all(-1).any()


@pytest.mark.parametrize("size,num", [(64, 300), (256, 25)])
def test_scorer_accuracy_on_ground_truth(size, num):
  total = right = 0
  for split in ("train", "compositional"):
    for seed in range(num):
      img, g = render.render_scene(seed, size, split)
      pred = scorer.score_image(img)
      n = len(g["objects"])
      total += n
      right += round(scorer.match_fraction(pred, g, max_center_dist=0.05) * n)
  assert right / total >= 0.99, (right, total)


def test_scorer_rejects_wrong_objects():
  img, g = render.render_scene(11, 64, "train")
  pred = scorer.score_image(img)
  assert scorer.match_fraction(pred, g) == 1.0
  wrong = [dict(p, color="red" if p["color"] != "red" else "blue") for p in pred]
  assert scorer.match_fraction(wrong, g) == 0.0
  blank = np.zeros_like(img)
  assert scorer.score_image(blank) == []
  assert scorer.score_against_scene(blank, g)["recall"] == 0.0


def _count(graph, **attrs):
  return sum(all(o[k] == v for k, v in attrs.items()) for o in graph["objects"])


def test_qa_answers_agree_with_scene_graph():
  seen_types = set()
  for seed in range(80):
    g = render.sample_scene(seed, 64, "train", text_prob=0.5)
    pred = scorer.score_image(render.draw_scene(g))
    for qtype, q, a in scene_text.qa_pairs(g):
      seen_types.add(qtype)
      if q == "How many objects are there?":
        assert a == str(len(g["objects"])) == str(len(pred))
      elif qtype == "color":
        shape = q.split("the ")[1].rstrip("?")
        assert _count(g, shape=shape) == 1 and _count(g, shape=shape, color=a) == 1
      elif qtype == "shape":
        color = q.split("the ")[1].split(" object")[0]
        assert _count(g, color=color) == 1 and _count(g, color=color, shape=a) == 1
      elif qtype == "existence":
        color, shape = q.rstrip("?").split(" ")[-2:]
        assert a == ("yes" if _count(g, color=color, shape=shape) else "no")
        if a == "no":
          assert (shape, color) not in pal.HELDOUT_PAIRS
      elif qtype == "position":
        color, shape = q.rstrip("?").split(" ")[-2:]
        o = [o for o in g["objects"] if (o["color"], o["shape"]) == (color, shape)][0]
        assert a == o["region"] == render.region_name(*o["center"], 64)
      elif qtype == "relation":
        assert a in ("left", "right", "above", "below")
      elif qtype == "text":
        assert a == (g["text"] if g["text"] else "no")
  assert seen_types == set(scene_text.QA_TYPES)


def test_captions_mention_every_object():
  g = render.sample_scene(5, 64, "train")
  caps = scene_text.captions(g)
  assert len(caps) == 3 and len(set(caps)) == 3
  for c in caps:
    for o in g["objects"]:
      assert f"{o['color']} {o['shape']}" in c


def test_text_corpus():
  ex = [corpus.text_example(s, "train") for s in range(60)]
  assert {e["kind"] for e in ex} == set(corpus.KINDS)
  for e in ex:
    assert e["text"] == f"{e['prompt']} {e['answer']}"
    if e["kind"] == "arithmetic":
      _, _, a, op, b = e["prompt"].rstrip("?").split(" ")
      val = {"plus": int(a) + int(b), "minus": int(a) - int(b), "times": int(a) * int(b)}[op]
      assert e["answer"] == f"{val}."
  assert corpus.text_example(3, "test") == corpus.text_example(3, "test")
  with pytest.raises(ValueError, match="validation"):
    corpus.text_example(0, "validation")
