"""The command-line wrapper (`synergen_jax/cli.py`): an error the user caused -> its
message on stderr and status 2, SIGTERM in a trainer (`preemption.Preempted`) -> 143,
success -> 0; and every entry point goes through it."""

import ast
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest
from absl import logging

from synergen_jax import cli
from synergen_jax import preemption
from synergen_jax.experiment import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _keep_verbosity():
  before = logging.get_verbosity()
  yield
  logging.set_verbosity(before)


def _raising(error):
  @cli.command
  def main(argv):
    del argv
    raise error
  return main


@pytest.mark.parametrize("error", [
    ConfigError("config.model.embed_dim = -1: expected a positive integer"),
    ValueError("--prompt is empty"),
    FileNotFoundError("/nonexistent/config.json not found: not a training workdir"),
    FileExistsError("--out=W already exists; refusing to overwrite")])
def test_an_error_the_user_caused_is_its_message_and_status_2(error, capsys):
  with pytest.raises(SystemExit) as e:
    _raising(error)([])
  assert e.value.code == cli.USER_ERROR_EXIT_CODE == 2
  out = capsys.readouterr()
  assert out.err == f"error: {error}\n" and out.out == ""


def test_a_bug_keeps_its_traceback():
  with pytest.raises(KeyError):
    _raising(KeyError("not the user's"))([])


def test_preempted_is_status_143_with_the_message_on_stdout(capsys):
  with pytest.raises(SystemExit) as e:
    _raising(preemption.Preempted(7))([])
  assert e.value.code == preemption.PREEMPTED_EXIT_CODE == 143
  assert "preempted at step 7" in capsys.readouterr().out


def test_success_returns_and_sets_warning_logging():
  @cli.command
  def main(argv):
    return argv + ["ran"], logging.get_verbosity()

  logging.set_verbosity(logging.INFO)
  assert main(["prog"]) == (["prog", "ran"], logging.WARNING)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="a SIGTERM handler is installed from the main thread only")
def test_sigterm_in_a_trainer_loop_exits_143_in_process(capsys):
  @cli.command
  def main(argv):
    del argv
    with preemption.PreemptionWatcher() as watcher:
      for step in range(1, 100):
        if step == 3:
          signal.raise_signal(signal.SIGTERM)  # handled: the loop stops at its next poll
        if watcher.should_stop(None, step):
          raise preemption.Preempted(step)
    return "not stopped"

  with pytest.raises(SystemExit) as e:
    main([])
  assert e.value.code == 143 and "preempted at step 3" in capsys.readouterr().out


# A program like the entry points: absl flags, `cli.command`, `cli.run`.
PROGRAM = textwrap.dedent('''
    import os, signal, sys
    from absl import flags
    from synergen_jax import cli, preemption

    _WHAT = flags.DEFINE_string("what", None, "ok | error | sigterm")


    @cli.command
    def main(argv):
      if _WHAT.value == "error":
        raise ValueError("--what: a bad value")
      if _WHAT.value == "sigterm":
        with preemption.PreemptionWatcher() as watcher:
          os.kill(os.getpid(), signal.SIGTERM)
          if watcher.should_stop(None, 5):
            raise preemption.Preempted(5)
      print("done")


    if __name__ == "__main__":
      cli.run(main, required=("what",))
    ''')


@pytest.mark.slow  # four processes
def test_the_exit_statuses_a_shell_sees(tmp_path):
  path = tmp_path / "program.py"
  path.write_text(PROGRAM)

  def run(*args):
    return subprocess.run([sys.executable, str(path), *args], cwd=REPO, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=120)

  ok, error, term, usage = (run("--what=ok"), run("--what=error"), run("--what=sigterm"),
                            run())
  assert (ok.returncode, ok.stdout) == (0, "done\n"), ok.stderr
  assert (error.returncode, error.stderr) == (2, "error: --what: a bad value\n")
  assert term.returncode == 143 and "preempted at step 5" in term.stdout, term.stderr
  assert usage.returncode == 1 and "--what" in usage.stderr  # absl: a required flag


def _entry_points() -> list[str]:
  out = []
  for pkg in ("synergen_jax", "data_pipelines"):
    for d, _, names in os.walk(os.path.join(REPO, pkg)):
      for n in names:
        path = os.path.join(d, n)
        if n.endswith(".py") and '__name__ == "__main__"' in open(path).read():
          out.append(os.path.relpath(path, REPO))
  return sorted(out)


def test_every_entry_point_runs_its_main_through_the_wrapper():
  points = _entry_points()
  assert len(points) >= 16 and "synergen_jax/serve/__main__.py" in points
  for path in points:
    tree = ast.parse(open(os.path.join(REPO, path)).read())
    mains = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "main"]
    assert mains and [ast.unparse(d) for d in mains[0].decorator_list] == ["cli.command"], path
    assert "cli.run(main" in ast.unparse(tree), path
