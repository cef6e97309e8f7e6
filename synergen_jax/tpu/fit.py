"""Fitting a compiled train step into a TPU chip's HBM.

  chip = tpu_chip(device_kind)                 # hardware.CHIPS: HBM, ICI, peak bf16 FLOP/s
  memory = memory_summary(compiled.memory_analysis())
  check_fit(memory, chip.hbm_bytes, headroom, what)   # raises FitError when it does not fit
"""

from typing import Any

from synergen_jax import hardware

GiB = hardware.GiB


def tpu_chip(device_kind: str) -> hardware.Chip | None:
  """The chip of a device kind when `hardware.CHIPS` has its HBM and ICI figures (the TPU
  chips), else None."""
  chip = hardware.chip_for(device_kind)
  return chip if chip is not None and chip.hbm_bytes else None


def tpu_chip_named(name: str | None) -> hardware.Chip | None:
  """`tpu_chip` by the chip's name (as saved in reports)."""
  chip = hardware.chip_named(name)
  return chip if chip is not None and chip.hbm_bytes else None


class FitError(ValueError):
  """The train step does not fit the per-device memory of its target (with headroom)."""


def memory_summary(mem: Any) -> dict:
  """Per-device bytes from `compiled.memory_analysis()`: arguments + outputs - aliased
  (donated state) + temporaries + generated code = what the step needs resident."""
  get = lambda k: int(getattr(mem, k, 0) or 0)
  out = {
      "argument_bytes": get("argument_size_in_bytes"),
      "output_bytes": get("output_size_in_bytes"),
      "alias_bytes": get("alias_size_in_bytes"),
      "temp_bytes": get("temp_size_in_bytes"),
      "code_bytes": get("generated_code_size_in_bytes"),
  }
  out["total_bytes"] = (out["argument_bytes"] + out["output_bytes"] - out["alias_bytes"]
                        + out["temp_bytes"] + out["code_bytes"])
  return out


def check_fit(memory: dict, capacity_bytes: float, headroom: float, what: str) -> None:
  """Raises FitError unless memory["total_bytes"] <= (1 - headroom) * capacity."""
  limit = (1.0 - headroom) * capacity_bytes
  total = memory["total_bytes"]
  if total > limit:
    raise FitError(
        f"{what}: needs {total / GiB:.2f} GiB per device (arguments "
        f"{memory['argument_bytes'] / GiB:.2f} + outputs {memory['output_bytes'] / GiB:.2f} - "
        f"donated {memory['alias_bytes'] / GiB:.2f} + temporaries "
        f"{memory['temp_bytes'] / GiB:.2f} + code {memory['code_bytes'] / GiB:.2f}) but the "
        f"limit is {limit / GiB:.2f} GiB ({capacity_bytes / GiB:.1f} GiB HBM less "
        f"{headroom:.0%} headroom). Raise grad_accum_steps (fewer rows per device at once), "
        f"use remat_policy='full', shard over more chips, or shorten loss_chunk_size.")


def resource_exhausted_message(error: Exception) -> str | None:
  """The compiler's out-of-memory report (first lines), or None for other errors."""
  text = str(error)
  if "RESOURCE_EXHAUSTED" not in text and "Ran out of memory" not in text:
    return None
  lines = [l.strip() for l in text.splitlines() if l.strip()]
  return " ".join(lines[:3])[:600]
