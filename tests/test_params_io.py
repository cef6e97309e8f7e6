"""Params-only Orbax checkpoints: round trip, onto another mesh, clear mismatch errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from synergen_jax import param_checkpoint as params_io, sharding


def test_round_trip_onto_another_mesh(tmp_path):
  mesh8 = sharding.make_mesh((1, 8, 1))
  w = jax.device_put(jnp.arange(32.0).reshape(8, 4), NamedSharding(mesh8, P("fsdp", None)))
  params_io.save_params(str(tmp_path / "p"), {"w": w, "b": jnp.ones(3)})
  # Restore onto a single device.
  one = NamedSharding(sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1]), P())
  target = {"w": jax.ShapeDtypeStruct((8, 4), jnp.float32, sharding=one),
            "b": jax.ShapeDtypeStruct((3,), jnp.float32, sharding=one)}
  got = params_io.restore_params(str(tmp_path / "p"), target)
  np.testing.assert_array_equal(got["w"], np.arange(32.0).reshape(8, 4))
  assert len(got["w"].sharding.device_set) == 1
  with pytest.raises(FileExistsError):
    params_io.save_params(str(tmp_path / "p"), {"w": w})


def test_mismatches_are_clear_errors(tmp_path):
  params_io.save_params(str(tmp_path / "p"), {"w": jnp.zeros((2, 3))})
  with pytest.raises(ValueError, match=r"has shape \(2, 3\), the model expects \(3, 3\)"):
    params_io.restore_params(str(tmp_path / "p"), {"w": jnp.zeros((3, 3))})
  with pytest.raises(ValueError, match="missing"):
    params_io.restore_params(str(tmp_path / "p"), {"w": jnp.zeros((2, 3)), "v": jnp.zeros(1)})
  with pytest.raises(FileNotFoundError, match="not found"):
    params_io.restore_params(str(tmp_path / "nope"), {"w": jnp.zeros((2, 3))})
