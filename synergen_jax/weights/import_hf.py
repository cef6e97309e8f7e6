"""Command line: a Hugging Face LLM directory -> the params checkpoint a stage-1 run starts from.

  python -m synergen_jax.weights.import_hf --hf_dir=D --config=experiments/X.py --out=W \\
      [--derive_model] [--new_token_init=mean|model] [--config.model.field=value ...]

Reads D/config.json (Qwen2, Llama or InternLM2) and checks the experiment's `config.model`
against it (a mismatch is an error naming both fields), or with `--derive_model` takes
the LLM fields from it. Builds the mesh of `config.mesh.shape` on the present devices,
imports the weights straight into their shardings (`import_llm`) and writes them with
`param_checkpoint.save_params(W, params)`: an Orbax StandardCheckpointer directory holding the
unboxed `params` collection of SynerGenVL (the dict with `text_embed`, `decoder`, ...,
not wrapped in {"params": ...}). Also loads the LLM's tokenizer to check it fits the
model's text vocabulary.
"""

import os

from absl import flags
from ml_collections import config_flags

from synergen_jax import cli, param_checkpoint, sharding
from synergen_jax.model import ModelConfig
from synergen_jax.weights import hf_config, hf_files, hf_tokenizer, import_llm


def model_config_for(experiment, hf_dir: str, derive: bool = False) -> ModelConfig:
  """The experiment's ModelConfig, checked against (or derived from) hf_dir/config.json."""
  spec = hf_config.hf_llm_spec(hf_files.read_config(hf_dir))
  return ModelConfig.from_config_dict(hf_config.reconcile(experiment.model, spec, derive))


def import_to_checkpoint(hf_dir: str, experiment, out: str, derive: bool = False,
                         new_token_init: str = "mean") -> import_llm.ImportSummary:
  """Imports `hf_dir` for `experiment` (a ConfigDict with .model, .mesh, .seed) into `out`."""
  if os.path.exists(out):
    raise FileExistsError(f"--out={out} already exists; refusing to overwrite")
  config = model_config_for(experiment, hf_dir, derive)
  mesh_shape = tuple(experiment.get("mesh", {}).get("shape", (1, -1, 1)))
  mesh = sharding.make_mesh(mesh_shape)
  params, summary = import_llm.import_llm_params(
      hf_dir, config, mesh, seed=int(experiment.get("seed", 0)),
      new_token_init=new_token_init)
  param_checkpoint.save_params(out, params)
  return summary


@cli.command
def main(argv):
  del argv
  f = flags.FLAGS
  experiment, hf_dir, out, derive = f.config, f.hf_dir, f.out, f.derive_model
  config = model_config_for(experiment, hf_dir, derive)
  try:
    tok = hf_tokenizer.load_hf_tokenizer(hf_dir, text_vocab_size=config.vocab_size)
    print(f"tokenizer {tok.name}: {tok.sp_size} ids, text vocab {tok.text_vocab_size}")
  except FileNotFoundError as e:
    print(f"warning: {e}")
  summary = import_to_checkpoint(hf_dir, experiment, out, derive, f.new_token_init)
  print(f"imported {summary.family} ({summary.num_tensors} tensors, vocab "
        f"{summary.hf_vocab_size} -> {summary.vocab_size}) into {out}")
  print("initialised by the model: " + ", ".join(
      sorted({p.split("/")[0] for p in summary.initialised})))
  if derive:
    llm = {k: getattr(config, k) for k in hf_config.hf_llm_spec(
        hf_files.read_config(hf_dir)).fields}
    print("derived model fields: " + ", ".join(f"{k}={v!r}" for k, v in llm.items()))


def run():
  """Defines the flags (only when run as a program) and runs."""
  config_flags.DEFINE_config_file("config", None, "Experiment config file.")
  flags.DEFINE_string("hf_dir", None, "HF model directory (config.json + safetensors)")
  flags.DEFINE_string("out", None, "params checkpoint directory to create")
  flags.DEFINE_bool("derive_model", False, "take the LLM fields of config.model from config.json")
  flags.DEFINE_enum("new_token_init", "mean", import_llm.NEW_TOKEN_INITS,
                    "initialisation of the new special tokens")
  cli.run(main, required=("config", "hf_dir", "out"))


if __name__ == "__main__":
  run()
