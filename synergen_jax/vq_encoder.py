"""A VQ workdir as the encoder of offline pretokenization (docs/DATA.md).

  python -m data_pipelines.pretokenize --encoder=synergen_jax.vq_encoder:from_workdir \
      --encoder_arg=W_VQ --data.vq_downsample=8 ...

`W_VQ` is a VQ workdir: trained (`python -m synergen_jax.train_vq`) or imported Emu3
weights (`python -m synergen_jax.weights.emu3_vq --hf_dir=D --out=W_VQ`).
"""

from synergen_jax.vq_training import vq_checkpoint


def from_workdir(workdir: str):
  """uint8 images [B, H, W, 3] -> int32 codes [B, H/f, W/f] with the VQ in `workdir`
  (its latest checkpoint), data-parallel over the local devices."""
  tok, variables, _ = vq_checkpoint.load_tokenizer(workdir)
  return tok.batch_encoder(variables)
