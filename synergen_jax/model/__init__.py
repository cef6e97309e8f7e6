"""SynerGen-VL model: pure-functional Flax Linen modules with logical axis names."""

from synergen_jax.model.config import HeadConfig, ModelConfig
from synergen_jax.model.synergen import SynerGenVL

__all__ = ["HeadConfig", "ModelConfig", "SynerGenVL"]
