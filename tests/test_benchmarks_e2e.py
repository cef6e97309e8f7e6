"""`evaluate --benchmark` end to end on the session's tiny trained workdir (POPE and
MMBench from fixture files, with resume), and GenEval's image layout from `generate`'s
library. The tiny model's answers are noise: these tests check the machinery (files,
counts, resume), the scorers are checked by hand in test_benchmarks_scoring.py."""

import json
import os

import jax
import PIL.Image
import pytest
from absl import flags

from synergen_jax import evaluate
from synergen_jax.evaluation.benchmarks import geneval_generate
from synergen_jax.inference.session import InferenceSession
from synergen_jax.model.sampling import SamplingConfig
from synergen_jax.model.vq import config as vq_config
from synergen_jax.model.vq.tokenizer import VQTokenizer
from synergen_jax.vq_training import vq_checkpoint
from tests import bench_fixtures as fx


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory):
  vq_dir = str(tmp_path_factory.mktemp("vq"))
  cfg = vq_config.tiny_config()
  vq_checkpoint.write_imported(vq_dir, cfg, VQTokenizer(cfg).init(jax.random.key(0), 32))
  return dict(tiny_run, vq_dir=vq_dir)


def _evaluate(run, *args):
  """The CLI's main, in this process (one JAX start-up for the module)."""
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["evaluate", f"--workdir={run['straight']}", f"--vq_dir={run['vq_dir']}",
               "--batch_size=4", "--max_new_tokens=4", *args])
  evaluate.main([])


def _lines(path):
  with open(path) as f:
    return [json.loads(l) for l in f if l.strip()]


def test_evaluate_benchmark_pope_and_mmbench_with_resume(run, tmp_path, capsys):
  pope, mmb = tmp_path / "pope", tmp_path / "mmbench"
  pope.mkdir(), mmb.mkdir()
  fx.write_pope(str(pope))
  fx.write_mmbench(str(mmb))
  out = tmp_path / "out_pope"
  _evaluate(run, "--benchmark=pope", f"--benchmark_data={pope}", f"--out={out}", "--limit=4")
  first = _lines(out / "predictions.jsonl")
  assert [(p["split"], p["question_id"]) for p in first] == [
      ("popular", 1), ("popular", 2), ("random", 1), ("random", 2)]
  assert all(isinstance(p["answer"], str) for p in first)
  m = json.loads((out / "metrics.json").read_text())
  assert m["predictions"] == 4 and m["questions"] == 4 and m["limit"] == 4
  assert 0.0 <= m["f1"] <= 100.0 and "popular/accuracy" in m
  # Resume: the 4 answered stay, only the rest is asked; the loader's bad rows (a
  # missing image, a torn JSON line) are skipped and counted.
  _evaluate(run, "--benchmark=pope", f"--benchmark_data={pope}", f"--out={out}")
  second = _lines(out / "predictions.jsonl")
  assert second[:4] == first and len(second) == 6
  m = json.loads((out / "metrics.json").read_text())
  assert m["run/answered_now"] == 2 and m["predictions"] == 6
  assert m["skipped/bad_json"] == 1 and m["missing_predictions"] == 1  # no image: no answer
  assert "# pope" in (out / "report.md").read_text()
  printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert printed["predictions"] == 6

  out = tmp_path / "out_mmb"
  _evaluate(run, "--benchmark=mmbench", f"--benchmark_data={mmb}", f"--out={out}")
  preds = _lines(out / "predictions.jsonl")
  # The tiny model's context (128 tokens, a 380-piece tokenizer) holds the two-option
  # question; the four-option one with its hint does not: skipped and counted.
  assert sorted(p["question_id"] for p in preds) == [2, 1000002]
  m = json.loads((out / "metrics.json").read_text())
  assert m["skipped/prompt_too_long"] == 4 and m["skipped/fewer_than_2_options"] == 1
  assert m["groups"] == 1 and m["missing_predictions"] == 4
  assert m["circular_accuracy"] in (0.0, 100.0)
  assert m["circular_accuracy"] <= m["vanilla_accuracy"]
  assert json.loads((out / "skipped.json").read_text()) == {
      str(i): "prompt_too_long" for i in (1, 1000001, 2000001, 3000001)}
  _evaluate(run, "--benchmark=mmbench", f"--benchmark_data={mmb}", f"--out={out}")
  assert len(_lines(out / "predictions.jsonl")) == len(preds)  # nothing re-asked or retried
  assert json.loads((out / "metrics.json").read_text())["run/answered_now"] == 0


def test_geneval_images_in_genevals_layout(run, tmp_path):
  meta = tmp_path / "evaluation_metadata.jsonl"
  fx.write_geneval_metadata(str(meta))
  session = InferenceSession.load(run["straight"], vq_dir=run["vq_dir"], batch_size=2)
  out = tmp_path / "geneval"
  r = geneval_generate.write_images(session, str(meta), str(out), samples=2, cfg_scale=None,
                                    sampling=SamplingConfig(), prompts_limit=2)
  assert r["written"] == 4 and r["skipped/missing_field"] == 1  # the bad line, counted
  assert sorted(os.listdir(out)) == ["00000", "00001"]
  assert json.loads((out / "00001" / "metadata.jsonl").read_text()) == fx.GENEVAL_METADATA[1]
  assert sorted(os.listdir(out / "00000" / "samples")) == ["0000.png", "0001.png"]
  assert PIL.Image.open(out / "00000" / "samples" / "0000.png").size == (32, 32)
  again = geneval_generate.write_images(session, str(meta), str(out), samples=2,
                                        cfg_scale=None, sampling=SamplingConfig(),
                                        prompts_limit=2)
  assert again["written"] == 0  # resumed: every folder is complete
