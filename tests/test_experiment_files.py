"""Every experiment file runs through the cheap entry points a user tries first.

For each file in experiments/ (adding a file is enough to have it covered): LLM
experiments (`stage_order`) through `synergen_jax.count_params`,
`synergen_jax.training.memory` and `synergen_jax.train --check_config` (a base file with no
stages of its own, e.g. qwen2_0_5b.py, through the first two); VQ tokenizer experiments
through `synergen_jax.train_vq --check_config`. Any error fails the test, whatever the
experiment's attention kernel or remat policy.

Each entry point's own `main` runs on each file after absl parsed the file's flags, as
on a command line; all of them in one separate process (`_DRIVER`: a process of its own,
so that no test's JAX state or flags leak in; one process, not one per file and entry
point, since a Python + JAX start costs more than the checks). Each entry point also runs
once as a real command (`python -m ...`, test_entry_points_run_as_commands).
"""

import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(glob.glob(os.path.join(ROOT, "experiments", "*.py")))

# (entry point module, flags besides --config) for each kind of experiment file.
LLM_BASE = [("synergen_jax.count_params", []), ("synergen_jax.training.memory", [])]
LLM = LLM_BASE + [("synergen_jax.train", ["--check_config"])]
VQ = [("synergen_jax.train_vq", ["--check_config"])]

# Runs each (module, flags, files) of its JSON argument: imports the module, then for each
# file parses `--config=<file> <flags>` into absl's flags and calls `module.main([])`,
# printing one JSON line per run: its exit status (a `SystemExit`'s code, 1 for an
# exception: the traceback is its stderr), stdout and stderr. A module's flags are
# removed before the next module defines its own (several define --config).
_DRIVER = r'''
import contextlib, importlib, io, json, sys, traceback
from absl import app, flags, logging  # their flags (--verbosity, ...) stay defined
for module, extra, paths in json.loads(sys.argv[1]):
  before = set(flags.FLAGS)
  m = importlib.import_module(module)
  for path in paths:
    out, err, status = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      try:
        flags.FLAGS.unparse_flags()
        flags.FLAGS([module, f"--config={path}", *extra])
        m.main([])
      except SystemExit as e:
        status = e.code
      except Exception:
        status = 1
        traceback.print_exc()
    print(json.dumps(dict(module=module, path=path, status=status, out=out.getvalue(),
                          err=err.getvalue())), flush=True)
  for name in set(flags.FLAGS) - before:
    delattr(flags.FLAGS, name)
'''


def _kind(path: str) -> str:
  """"llm" (stages to train), "llm_base" (a model + data base that ablation files build
  on: no stages of its own) or "vq" (a VQ tokenizer experiment)."""
  from synergen_jax import experiment
  name = os.path.splitext(os.path.basename(path))[0]
  config = experiment.load_sibling(path, name).get_config()
  if "stage_order" not in config:
    return "vq"
  return "llm" if config.stage_order else "llm_base"


def _entry_points(path: str) -> list[tuple[str, list[str]]]:
  return {"llm": LLM, "llm_base": LLM_BASE, "vq": VQ}[_kind(path)]


def _env() -> dict:
  return dict(os.environ, JAX_PLATFORMS="cpu")


@pytest.fixture(scope="module")
def runs() -> dict:
  """{(module, file): (status, stdout, stderr)} of every entry point on every file."""
  jobs = {}
  for path in FILES:
    for module, extra in _entry_points(path):
      jobs.setdefault((module, tuple(extra)), []).append(path)
  args = json.dumps([[m, list(extra), paths] for (m, extra), paths in jobs.items()])
  p = subprocess.run([sys.executable, "-c", _DRIVER, args], cwd=ROOT, env=_env(),
                     capture_output=True, text=True, timeout=600)
  assert p.returncode == 0, p.stderr[-3000:]
  rows = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
  assert len(rows) == sum(len(paths) for paths in jobs.values()), p.stdout[-3000:]
  return {(r["module"], r["path"]): (r["status"], r["out"], r["err"]) for r in rows}


def _check(module: str, status, out: str, err: str) -> None:
  assert status in (0, None), f"{module} exited {status}:\n{err[-3000:]}"
  if module == "synergen_jax.count_params":
    assert "total" in out and "activated" in out
  elif module == "synergen_jax.training.memory":
    assert out.strip()
  else:  # train / train_vq --check_config
    assert "config OK" in out


def test_every_file_is_found():
  names = {os.path.basename(f) for f in FILES}
  assert {"demo.py", "tiny.py", "synergen_vl_2_4b.py", "vq_demo.py"} <= names


@pytest.mark.slow  # one process for all of them (`runs`)
@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f) for f in FILES])
def test_entry_points_run(path, runs):
  for module, _ in _entry_points(path):
    _check(module, *runs[(module, path)])


@pytest.mark.slow
def test_entry_points_run_as_commands():
  """Each entry point once as `python -m` (absl's app.run, the flag parsing of a shell
  command, the exit status): the demo's experiment, and its VQ tokenizer's."""
  demo = os.path.join(ROOT, "experiments", "demo.py")
  vq = os.path.join(ROOT, "experiments", "vq_demo_f4.py")
  procs = [(module, subprocess.Popen([sys.executable, "-m", module, f"--config={path}", *extra],
                                     cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True))
           for path, entry_points in ((demo, LLM), (vq, VQ)) for module, extra in entry_points]
  for module, p in procs:
    out, err = p.communicate(timeout=300)
    _check(module, p.returncode, out, err)
