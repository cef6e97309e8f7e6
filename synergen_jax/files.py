"""Atomic file writes: a temporary file next to the target, then a rename.

  write_atomic(path, data)          str or bytes
  write_json(path, obj, **kwargs)   json.dumps(obj, indent=2, **kwargs)

An interrupted writer (SIGTERM, SIGKILL, preemption) leaves either the old file or the
new one, never a truncated file that a rerun would trust (a run skips what its files say
is done).
"""

import json
import os


def write_atomic(path: str, data: str | bytes) -> None:
  tmp = os.fspath(path) + ".tmp"
  with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
    f.write(data)
  os.replace(tmp, path)


def write_json(path: str, obj, **kwargs) -> None:
  write_atomic(path, json.dumps(obj, indent=2, **kwargs))
