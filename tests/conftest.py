"""Test setup: 8 fake CPU devices and a quick XLA backend, set before JAX initialises.

The tests compile hundreds of small programs and run each a few times, so compilation
dominates: LLVM's expensive optimisation passes are off (about 40% less wall time; the
values agree with the optimised build within every test's tolerance). Subprocesses the
tests start inherit the flags.
"""

import os
import shutil
import tempfile

os.environ["JAX_PLATFORMS"] = "cpu"
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  _flags += " --xla_force_host_platform_device_count=8"
if "xla_backend_optimization_level" not in _flags:
  _flags += " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
os.environ["XLA_FLAGS"] = _flags.strip()

import jax  # noqa: E402  (must come after the environment is set)

jax.config.update("jax_default_matmul_precision", "highest")
jax.config.update("jax_threefry_partitionable", True)

import pytest  # noqa: E402

# One persistent compilation cache for the whole session: the xdist workers and the
# processes the tests start share it, so a program that several tests (or a test and the
# CLI it runs) compile alike is compiled once. Only programs that took >= 0.5 s are
# written (measured on the 2-core box: 130 of ~2,400 compiles, ~80 of the ~90 duplicated
# compile seconds). The controller (or the `-n 0` process) makes the directory and removes
# it at the end; a test that needs its own cache sets JAX_COMPILATION_CACHE_DIR itself.
_CACHE_ENV = "SYNERGEN_TEST_COMPILATION_CACHE"
_CACHE_MIN_COMPILE_S = "0.5"


def pytest_configure(config):
  if not hasattr(config, "workerinput") and _CACHE_ENV not in os.environ:
    config.synergen_cache_dir = tempfile.mkdtemp(prefix="synergen-tests-jax-cache-")
    os.environ[_CACHE_ENV] = config.synergen_cache_dir
  cache = os.environ.get(_CACHE_ENV)
  if cache:
    # Environment for the processes the tests start (and the xdist workers, started
    # after this hook); jax.config for this one (jax read its environment at import).
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = _CACHE_MIN_COMPILE_S
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(_CACHE_MIN_COMPILE_S))


def pytest_unconfigure(config):
  cache = getattr(config, "synergen_cache_dir", None)
  if cache:
    shutil.rmtree(cache, ignore_errors=True)
    os.environ.pop(_CACHE_ENV, None)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """A tiny two-stage training workdir, trained once per session and shared by the xdist
  workers; each worker gets its own copy of the workdir (tests/tiny_run.py)."""
  from tests import tiny_run as tiny_run_lib
  return tiny_run_lib.load(tmp_path_factory)


# Test modules that use the `tiny_run` fixture: the xdist scheduler below sends them to one
# worker as one unit, so that the worker that trains the tiny run (tests/tiny_run.py) also
# runs the tests that reuse what that training compiled, and the serving modules share one
# engine (tests/test_serve_api.py `serve_tiny`). A module that uses `tiny_run` without
# being listed here still works: it then reuses the run from another worker.
TINY_RUN_MODULES = ("test_evaluate.py", "test_serve_api.py", "test_benchmarks_e2e.py",
                    "test_train_e2e.py", "test_serve_browser.py", "test_serve_cli.py")

# The order in which the two workers start the units (pytest.ini: --no-loadscope-reorder):
# the longest first (measured CPU seconds on the 2-core box: the restart test ~250, the
# tiny-run modules ~230 together, multi-host ~160, the others 70 and less), so that no
# long unit starts last and leaves one worker running alone at the end. Modules not
# listed follow in file order.
LONGEST_FIRST = ("test_restart.py", *TINY_RUN_MODULES, "test_multihost.py",
                 "test_synergen.py", "test_train_step.py", "test_vq_train.py",
                 "test_task_loss_weights.py", "test_sharding.py",
                 "test_fused_cross_entropy.py", "test_inference.py", "test_data_pipeline.py",
                 "test_vq_model.py", "test_attention.py", "test_mmoe.py", "test_learning.py",
                 "test_experiment_files.py")


@pytest.hookimpl(optionalhook=True)  # an xdist hook: `-p no:xdist` must still work
def pytest_xdist_make_scheduler(config, log):
  """Whole modules per worker (as `--dist loadfile`), the TINY_RUN_MODULES as one unit."""
  from xdist.scheduler import LoadScopeScheduling

  class Scheduling(LoadScopeScheduling):
    def _split_scope(self, nodeid):
      module = nodeid.split("::", 1)[0]
      return "tiny_run" if os.path.basename(module) in TINY_RUN_MODULES else module

  return Scheduling(config, log)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by the markers added here
def pytest_collection_modifyitems(config, items):
  del config
  for item in items:
    if "tiny_run" in getattr(item, "fixturenames", ()):
      item.add_marker(pytest.mark.slow)  # end to end: the trained tiny workdir
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable
