"""Training of the main model: optimizer, schedules, stage freezing, train step, trainer
loop, checkpoints. The VQ tokenizer's trainer is `synergen_jax.vq_training`."""
