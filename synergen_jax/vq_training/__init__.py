"""Training of the VQ image tokenizer (`python -m synergen_jax.train_vq`).

  config.py         the experiment resolved into typed frozen dataclasses (`resolve`):
                    every field, its default and its checks
  trainer.py        `VQTrainer`: state, the jitted data-parallel step, its loop hooks
  losses.py         reconstruction / gradient / adversarial losses, codebook statistics
  data.py           scene images rendered on the fly by (seed, step)
  eval.py           validation metrics (PSNR, codebook usage, object recovery)
  vq_checkpoint.py  the VQ workdir's Orbax checkpoints (`load_tokenizer` for its users)

Shared with the main trainer: the loop (`synergen_jax/loop.py`: hooks, phase timers,
the preemption check), the metrics writer (`synergen_jax/metrics_log.py`), the
preemption test hook (`synergen_jax/preemption.py`), the mesh (`synergen_jax/sharding.py`)
and `experiment.ConfigError`. Nothing in `model/` or `data_pipelines/` imports
this package.
"""
