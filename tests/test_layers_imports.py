"""The import layering of the project (docs/ARCHITECTURE.md, "Layers"), read from the
source with `ast`: every module belongs to one component, and a component imports only
itself and the components before it in `ORDER`, at module level or inside functions. A
linear order also means no import cycle between components (nor between modules)."""

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("synergen_jax", "data_pipelines")

# Bottom to top. A component is a module or a package (all modules under it).
ORDER = (
    # leaves: no project imports but each other
    "synergen_jax.batch", "synergen_jax.image_grid", "synergen_jax.special_tokens",
    "synergen_jax.files", "synergen_jax.hardware", "synergen_jax.preemption", "synergen_jax.cli",
    "synergen_jax.metrics_log", "synergen_jax.typed_config", "synergen_jax.loop",
    # the model and its placement
    "synergen_jax.sharding", "synergen_jax.model", "synergen_jax.configs",
    "synergen_jax.param_checkpoint", "synergen_jax.tokenizer",
    # data (never the model): the embedded world and the raw sources (independent of each
    # other), the data config, the pipeline, then the command lines (build, pretokenize)
    "data_pipelines.scenes", "data_pipelines.sources", "data_pipelines.config",
    "data_pipelines.pipeline", "data_pipelines",
    # what an experiment is and what a stage holds
    "synergen_jax.model_init", "synergen_jax.state", "synergen_jax.experiment",
    # VQ tokenizer training and workdirs, imported weights, the workdir reader
    "synergen_jax.vq_training", "synergen_jax.vq_encoder", "synergen_jax.weights",
    "synergen_jax.workdir",
    # the applications
    "synergen_jax.training", "synergen_jax.tpu", "synergen_jax.inference",
    "synergen_jax.evaluation", "synergen_jax.count_params",
    # command lines
    "synergen_jax.train", "synergen_jax.train_vq", "synergen_jax.evaluate",
    "synergen_jax.generate", "synergen_jax.answer", "synergen_jax.demo_phases",
    "synergen_jax.demo",
    "synergen_jax",
)


def _modules() -> dict[str, str]:
  out = {}
  for pkg in PACKAGES:
    for d, _, files in os.walk(os.path.join(REPO, pkg)):
      for f in files:
        if f.endswith(".py"):
          name = os.path.relpath(os.path.join(d, f), REPO)[:-3].replace(os.sep, ".")
          out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = \
              os.path.join(d, f)
  return out


def _component(module: str) -> str:
  best = max((c for c in ORDER if module == c or module.startswith(c + ".")), key=len,
             default=None)
  assert best is not None, f"{module} is in no component of ORDER: place it"
  return best


def _imports(path: str, modules) -> set[str]:
  found = set()
  for node in ast.walk(ast.parse(open(path).read())):
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      # `from package import module` imports the module (and runs the package's
      # __init__, which is not counted as an import of the package's component)
      names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
               else node.module for a in node.names]
    for n in names:
      while n and n not in modules:
        n = n.rpartition(".")[0]
      if n:
        found.add(n)
  return found


def test_every_component_imports_only_itself_and_components_below_it():
  modules = _modules()
  rank = {c: i for i, c in enumerate(ORDER)}
  upward = []
  for m, path in sorted(modules.items()):
    here = _component(m)
    for target in sorted(_imports(path, modules)):
      there = _component(target)
      if rank[there] > rank[here] and there != "synergen_jax":
        upward.append(f"{m} imports {target} ({there} is above {here})")
  assert not upward, "\n".join(upward)


def test_the_model_and_the_data_pipelines_stay_independent():
  modules = _modules()
  for m, path in modules.items():
    targets = {_component(t) for t in _imports(path, modules)}
    if _component(m).startswith("data_pipelines"):
      assert "synergen_jax.model" not in targets, f"{m} imports the model"
    if _component(m) == "synergen_jax.model":
      assert not any(t.startswith("data_pipelines") for t in targets), \
          f"{m} imports data_pipelines"


def test_the_embedded_world_and_the_raw_sources_import_no_other_data_package():
  modules = _modules()
  for m, path in modules.items():
    here = _component(m)
    if here in ("data_pipelines.scenes", "data_pipelines.sources"):
      others = {_component(t) for t in _imports(path, modules)
                if t.startswith("data_pipelines")} - {here}
      assert not others, f"{m} imports {sorted(others)}"
