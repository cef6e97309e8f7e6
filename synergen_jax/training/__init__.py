"""Training: optimizer, schedules, stage freezing, train step, trainer loops, checkpoints,
metrics (main model), and the VQ tokenizer's trainer (`vq_*` modules)."""
