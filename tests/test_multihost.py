"""Multi-host: the trainer in 2 processes x 4 CPU devices under jax.distributed gives the
losses of 1 process x 8 devices.

`python -m synergen_jax.train --multihost` on the tiny experiment (a text stage and a
multimodal stage, gradient accumulation over 2 micro-batches, a (1, 2, 4) mesh): each
process reads its own input stream of every task (`config.train.input_streams = 2`) and
feeds only the rows its devices hold; both write one workdir (metrics and reports from
process 0, Orbax checkpoints from both).
"""

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = pytest.mark.slow  # three trainer processes


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _finish(proc, timeout=300):
  try:
    out, _ = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    out, _ = proc.communicate()
  assert proc.returncode == 0, f"trainer failed ({proc.returncode}):\n{out[-4000:]}"


EXPERIMENT = """
from experiments import tiny


def get_config():
  config = tiny.get_config()
  config.model.vocab_size = {vocab}
  config.tokenizer = "{data}/tokenizer.model"
  config.data.source.data_dir = "{data}/tfds"
  config.data.pretokenized_dir = "{data}/pretokenized"
  config.mesh.shape = (1, 2, 4)
  for stage in config.stage_order:
    config.stages[stage].grad_accum_steps = 2
  config.train.input_streams = 2
  config.train.compilation_cache = False
  config.train.async_checkpoints = False
  config.train.xla_compiler_options = {{"xla_backend_optimization_level": 0}}
  return config
"""


def _train(config_file, workdir, devices, num_processes=1, process_id=0, port=0):
  """`synergen_jax.train` on `config_file` (EXPERIMENT), alone or as one of N processes."""
  flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "",
                 os.environ.get("XLA_FLAGS", ""))
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count={devices}".strip())
  env.pop("JAX_COMPILATION_CACHE_DIR", None)  # each process compiles its own programs
  cmd = [sys.executable, "-m", "synergen_jax.train", f"--config={config_file}",
         f"--workdir={workdir}"]
  if num_processes > 1:
    cmd += ["--multihost", f"--coordinator_address=localhost:{port}",
            f"--num_processes={num_processes}", f"--process_id={process_id}"]
  return subprocess.Popen(cmd, env=env, cwd=os.path.join(HERE, ".."), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _metrics(workdir, stage):
  with open(os.path.join(workdir, stage, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  train = [(r["step"], r["train/loss"], r["train/grad_norm"]) for r in rows if "train/loss" in r]
  data = [{k: v for k, v in r.items() if k.startswith("data/")} for r in rows
          if "train/loss" in r]
  with open(os.path.join(workdir, stage, "summary.json")) as f:
    validation = json.load(f)["validation"]
  return train, validation, data


def test_trainer_two_processes_match_one_process(tmp_path, tmp_path_factory):
  """The whole trainer (data pipelines, state, step, validation, checkpoints) under
  jax.distributed, 2 processes x 4 devices, gives the losses of 1 process x 8 devices."""
  from tests import tiny_run
  data, vocab = tiny_run.data(tmp_path_factory)  # the session's tiny data, read only
  config_file = tmp_path / "tiny_two_streams.py"
  config_file.write_text(EXPERIMENT.format(vocab=vocab, data=data))
  port = _free_port()
  multi, single = tmp_path / "multi", tmp_path / "single"
  procs = [_train(config_file, multi, 4, 2, i, port) for i in range(2)]
  procs.append(_train(config_file, single, 8))
  for p in procs:
    _finish(p, timeout=600)
  for stage in ("text", "stage1"):
    train_m, val_m, data_m = _metrics(multi, stage)
    train_s, val_s, data_s = _metrics(single, stage)
    # The data counters are of the global batch: summed over the two processes' streams.
    assert data_m == data_s and all(d[f"data/{t}/examples"] > 0 for d in data_s
                                    for t in (("text",) if stage == "text" else
                                              ("understanding", "generation")))
    assert [r[0] for r in train_m] == [r[0] for r in train_s] == [2, 4]
    np.testing.assert_allclose([r[1:] for r in train_m], [r[1:] for r in train_s],
                               rtol=2e-5, atol=1e-6)
    assert len({round(r[1], 4) for r in train_s}) == 2  # training moves
    assert set(val_m) == set(val_s) and "multimodal/loss" in val_s
    for k, v in val_s.items():
      np.testing.assert_allclose(val_m[k], v, rtol=2e-5, atol=1e-6, err_msg=k)
  # Both processes wrote one checkpointed workdir: the final params of the last stage.
  assert os.path.isdir(multi / "stage1" / "params")
