"""Initialising the model's VQ-code tables from the VQ tokenizer's own codebook.

  from_codebook(params, codebook, seed) -> params
  codebook_of(vq_dir) -> [codes, dim] the codebook of a VQ tokenizer workdir

The LLM side of SynerGen-VL learns its own lookup table for the VQ codes (the folding's
`fold/code_embed`, [codes, d_v]) and the unfolding head learns another
(`unfold_head/code_embed`, [codes, d_head]) and a classifier over the codes
(`unfold_head/classifier`, [d_head, codes]). From a random start the model has to learn
what every one of the codes looks like from the captions and answers alone. The VQ
tokenizer already knows: codes whose vectors are close decode to similar pixels.

`from_codebook` adds to each table (keeping its random part, which breaks symmetry) the
codebook projected to the table's width by a fixed random orthogonal map, scaled to the
table's own per-element scale: similar-looking codes start with similar embeddings and
classifier rows, and training goes on from there. The tables stay trainable parameters;
only their starting point changes. A stage asks for it with `code_embed_from_vq`.
"""

from typing import Any

import jax
import numpy as np
from flax import traverse_util

from synergen_jax.vq_training import vq_checkpoint

# (path in the params tree, which axis indexes the codes)
TABLES = ((("fold", "code_embed"), 0),
          (("unfold_head", "code_embed"), 0),
          (("unfold_head", "classifier"), 1))


def _standardised(codebook: np.ndarray) -> np.ndarray:
  """Codebook rows centred and scaled to unit mean norm (dead codes stay near the centre)."""
  cb = np.asarray(codebook, np.float64)
  cb = cb - cb.mean(axis=0, keepdims=True)
  norm = np.sqrt(np.mean(np.sum(cb**2, axis=1)))
  return cb / max(norm, 1e-12)


def _projection(d_in: int, d_out: int, rng: np.random.Generator) -> np.ndarray:
  """[d_in, d_out] with orthonormal rows (d_in <= d_out) or columns (d_in > d_out)."""
  a = rng.standard_normal((max(d_in, d_out), min(d_in, d_out)))
  q, _ = np.linalg.qr(a)  # [max, min], orthonormal columns
  return q.T if d_in <= d_out else q


def structured_table(codebook: np.ndarray, width: int, scale: float, seed: int) -> np.ndarray:
  """[codes, width]: the standardised codebook through a random orthogonal map, with
  per-element RMS `scale`."""
  cb = _standardised(codebook)
  proj = _projection(cb.shape[1], width, np.random.default_rng(seed))
  table = cb @ proj
  rms = np.sqrt(np.mean(table**2))
  return table * (scale / max(rms, 1e-12))


def from_codebook(params: Any, codebook: np.ndarray, seed: int = 0) -> Any:
  """`params` with every table of TABLES = its own values + the structured codebook table
  at the same RMS; shardings of the given arrays are kept."""
  codebook = np.asarray(codebook)
  flat = traverse_util.flatten_dict(params, is_leaf=lambda _, x: not isinstance(x, dict))
  out = dict(flat)
  for i, (path, axis) in enumerate(TABLES):
    if path not in flat:
      raise ValueError(f"params have no {'/'.join(path)} table to initialise from the VQ "
                       "codebook")
    x = flat[path]
    if x.shape[axis] != codebook.shape[0]:
      raise ValueError(f"{'/'.join(path)} has {x.shape[axis]} codes, the VQ codebook has "
                       f"{codebook.shape[0]} (model.codebook_size must match the tokenizer)")
    host = np.asarray(jax.device_get(x), np.float64)
    table = host if axis == 0 else host.T
    scale = float(np.sqrt(np.mean(table**2)))
    add = structured_table(codebook, table.shape[1], scale, seed + i)
    new = (table + add) if axis == 0 else (table + add).T
    new = new.astype(x.dtype)
    sharding = getattr(x, "sharding", None)
    out[path] = jax.device_put(new, sharding) if sharding is not None else new
  return traverse_util.unflatten_dict(out)


def codebook_of(vq_dir: str) -> np.ndarray:
  """[codes, dim] codebook vectors of the VQ tokenizer in `vq_dir` (trained or imported)."""
  _, variables, _ = vq_checkpoint.load_tokenizer(vq_dir)
  return np.asarray(variables["params"]["quantize"]["embedding"]["embedding"])
