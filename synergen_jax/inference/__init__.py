"""Inference: sampling, KV-cache text decoding, folded image generation with CFG."""
