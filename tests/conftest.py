"""Test setup: 8 fake CPU devices and a quick XLA backend, set before JAX initialises.

The tests compile hundreds of small programs and run each a few times, so compilation
dominates: LLVM's expensive optimisation passes are off (about 40% less wall time; the
values agree with the optimised build within every test's tolerance). Subprocesses the
tests start inherit the flags.
"""

import os

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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """A tiny two-stage training workdir, trained once per session and shared by the xdist
  workers; each worker gets its own copy of the workdir (tests/tiny_run.py)."""
  from tests import tiny_run as tiny_run_lib
  return tiny_run_lib.load(tmp_path_factory)
