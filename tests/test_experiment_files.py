"""Every experiment file runs through the cheap entry points a user tries first.

For each file in experiments/ (adding a file is enough to have it covered), as separate
processes like a user's shell: LLM experiments (`stage_order`) through
`synergen_jax.params`, `synergen_jax.training.memory` and `synergen_jax.train
--check_config` (a base file with no stages of its own, e.g. qwen2_0_5b.py, through the
first two); VQ tokenizer experiments through `synergen_jax.train_vq --check_config`.
Any error fails the test, whatever the experiment's attention kernel or remat policy.
"""

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(glob.glob(os.path.join(ROOT, "experiments", "*.py")))


def _kind(path: str) -> str:
  """"llm" (stages to train), "llm_base" (a model + data base that ablation files build
  on: no stages of its own) or "vq" (a VQ tokenizer experiment)."""
  from synergen_jax import experiment
  name = os.path.splitext(os.path.basename(path))[0]
  config = experiment.load_sibling(path, name).get_config()
  if "stage_order" not in config:
    return "vq"
  return "llm" if config.stage_order else "llm_base"


def _run(*args) -> str:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  p = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True,
                     text=True, timeout=300)
  assert p.returncode == 0, f"{' '.join(args)} exited {p.returncode}:\n{p.stderr[-3000:]}"
  return p.stdout


def test_every_file_is_found():
  names = {os.path.basename(f) for f in FILES}
  assert {"demo.py", "tiny.py", "synergen_vl_2_4b.py", "vq_demo.py"} <= names


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f) for f in FILES])
def test_entry_points_run(path):
  kind = _kind(path)
  if kind in ("llm", "llm_base"):
    out = _run("synergen_jax.params", f"--config={path}")
    assert "total" in out and "activated" in out
    out = _run("synergen_jax.training.memory", f"--config={path}")
    assert out.strip()
  if kind == "llm":
    out = _run("synergen_jax.train", f"--config={path}", "--check_config")
    assert "config OK" in out
  if kind == "vq":
    out = _run("synergen_jax.train_vq", f"--config={path}", "--check_config")
    assert "config OK" in out
