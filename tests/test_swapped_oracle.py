"""benchmarks/swapped_oracle.py: the true answer of a question on another scene."""

from benchmarks import swapped_oracle as oracle
from data_pipelines.scenes import render
from data_pipelines.scenes import text as scene_text


def test_on_its_own_scene_the_oracle_gives_the_dataset_answer():
  for seed in range(30):
    scene = render.sample_scene(seed, 64, "validation", cell=16, max_objects=3)
    for _, q, a in scene_text.qa_pairs(scene):
      assert oracle.oracle_answer(q, scene) == a, q


def test_on_another_scene():
  scene = {"image_size": 64, "split": "validation", "seed": 0, "text": "",
           "objects": [{"shape": "circle", "color": "red", "size": "small",
                        "center": [8, 8], "region": "top left"}]}
  assert oracle.oracle_answer("How many objects are there?", scene) == "1"
  assert oracle.oracle_answer("How many red objects are there?", scene) == "1"
  assert oracle.oracle_answer("How many blue objects are there?", scene) == "0"
  assert oracle.oracle_answer("Is there a red circle?", scene) == "yes"
  assert oracle.oracle_answer("Is there an orange square?", scene) == "no"
  assert oracle.oracle_answer("Is there any text in the image?", scene) == "no"
  assert oracle.oracle_answer("What is written in the image?", scene) is None
  assert oracle.oracle_answer("What color is the square?", scene) is None  # no square
  assert oracle.oracle_answer("What color is the circle?", scene) == "red"
  assert oracle.oracle_answer("Where is the red circle?", scene) == "top left"
