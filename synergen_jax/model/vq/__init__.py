"""The Emu3 VQ image tokenizer (encoder, quantiser, decoder) in Flax Linen.

`VQTokenizer` is the entry point (uint8 images <-> int32 codes); `VQVAE` is the module;
`config` holds the sizes (real Emu3 and tiny CPU instances).
"""

from synergen_jax.model.vq import config
from synergen_jax.model.vq.tokenizer import VQTokenizer, data_mesh, float_to_images, images_to_float
from synergen_jax.model.vq.vqvae import VQVAE

__all__ = ["VQTokenizer", "VQVAE", "config", "data_mesh", "float_to_images", "images_to_float"]
