"""Model configs as code (ml_collections); experiments in `experiments/` build on them."""
