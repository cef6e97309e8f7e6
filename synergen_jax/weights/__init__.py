"""Importers of pretrained weights into synergen-jax parameters (Emu3 VQ, HF LLMs)."""
