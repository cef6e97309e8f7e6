"""The one error type of a bad config (`typed_config.ConfigError`, re-exported here for
the experiment's readers)."""

from synergen_jax.typed_config import ConfigError

__all__ = ["ConfigError"]
