"""Import an Emu3 VQ-VAE from a Hugging Face checkpoint (safetensors + config.json).

Hugging Face names map onto ours by rule: list indices become name suffixes
(`encoder.down_block.down.0.block.1.conv1.weight` -> encoder/down_block/down_0/block_1/
conv1/kernel). Tensors are converted by kind:
  Conv2d weight [out, in, kh, kw]         -> kernel [kh, kw, in, out]
  Conv3d weight [out, in, kt, kh, kw]     -> kernel [kt, kh, kw, in, out]
  Linear weight [out, in]                 -> kernel [in, out]
  Embedding weight [codes, dim]           -> embedding [codes, dim]
  GroupNorm / BatchNorm weight, bias      -> scale, bias
  BatchNorm running_mean / running_var    -> batch_stats mean / var (inference mode)
Full Emu3 checkpoints (`model.vqmodel.` prefix) and bare VQ-VAE checkpoints both load.

Command line: writes the imported tokenizer as a VQ checkpoint that the trainer, the
tokenizer and pretokenization restore:
  python -m synergen_jax.weights.emu3_vq --hf_dir=D --out=W
"""

import json
import os
import re
from typing import Any, Mapping

import jax
import ml_collections
import numpy as np
from absl import flags
from flax import traverse_util
from safetensors import safe_open

from synergen_jax import cli
from synergen_jax.model.vq import config as vq_config
from synergen_jax.model.vq.tokenizer import VQTokenizer
from synergen_jax.vq_training import vq_checkpoint

_INDEX = re.compile(r"\.(\d+)(?=\.)")


def hf_key_to_path(key: str, ndim: int) -> tuple[str, tuple[str, ...]] | None:
  """(collection, path) of our variable for a HF tensor name, or None to skip it."""
  name = _INDEX.sub(r"_\1", key)
  *module, leaf = name.split(".")
  if leaf == "num_batches_tracked":
    return None
  if leaf == "running_mean":
    return "batch_stats", (*module, "mean")
  if leaf == "running_var":
    return "batch_stats", (*module, "var")
  if leaf == "bias":
    return "params", (*module, "bias")
  if leaf != "weight":
    raise ValueError(f"unexpected tensor name {key!r} in the Emu3 VQ checkpoint")
  if module[-1] == "embedding":
    return "params", (*module, "embedding")
  if ndim == 1:
    return "params", (*module, "scale")
  return "params", (*module, "kernel")


def convert_tensor(leaf: str, value: np.ndarray) -> np.ndarray:
  """PyTorch layout -> Flax layout for one tensor (see the module docstring)."""
  if leaf == "kernel":
    if value.ndim == 2:
      return value.T  # [in, out]
    return np.transpose(value, tuple(range(2, value.ndim)) + (1, 0))  # [*k, in, out]
  return value


def read_safetensors(path: str) -> dict[str, np.ndarray]:
  """All tensors of one file or of a directory's *.safetensors files, as float32 numpy."""
  if os.path.isdir(path):
    files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
    if not files:
      raise FileNotFoundError(f"no *.safetensors file in {path}")
    paths = [os.path.join(path, f) for f in files]
  else:
    paths = [path]
  out = {}
  for p in paths:
    with safe_open(p, framework="flax") as f:
      for k in f.keys():
        out[k] = np.asarray(f.get_tensor(k), dtype=np.float32)
  return out


def _strip_prefix(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Drops everything before `encoder.`/`decoder.`/`quantize.`... (e.g. `model.vqmodel.`)."""
  anchor = "quantize.embedding.weight"
  hits = [k for k in tensors if k.endswith(anchor)]
  if len(hits) != 1:
    raise ValueError(f"expected exactly one `{anchor}` tensor in the checkpoint, found {hits}")
  prefix = hits[0][: -len(anchor)]
  return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def convert_state_dict(tensors: Mapping[str, np.ndarray], cfg: Any) -> dict:
  """HF Emu3VQVAE state dict -> our variables {'params', 'batch_stats'} (numpy).

  Checks that every variable of our model is present with the right shape and that no
  tensor is left over; errors name the offending keys.
  """
  tensors = _strip_prefix(tensors)
  flat: dict[tuple[str, ...], np.ndarray] = {}
  for key, value in tensors.items():
    target = hf_key_to_path(key, value.ndim)
    if target is None:
      continue
    collection, path = target
    flat[(collection, *path)] = convert_tensor(path[-1], value)

  abstract = VQTokenizer(cfg).abstract_variables()
  expected = traverse_util.flatten_dict(jax.tree_util.tree_map(lambda a: a, abstract))
  missing = sorted(".".join(k) for k in expected if k not in flat)
  unexpected = sorted(".".join(k) for k in flat if k not in expected)
  if missing or unexpected:
    raise ValueError(
        f"Emu3 VQ checkpoint does not match the config: missing {missing[:10]}"
        f"{' ...' if len(missing) > 10 else ''}, unexpected {unexpected[:10]}"
        f"{' ...' if len(unexpected) > 10 else ''}")
  for k, spec in expected.items():
    if flat[k].shape != spec.shape:
      raise ValueError(f"Emu3 VQ checkpoint tensor {'.'.join(k)} has shape {flat[k].shape}, "
                       f"the config expects {spec.shape}")
  return traverse_util.unflatten_dict(flat)


def load_config(hf_dir: str) -> ml_collections.ConfigDict:
  """Our VQ config from `hf_dir/config.json` (a VQ-VAE or a full Emu3 config)."""
  path = os.path.join(hf_dir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: the Emu3 VQ config is needed to build the model")
  with open(path) as f:
    return vq_config.from_hf_dict(json.load(f))


def load_emu3_vq(hf_dir: str, cfg: Any = None) -> tuple[ml_collections.ConfigDict, dict]:
  """Loads an HF Emu3 VQ-VAE directory -> (our config, variables as numpy arrays)."""
  cfg = load_config(hf_dir) if cfg is None else cfg
  vq_config.validate(cfg)
  return cfg, convert_state_dict(read_safetensors(hf_dir), cfg)


@cli.command
def main(argv):
  del argv
  f = flags.FLAGS
  cfg, variables = load_emu3_vq(f.hf_dir)
  vq_checkpoint.write_imported(f.out, cfg, variables)
  print(f"wrote the Emu3 VQ tokenizer ({cfg.codebook_size} codes) to {f.out}")


def run():
  """Defines the flags (only when run as a program) and runs."""
  flags.DEFINE_string("hf_dir", None, "directory with config.json and *.safetensors")
  flags.DEFINE_string("out", None, "workdir to write the VQ checkpoint into")
  cli.run(main, required=("hf_dir", "out"))


if __name__ == "__main__":
  run()
