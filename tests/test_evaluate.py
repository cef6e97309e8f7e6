"""Evaluation and the inference CLIs on the session's tiny trained workdir.

A randomly initialised tiny VQ tokenizer (32 px -> 4 x 4 codes, 64 codes, the tiny
model's grid and codebook) stands in for a trained one: these tests are about the
machinery (restoring onto other meshes, metric files, scoring, error paths), not quality.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import PIL.Image
import pytest

from data_pipelines.scenes import render
from synergen_jax import sharding
from synergen_jax import workdir as workdir_lib
from synergen_jax.evaluation import geneval, vqa
from synergen_jax.model.sampling import SamplingConfig
from synergen_jax.inference.session import InferenceSession, InputError
from synergen_jax.model.vq import config as vq_config
from synergen_jax.model.vq.tokenizer import VQTokenizer
from synergen_jax.vq_training import vq_checkpoint

ROOT = os.path.join(os.path.dirname(__file__), "..")



@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory):
  vq_dir = str(tmp_path_factory.mktemp("vq"))
  cfg = vq_config.tiny_config()
  tok = VQTokenizer(cfg)
  vq_checkpoint.write_imported(vq_dir, cfg, tok.init(jax.random.key(0), 32))
  return dict(tiny_run, vq_dir=vq_dir)


@pytest.fixture(scope="module")
def session(run):
  return InferenceSession.load(run["straight"], vq_dir=run["vq_dir"], batch_size=4)


def _scene_image(seed=0):
  return render.render_scene(seed, 64, "validation")


def test_checkpoint_restores_onto_another_mesh_with_the_same_outputs(run, session):
  """Written on 1 device; restored onto 8 devices as (1, 8, 1) and as (2, 2, 2)."""
  assert session.mesh.devices.size == 8
  other, _ = workdir_lib.load_params(run["straight"], mesh=sharding.make_mesh((2, 2, 2)))
  one = InferenceSession.load(run["straight"], vq_dir=run["vq_dir"], batch_size=4,
                              mesh=sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1]))
  leaves = jax.tree.leaves(session.variables["params"])
  assert any(len(x.sharding.device_set) == 8 for x in leaves)  # really sharded
  assert any(len(x.sharding.device_set) == 8 for x in jax.tree.leaves(other))
  for a, b, c in zip(leaves, jax.tree.leaves(other), jax.tree.leaves(one.variables["params"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
  image, _ = _scene_image()
  questions = ["What color is the circle?", "How many objects are there?"]
  answers = [s.answer([image] * 2, questions, max_new_tokens=6) for s in (session, one)]
  assert answers[0] == answers[1]
  codes = [s.generate_codes(["A red circle on a dark background."], seed=3,
                            sampling=SamplingConfig()) for s in (session, one)]
  np.testing.assert_array_equal(codes[0], codes[1])
  assert codes[0].shape == (1, 4, 4)


def test_generation_is_seeded_and_images_have_the_data_size(session):
  prompts = ["A small blue square on a dark background."] * 2
  a = session.generate_codes(prompts, seed=1)
  np.testing.assert_array_equal(a, session.generate_codes(prompts, seed=1))
  assert not np.array_equal(a, session.generate_codes(prompts, seed=2))
  images = session.decode_images(a)
  assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8


def test_bad_inputs_are_clear_errors(session):
  image, _ = _scene_image()
  with pytest.raises(InputError, match="question is empty"):
    session.answer([image], ["  "])
  with pytest.raises(InputError, match="uint8"):
    session.answer([image.astype(np.float32)], ["What color?"])
  with pytest.raises(InputError, match="prompt is empty"):
    session.generate_codes([""])
  with pytest.raises(InputError, match="context is 128 tokens"):
    session.generate_codes(["circle " * 200])
  with pytest.raises(InputError, match="context is 128 tokens"):
    session.answer([image], ["Is it red? " * 60])


def test_evaluate_writes_flat_metrics_grid_and_report(run, tmp_path):
  from synergen_jax.evaluation.run import run_evaluation
  out = str(tmp_path / "eval")
  m = run_evaluation(run["straight"], vq_dir=run["vq_dir"], out_dir=out, overrides=dict(
      vqa_questions=24, gen_prompts=1, gen_samples=2, text_batches=1, timing_images=4,
      batch_size=4))
  with open(os.path.join(out, "metrics.json")) as f:
    assert json.load(f) == pytest.approx(m)
  for prefix in ("vqa", "vqa/test", "vqa/compositional"):
    assert m[f"{prefix}/questions"] == 24
    assert 0.0 <= m[f"{prefix}/overall"] <= 1.0
  assert all(isinstance(v, (int, float)) for v in m.values())  # flat
  cats = [c for c in geneval.CATEGORIES if f"gen/{c}" in m]
  assert cats and m["gen/images"] == 2 * m["gen/prompts"]
  assert m["gen/overall"] == pytest.approx(np.mean([m[f"gen/{c}"] for c in cats]))
  # The scorer recovers the dataset's own images (the ceiling of every category).
  assert m["gen/reference/overall"] == 1.0
  assert 0.0 <= m["gen/other_prompt_image/overall"] <= 1.0  # the prompt-dependence floor
  assert m["text/perplexity"] == pytest.approx(np.exp(m["text/loss"]))
  assert "text/start/perplexity" in m  # stage1 started from the text stage's params
  # ... which is also the text-pretrained LLM the retention target compares against.
  assert m["text/pretrained/perplexity"] == pytest.approx(m["text/start/perplexity"])
  assert m["text/perplexity_ratio_vs_pretrained"] == pytest.approx(
      m["text/perplexity"] / m["text/pretrained/perplexity"])
  # The image-dependence control: the validation questions about other images.
  assert m["vqa/swapped_image/questions"] == 24  # the first records' (>= 2 images)
  assert 0.0 <= m["vqa/swapped_image/overall"] <= 1.0
  assert 0.0 <= m["vqa/swapped_image/same_answer"] <= 1.0
  assert m["gen/fold_llm_steps_per_image"] == 4 and m["gen/no_fold_llm_steps_per_image"] == 16
  assert m["gen/fold_s_per_image"] > 0 and m["gen/no_fold_s_per_image"] > 0
  grid = np.asarray(PIL.Image.open(os.path.join(out, "generated.png")))
  assert grid.ndim == 3 and grid.shape[1] >= 2 * 64  # two 32 px samples at scale 2
  with open(os.path.join(out, "report.md")) as f:
    report = f.read()
  assert "VQA exact match" in report and "GenEval" in report and "perplexity" in report


def test_vqa_normalisation_and_majority_baseline():
  assert vqa.normalize("  Red. ") == "red"
  assert vqa.normalize("Top  Left") == "top left"
  items = [{"type": "color", "answer": a, "question": q} for a, q in (
      ("red", "What color is the circle?"), ("red", "What color is the square?"),
      ("blue", "What color is the square?"))] + [
      {"type": "count", "answer": "2", "question": "How many?"}]
  m = vqa.score(items, ["Red.", "blue", "blue", "3"], "vqa")
  assert m["vqa/color"] == pytest.approx(2 / 3) and m["vqa/count"] == 0.0
  assert m["vqa/overall"] == pytest.approx(0.5)
  assert m["vqa/color_majority"] == pytest.approx(2 / 3)
  # Majority per wording, leave-one-out: the circle question has no other of its wording
  # -> the other colour answers (red, blue: red first) -> right; each square question sees
  # only the other square answer -> wrong twice; the count question has no other -> wrong.
  assert m["vqa/wording_majority"] == pytest.approx(1 / 4)
  with pytest.raises(ValueError, match="predictions"):
    vqa.score(items, ["red"], "vqa")


def test_swapped_image_control_pairs_every_question_with_another_image():
  items = [{"id": f"r{i}", "image": np.full((2, 2, 3), i, np.uint8), "question": q,
            "answer": a, "type": "color"}
           for i in range(4) for q, a in (("What color?", f"c{i}"), ("Shape?", "s"))]
  swapped = vqa.swap_images(items)
  assert [it["question"] for it in swapped] == [it["question"] for it in items]
  assert [it["answer"] for it in swapped] == [it["answer"] for it in items]
  for it, sw in zip(items, swapped):
    assert sw["image_id"] != it["id"]
    assert int(sw["image"][0, 0, 0]) == int(sw["image_id"][1:])  # that record's image
  # Questions about one image all meet the same other image; every image is used once.
  assert len({sw["image_id"] for sw in swapped}) == 4
  assert vqa.same_answer_rate(["Red.", "blue"], ["red", "green"]) == 0.5
  with pytest.raises(ValueError, match=">= 2 images"):
    vqa.swap_images(items[:2])
  with pytest.raises(ValueError, match="equally long"):
    vqa.same_answer_rate(["a"], [])


def test_other_prompt_index_stays_in_the_category_and_never_picks_itself():
  items = [{"category": c} for c in ["single_object"] * 4 + ["colors"] * 4 + ["counting"] * 3]
  other = geneval.other_prompt_index(items)
  assert other == [2, 3, 0, 1, 6, 7, 4, 5, 9, 10, 8]
  assert geneval.other_prompt_index([{"category": "colors"}]) == [0]


def test_geneval_categories_score_renders_right_and_blank_images_wrong():
  graphs = [render.render_scene(s, 64, "validation")[1] for s in range(80)]
  items = geneval.prompts(graphs, per_category=3)
  assert {it["category"] for it in items} == set(geneval.CATEGORIES)
  real = {g["seed"]: render.render_scene(g["seed"], 64, "validation")[0] for g in graphs}
  blank = np.zeros((64, 64, 3), np.uint8)
  for it in items:
    assert geneval.correct(it["category"], real[it["scene"]["seed"]], it["scene"]), it["prompt"]
    assert not geneval.correct(it["category"], blank, it["scene"])
  # A swapped-colour render fails colour attribution.
  two = next(it["scene"] for it in items if it["category"] == "color_attr")
  swapped = dict(two, objects=[dict(two["objects"][0], color=two["objects"][1]["color"]),
                               dict(two["objects"][1], color=two["objects"][0]["color"])])
  assert not geneval.correct("color_attr", render.draw_scene(swapped), two)


def _cli(module, *args):
  return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                        cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=300)


def test_inference_commands_reject_bad_inputs(run, tmp_path):
  """What `answer` and `generate` run (their CLIs print these messages, status 2)."""
  from synergen_jax.inference.commands import answer_image_file, generate_png
  w = run["straight"]
  bad = tmp_path / "bad.png"
  bad.write_bytes(b"not a png")
  with pytest.raises(InputError, match="does not exist"):
    answer_image_file(w, f"{tmp_path}/missing.png", "What color?")
  with pytest.raises(InputError, match="not a readable image"):
    answer_image_file(w, str(bad), "What?")
  with pytest.raises(InputError, match="--prompt is empty"):
    generate_png(w, "   ", f"{tmp_path}/x.png")
  with pytest.raises(InputError, match="context is 128 tokens"):
    generate_png(w, "circle " * 200, f"{tmp_path}/x.png", vq_dir=run["vq_dir"])
  assert not os.path.exists(tmp_path / "x.png")


@pytest.mark.slow
def test_cli_error_paths(run, tmp_path):
  """`answer` and `generate` as commands: a bad input is its message on stderr, status 2
  (one process per entry point; the other bad inputs in-process above)."""
  w = run["straight"]
  answer = _cli("synergen_jax.answer", f"--workdir={w}", f"--image={tmp_path}/missing.png",
                "--question=What color?")
  generate = _cli("synergen_jax.generate", f"--workdir={w}", "--prompt=" + "circle " * 200,
                  f"--out={tmp_path}/x.png", f"--vq_dir={run['vq_dir']}")
  assert answer.returncode == 2 and "does not exist" in answer.stderr, answer.stderr
  assert generate.returncode == 2 and "context is 128 tokens" in generate.stderr, generate.stderr
  assert not os.path.exists(tmp_path / "x.png")


def test_cli_answer_and_generate_write_results(run, tmp_path):
  image, _ = _scene_image()
  path = tmp_path / "scene.png"
  PIL.Image.fromarray(image).save(path)
  from synergen_jax.inference.commands import answer_image_file, generate_png
  text = answer_image_file(run["straight"], str(path), "What color is the circle?", max_new_tokens=4,
                vq_dir=run["vq_dir"])
  assert isinstance(text, str)
  out = generate_png(run["straight"], "A red circle on a dark background.", str(tmp_path / "g.png"),
                 samples=4, vq_dir=run["vq_dir"])
  assert np.asarray(PIL.Image.open(out)).shape == (32, 128, 3)  # 4 samples side by side
