"""The one error type of a bad experiment config."""


class ConfigError(ValueError):
  """A bad experiment config; the message names the field and what was expected."""
