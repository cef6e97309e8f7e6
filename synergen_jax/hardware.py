"""Accelerator chips: one table of per-chip figures (vendor spec sheets, dense bf16).

  chip = chip_for(jax.devices()[0].device_kind)   # None for CPUs and unknown kinds
  chip.peak_flops                                 # the trainer's MFU (training/flops.py)
  chip.hbm_bytes, chip.ici_bytes_per_s            # the TPU fit (synergen_jax/tpu)
  chip.dcn_bytes_per_s                            # its multi-slice estimate

A leaf module (no project imports): `training/flops.py` needs it and must not import
the `tpu` package, which imports `training`.
"""

import dataclasses

GiB = 2.0 ** 30


@dataclasses.dataclass(frozen=True)
class Chip:
  """Per-chip figures. On v4 / v5p one JAX device is a chip (megacore); on v5e / v6e a
  chip has one TensorCore. The memory and ICI figures are there for the TPU chips the
  fit tooling knows (0 elsewhere)."""

  name: str
  device_kinds: tuple[str, ...]   # lower-case substrings of jax's device_kind
  peak_flops: float               # dense bf16 FLOP/s
  hbm_bytes: float = 0.0
  hbm_bytes_per_s: float = 0.0
  ici_bytes_per_s: float = 0.0    # all ICI links of the chip together
  dcn_bytes_per_s: float = 0.0    # its share of its host's data-center network (multi-slice)


# First match wins: "tpu v5 lite" must match v5e before "v5" matches v5p.
CHIPS: tuple[Chip, ...] = (
    Chip("v6e", ("v6 lite", "v6e"), 918e12, 32 * GiB, 1640e9, 448e9),
    # DCN: v5e 2 x 100 Gbps NICs per 8-chip host (25 Gbps per chip); v5p 50 Gbps per chip.
    Chip("v5e", ("v5 lite", "v5e"), 197e12, 16 * GiB, 819e9, 200e9, 25e9 / 8),
    Chip("v5p", ("v5p", "v5"), 459e12, 95 * GiB, 2765e9, 600e9, 50e9 / 8),
    Chip("v4", ("v4",), 275e12, 32 * GiB, 1228e9, 300e9),
    Chip("v3", ("v3",), 123e12),
    Chip("v2", ("v2",), 45e12),
    Chip("H200", ("h200",), 989e12),
    Chip("H100", ("h100",), 989e12),
    Chip("A100", ("a100",), 312e12),
    Chip("L4", ("l4",), 121e12),
)


def chip_for(device_kind: str) -> Chip | None:
  """The chip of a JAX `device_kind` ("TPU v5 lite", "NVIDIA H100 80GB HBM3", ...)."""
  kind = device_kind.lower()
  return next((c for c in CHIPS if any(k in kind for k in c.device_kinds)), None)


def chip_named(name: str | None) -> Chip | None:
  """The chip of a `Chip.name` (as saved in reports), or None."""
  return next((c for c in CHIPS if c.name == name), None)
