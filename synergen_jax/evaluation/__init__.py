"""Evaluation of a trained workdir: VQA exact match, GenEval-style generation scores,
text-skill retention (`python -m synergen_jax.evaluate`)."""
