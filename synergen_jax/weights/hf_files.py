"""Reading a Hugging Face checkpoint directory: `config.json` + safetensors, one tensor at a time.

A directory holds either one `model.safetensors` or shards listed by
`model.safetensors.index.json` (`{"weight_map": {tensor name: file name}}`). Tensors are
read lazily through `safetensors.safe_open` (memory-mapped), one per call, so importing a
large model never holds more than the tensors being converted. Every dtype safetensors
stores (including bfloat16) comes back as a float32 numpy array.
"""

import json
import os
from typing import Any

import jax
import numpy as np
from safetensors import safe_open

CONFIG_FILE = "config.json"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


def read_json(path: str, what: str) -> dict[str, Any]:
  """Parses a JSON file; errors name the file and what it was needed for."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: {what}")
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not valid JSON ({e})") from e


def read_config(hf_dir: str) -> dict[str, Any]:
  """The model's `config.json` as a dict."""
  return read_json(os.path.join(hf_dir, CONFIG_FILE),
                   "the Hugging Face config.json describing the model")


def _weight_map(hf_dir: str) -> dict[str, str]:
  """{tensor name: file path} for a single-file or sharded checkpoint."""
  index = os.path.join(hf_dir, INDEX_FILE)
  single = os.path.join(hf_dir, SINGLE_FILE)
  if os.path.isfile(index):
    data = read_json(index, "the safetensors shard index")
    if not isinstance(data.get("weight_map"), dict):
      raise ValueError(f"{index}: expected a 'weight_map' object of tensor name -> file")
    return {k: os.path.join(hf_dir, v) for k, v in data["weight_map"].items()}
  if os.path.isfile(single):
    with safe_open(single, framework="numpy") as f:
      return {k: single for k in f.keys()}
  found = sorted(x for x in os.listdir(hf_dir) if x.endswith((".bin", ".pt", ".pth")))
  hint = (f"; found {found} (pickle-based PyTorch files are not read: convert them to "
          "safetensors first)") if found else ""
  raise FileNotFoundError(f"no {SINGLE_FILE} or {INDEX_FILE} in {hf_dir}{hint}")


class SafetensorsReader:
  """Lazy access to the tensors of an HF checkpoint directory.

  `get(name)` -> float32 numpy array (a fresh copy; nothing else stays in memory but
  the open, memory-mapped file handles). Use as a context manager to close them.
  """

  def __init__(self, hf_dir: str):
    self.hf_dir = hf_dir
    self._files = _weight_map(hf_dir)
    self._handles: dict[str, Any] = {}
    self._cpu = jax.local_devices(backend="cpu")[0]
    for path in sorted(set(self._files.values())):
      if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} (listed in {INDEX_FILE}) not found")

  def __enter__(self) -> "SafetensorsReader":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def close(self) -> None:
    for h in self._handles.values():
      h.__exit__(None, None, None)
    self._handles.clear()

  def names(self) -> list[str]:
    return sorted(self._files)

  def __contains__(self, name: str) -> bool:
    return name in self._files

  def file_of(self, name: str) -> str:
    if name not in self._files:
      raise KeyError(f"tensor {name!r} not found in the checkpoint {self.hf_dir}")
    return self._files[name]

  def _handle(self, path: str):
    if path not in self._handles:
      # The flax framework reads every dtype (numpy has no bfloat16); keep it on the host.
      h = safe_open(path, framework="flax")
      self._handles[path] = h.__enter__()
    return self._handles[path]

  def shape(self, name: str) -> tuple[int, ...]:
    return tuple(self._handle(self.file_of(name)).get_slice(name).get_shape())

  def get(self, name: str) -> np.ndarray:
    """One tensor as float32 numpy (its HF/PyTorch layout)."""
    with jax.default_device(self._cpu):
      t = self._handle(self.file_of(name)).get_tensor(name)
    return np.array(t, dtype=np.float32)
