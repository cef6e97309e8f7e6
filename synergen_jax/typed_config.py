"""Typed frozen configs read from ConfigDicts: the one form every config takes.

Configs are written as code (ml_collections ConfigDicts: experiment files, defaults,
command-line overrides) and resolved once, at the edge, into frozen dataclasses:

  from_dict(cls, cfg, "config.data")   # exactly cls's fields, each cast to its type
  convert(value, float, "config.x")    # one value as an annotated type
  dataclasses.replace(obj, field=v)    # a changed copy, checked again
  need(condition, "field", "message")  # a check in a dataclass's __post_init__

A config dataclass derives from `Typed`: when it is made (also by `dataclasses.replace`)
every field is cast to its annotated type, then its `check()` checks the values with
`need`, naming the field relative to itself; `from_dict` puts where the dataclass sits
in front (`config.stages.s1.data.cfg_dropout: ...`). Unknown, missing and wrongly typed
fields are `ConfigError`s naming the field too.
"""

import dataclasses
import functools
import types
import typing
from typing import Any, Mapping

import numpy as np


class ConfigError(ValueError):
  """A bad config; the message names the field and what was expected.

  ConfigError(field, message) -> "field: message" (`field` and `message` kept apart);
  ConfigError(message) -> the message as it is (its field named inside it)."""

  def __init__(self, field: str, message: str | None = None):
    if message is None:
      field, message = "", field
    super().__init__(f"{field}: {message}" if field else message)
    self.field, self.message = field, message


def need(condition: bool, field: str, message: str) -> None:
  """Raises ConfigError(field, message) unless `condition`."""
  if not condition:
    raise ConfigError(field, message)


def _is_int(v) -> bool:
  return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def convert(value, tp, field: str):
  """`value` as the annotated type `tp` (lists become tuples, numbers their type)."""
  if dataclasses.is_dataclass(tp):
    return value if isinstance(value, tp) else from_dict(tp, value, field)
  origin, args = typing.get_origin(tp), typing.get_args(tp)
  if origin in (typing.Union, types.UnionType):
    if value is None and type(None) in args:
      return None
    (inner,) = [a for a in args if a is not type(None)]
    return convert(value, inner, field)
  if tp is Any:
    return value
  if tp is bool:
    need(isinstance(value, (bool, np.bool_)), field, f"{value!r}: expected a bool")
    return bool(value)
  if tp is int:
    need(_is_int(value) or (isinstance(value, float) and value.is_integer()), field,
         f"{value!r}: expected an int")
    return int(value)
  if tp is float:
    need(_is_int(value) or isinstance(value, (float, np.floating)), field,
         f"{value!r}: expected a number")
    return float(value)
  if tp is str:
    need(isinstance(value, str), field, f"{value!r}: expected a string")
    return value
  if origin is tuple:
    need(isinstance(value, (list, tuple)), field, f"{value!r}: expected a sequence")
    if len(args) == 2 and args[1] is Ellipsis:
      return tuple(convert(v, args[0], f"{field}[{i}]") for i, v in enumerate(value))
    need(len(value) == len(args), field, f"{tuple(value)!r}: expected {len(args)} values")
    return tuple(convert(v, a, f"{field}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
  if isinstance(tp, type):  # any other class (e.g. a FrozenConfigDict): taken as it is
    need(isinstance(value, tp), field, f"{value!r}: expected a {tp.__name__}")
    return value
  raise TypeError(f"{field}: no conversion to {tp}")


@functools.cache
def _hints(cls) -> dict:
  return typing.get_type_hints(cls)


class Typed:
  """Base of the config dataclasses (`@dataclasses.dataclass(frozen=True)` subclasses):
  made or replaced, every field is cast to its annotated type, then `check()` runs."""

  def __post_init__(self):
    hints = _hints(type(self))
    for f in dataclasses.fields(self):
      object.__setattr__(self, f.name, convert(getattr(self, f.name), hints[f.name], f.name))
    self.check()

  def check(self) -> None:
    """Checks the values (`need(condition, "field", "message")`); none by default."""


def _as_dict(cfg) -> dict:
  if cfg is None:
    return {}
  if hasattr(cfg, "to_dict"):
    return cfg.to_dict()
  if isinstance(cfg, Mapping):
    return dict(cfg)
  raise ConfigError("", f"{cfg!r}: expected a mapping of fields")


def from_dict(cls, cfg, where: str, **given):
  """`cls` from the mapping (ConfigDict or dict) `cfg`, which holds exactly cls's fields
  but those `given` (passed as they are); each value is cast to its field's annotated
  type (a nested dataclass is built the same way). Errors name `where.field`."""
  try:
    values = _as_dict(cfg)
  except ConfigError as e:
    raise ConfigError(where, e.message) from None
  names = [f.name for f in dataclasses.fields(cls) if f.init]
  for k in values:
    need(k in names and k not in given, f"{where}.{k}",
         f"unknown field; known: {sorted(set(names) - set(given))}")
  hints = _hints(cls)
  kwargs = dict(given)
  for name in names:
    if name in given:
      continue
    need(name in values, f"{where}.{name}", "missing")
    kwargs[name] = convert(values[name], hints[name], f"{where}.{name}")
  try:
    return cls(**kwargs)
  except ConfigError as e:
    raise ConfigError(f"{where}.{e.field}" if e.field else where, e.message) from None
