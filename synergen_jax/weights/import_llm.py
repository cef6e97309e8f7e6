"""A pretrained HF LLM (Qwen2 / Llama / InternLM2) -> SynerGenVL parameters on a mesh.

What each parameter becomes:
- LLM parameters (embedding, attention, norms, text FFN, final norm, untied LM head):
  the HF tensors, converted by `hf_layout` and stacked over layers.
- Every layer's vision FFN expert: an exact copy of its text FFN (the paper's init).
- Padded vocabulary rows (HF vocab -> multiple of 128): zeros in the embedding and the
  LM head (a padded id is never an input; its logit is exactly 0).
- New special tokens (`new_token_embed`, and `new_token_head` when untied), by
  `new_token_init`:
    "mean"  (default) every new token = the mean of the HF input-embedding rows (and of
            the LM-head columns). A mean embedding is a typical, in-distribution input,
            and a mean output column gives each new token the average logit, so the
            LLM's text distribution barely moves at the start (Hewitt, 2021).
    "model" the model's own initialiser (normal(0.02) / fan-in), like the vision parts.
- Vision parts (`fold/...`, `unfold_head/...`): the model's own initialisers, with
  `jax.random.key(seed)` (the same values as `SynerGenVL.init`); computed inside one jit
  that builds and outputs only them, so no LLM-sized random init is materialised.

Memory: HF tensors are read one at a time (memory-mapped safetensors); each stacked
parameter [layers, ...] is assembled in one host buffer, placed onto its target
sharding with `jax.make_array_from_callback` (each device gets only its shard) and
freed before the next, so host RAM beyond the placed parameters is about one stacked
parameter (plus one HF tensor).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from synergen_jax import model_init
from synergen_jax import sharding
from synergen_jax.model import ModelConfig, SynerGenVL
from synergen_jax.weights import hf_config, hf_files, hf_layout, param_paths

NEW_TOKEN_INITS = ("mean", "model")
_NEW_EMBED, _NEW_HEAD = ("new_token_embed",), ("new_token_head",)


@dataclasses.dataclass(frozen=True)
class ImportSummary:
  family: str
  hf_vocab_size: int
  vocab_size: int
  num_tensors: int
  initialised: tuple[str, ...]


def check_config(config: ModelConfig, spec: hf_config.HFLLMSpec) -> None:
  """Raises ValueError naming the field if the model config disagrees with config.json."""
  hf_config.reconcile(dataclasses.asdict(config), spec, derive=False)


def _place(host: np.ndarray, abstract: jax.ShapeDtypeStruct) -> jax.Array:
  """Host buffer -> a global array with the abstract's sharding (each shard copied)."""
  return jax.make_array_from_callback(abstract.shape, abstract.sharding,
                                      lambda index: np.ascontiguousarray(host[index]))


def _vision_init(m, config: ModelConfig):
  """Runs only the parts the import does not fill: token folding and the unfolding head.

  (`init` with this method creates the setup-level parameters, the fold and the head;
  flax derives each parameter's key from its module path, so the values equal those
  of a full `SynerGenVL.init` with the same key, while the decoder is never built.)
  """
  codes = jnp.zeros((1, 1, config.patch_size), jnp.int32)
  x = m.fold(codes, jnp.zeros((1, 1), jnp.int32))  # [1, 1, embed]
  return m.unfold_head(x[:, 0], codes[:, 0])


@functools.lru_cache(maxsize=8)
def _init_jit(config: ModelConfig, paths: tuple, shardings: tuple):
  """Jitted key -> {path: value} of `paths` only (everything else is dead code)."""
  model = SynerGenVL(config)

  def select(key):
    variables = model.init(key, method=functools.partial(_vision_init, config=config))
    flat = param_paths.flatten(sharding.unbox(variables)["params"])
    return tuple(flat[p] for p in paths)

  return jax.jit(select, out_shardings=shardings)


def _initialised(config: ModelConfig, abstract: dict, paths: list, seed: int,
                 mesh: jax.sharding.Mesh) -> dict:
  """The model's own init of `paths` (vision parts), placed with their shardings."""
  if not paths:
    return {}
  paths = tuple(paths)
  fn = _init_jit(config, paths, tuple(abstract[p].sharding for p in paths))
  with sharding.mesh_context(mesh):
    values = fn(jax.random.key(seed))
  return dict(zip(paths, values))


class _Converter:
  """Reads HF tensors and converts them to our layout, checking shapes."""

  def __init__(self, reader: hf_files.SafetensorsReader, shapes: hf_layout.Shapes):
    self.reader = reader
    self.shapes = shapes
    self.used: set[str] = set()

  def get(self, rule: hf_layout.Rule, expected: tuple[int, ...], layer: int | None = None):
    name = rule.name.format(l=layer)
    self.used.add(name)
    w = hf_layout.to_ours(rule.kind, self.reader.get(name), self.shapes)
    if tuple(w.shape) != tuple(expected):
      raise ValueError(f"tensor {name!r} in {self.reader.file_of(name)} converts to shape "
                       f"{tuple(w.shape)}, our model expects {tuple(expected)}")
    return w


def _check_names(reader, hf_dir, top_rules, layer_rules, config: ModelConfig) -> None:
  """Before reading anything: every tensor we need is there, and none would be dropped."""
  expected = {r.name for r in top_rules.values()} | {
      r.name.format(l=i) for r in layer_rules.values() for i in range(config.num_layers)}
  have = set(reader.names())
  missing = sorted(expected - have)
  if missing:
    raise ValueError(f"the checkpoint {hf_dir} lacks tensors the model needs: "
                     f"{missing[:8]}{' ...' if len(missing) > 8 else ''}")
  tied_heads = ("lm_head.weight", "output.weight") if config.tie_embeddings else ()
  leftover = sorted(n for n in have - expected
                    if not n.endswith(hf_layout.IGNORED_SUFFIXES) and n not in tied_heads)
  if leftover:
    raise ValueError(f"the checkpoint {hf_dir} has tensors the importer does not map: "
                     f"{leftover[:8]}{' ...' if len(leftover) > 8 else ''}")


def import_llm_params(hf_dir: str, config: ModelConfig, mesh: jax.sharding.Mesh, *,
                      seed: int = 0, new_token_init: str = "mean") -> tuple[dict, ImportSummary]:
  """Imports `hf_dir` into SynerGenVL(config) parameters placed on `mesh`.

  Returns (params: the unboxed `params` collection as global jax arrays with the
  model's target shardings, a summary). Raises ValueError naming the field / tensor /
  file on any mismatch, and if the checkpoint holds tensors we would silently drop.
  """
  if new_token_init not in NEW_TOKEN_INITS:
    raise ValueError(f"new_token_init={new_token_init!r}: expected one of {NEW_TOKEN_INITS}")
  spec = hf_config.hf_llm_spec(hf_files.read_config(hf_dir))
  check_config(config, spec)
  abstract_tree = model_init.with_shardings(*model_init.abstract_params(config, mesh))
  abstract = param_paths.flatten(abstract_tree)
  shapes = hf_layout.Shapes(config.embed_dim, config.num_heads, config.num_kv_heads,
                            config.head_dim)
  layer_rules = hf_layout.layer_rules(spec.family, config.qkv_bias)
  top_rules = hf_layout.top_rules(spec.family, config.tie_embeddings)
  imported = set(top_rules) | {hf_layout.LAYER_PREFIX + p for p in layer_rules}
  if config.vision_experts:
    imported |= {hf_layout.LAYER_PREFIX + hf_layout.VISION_FFN + p[2:]
                 for p in layer_rules if p[:2] == hf_layout.TEXT_FFN}
  if new_token_init == "mean":
    imported |= {p for p in (_NEW_EMBED, _NEW_HEAD) if p in abstract}
  missing = sorted(param_paths.path_str(p) for p in imported if p not in abstract)
  if missing:
    raise ValueError(f"internal: the model has no parameters {missing}")

  with hf_files.SafetensorsReader(hf_dir) as reader:  # fail fast, before any work
    _check_names(reader, hf_dir, top_rules, layer_rules, config)
  params = _initialised(config, abstract, sorted(p for p in abstract if p not in imported),
                        seed, mesh)
  dtype = config.params_dtype
  hf_vocab = spec.hf_vocab_size
  with hf_files.SafetensorsReader(hf_dir) as reader:
    conv = _Converter(reader, shapes)
    for path, rule in top_rules.items():
      want = abstract[path]
      host = np.zeros(want.shape, dtype)
      unpadded = {("text_embed",): (hf_vocab, config.embed_dim),
                  ("lm_head",): (config.embed_dim, hf_vocab)}.get(path, want.shape)
      w = conv.get(rule, unpadded)
      if path == ("text_embed",):
        host[:hf_vocab] = w
        mean_rows = w.mean(axis=0)  # [E]
      elif path == ("lm_head",):
        host[:, :hf_vocab] = w
        mean_cols = w.mean(axis=1, keepdims=True)  # [E, 1]
      else:
        host[...] = w
      params[path] = _place(host, want)
      del host, w
    if new_token_init == "mean":
      params[_NEW_EMBED] = _place(
          np.broadcast_to(mean_rows, abstract[_NEW_EMBED].shape).astype(dtype),
          abstract[_NEW_EMBED])
      if _NEW_HEAD in abstract:
        params[_NEW_HEAD] = _place(
            np.broadcast_to(mean_cols, abstract[_NEW_HEAD].shape).astype(dtype),
            abstract[_NEW_HEAD])

    for rel, rule in layer_rules.items():
      path = hf_layout.LAYER_PREFIX + rel
      want = abstract[path]
      host = np.empty(want.shape, dtype)  # [layers, ...]
      for layer in range(config.num_layers):
        host[layer] = conv.get(rule, want.shape[1:], layer)
      params[path] = _place(host, want)
      if config.vision_experts and rel[:2] == hf_layout.TEXT_FFN:
        vision = hf_layout.LAYER_PREFIX + hf_layout.VISION_FFN + rel[2:]
        params[vision] = _place(host, abstract[vision])  # a copy, not an alias
      del host

    num_tensors = len(conv.used)

  initialised = tuple(sorted(param_paths.path_str(p) for p in abstract if p not in imported))
  summary = ImportSummary(spec.family, hf_vocab, config.vocab_size, num_tensors, initialised)
  return param_paths.unflatten(params), summary
