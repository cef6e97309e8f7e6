"""Robust image decoding and the generation-side resize.

  decode_image(data) -> uint8 [H, W, 3]      bytes (PNG/JPEG/...), PIL image or array
  resize_center_crop(image, size) -> uint8 [size, size, 3]

Handles RGB, RGBA / LA (composited on white), grayscale, palette (with or without
transparency), CMYK and 16-bit / 32-bit integer images (rescaled to 8 bits).
Anything undecodable, empty or zero-size raises `ImageDecodeError` with the reason,
so pipelines can skip the record and count it.
"""

import io

import numpy as np
import PIL.Image

PIL.Image.MAX_IMAGE_PIXELS = 1 << 28  # refuse decompression bombs beyond ~268 MP


class ImageDecodeError(ValueError):
  """The record's image cannot be turned into an RGB uint8 array."""
  reason = "undecodable_image"  # its skip-count key (like sources.SourceError's)


def _to_uint8(a: np.ndarray) -> np.ndarray:
  if a.dtype == np.uint8:
    return a
  if a.dtype == bool:
    return a.astype(np.uint8) * 255
  if np.issubdtype(a.dtype, np.floating):
    a = np.nan_to_num(a.astype(np.float32))
    scale = 255.0 if a.max(initial=0.0) <= 1.0 else 1.0
    return np.clip(a * scale, 0, 255).astype(np.uint8)
  if np.issubdtype(a.dtype, np.integer):
    bits = 16 if a.max(initial=0) > 255 or a.dtype.itemsize == 2 else 8
    if a.max(initial=0) >= (1 << 16):
      bits = 32
    return np.clip(a.astype(np.int64) >> (bits - 8), 0, 255).astype(np.uint8)
  raise ImageDecodeError(f"unsupported pixel dtype {a.dtype}")


def _array_to_rgb(a: np.ndarray) -> np.ndarray:
  a = _to_uint8(np.asarray(a))
  if a.ndim == 2:
    a = a[..., None]
  if a.ndim != 3:
    raise ImageDecodeError(f"image array must be [H, W] or [H, W, C], got shape {a.shape}")
  c = a.shape[-1]
  if c == 1:
    return np.repeat(a, 3, axis=-1)
  if c == 2:  # gray + alpha
    return _composite(np.repeat(a[..., :1], 3, axis=-1), a[..., 1])
  if c == 3:
    return a
  if c == 4:
    return _composite(a[..., :3], a[..., 3])
  raise ImageDecodeError(f"image has {c} channels; expected 1, 2, 3 or 4")


def _composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
  """Alpha-composites on white. rgb [H, W, 3] uint8, alpha [H, W] uint8."""
  a = alpha.astype(np.float32)[..., None] / 255.0
  out = rgb.astype(np.float32) * a + 255.0 * (1.0 - a)
  return np.round(out).astype(np.uint8)


def _pil_to_rgb(img: PIL.Image.Image) -> np.ndarray:
  mode = img.mode
  if mode == "P":
    img = img.convert("RGBA" if "transparency" in img.info else "RGB")
  elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
    img = img.convert("RGB")
  elif mode == "1":
    img = img.convert("L")
  elif mode == "PA":
    img = img.convert("RGBA")
  if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
    return _array_to_rgb(np.asarray(img, dtype=np.uint16))
  if img.mode == "I":
    return _array_to_rgb(np.asarray(img, dtype=np.int32).clip(0))
  if img.mode == "F":
    return _array_to_rgb(np.asarray(img, dtype=np.float32))
  return _array_to_rgb(np.asarray(img))


def decode_image(data) -> np.ndarray:
  """Any supported image input -> uint8 [H, W, 3]; raises ImageDecodeError."""
  try:
    if isinstance(data, (bytes, bytearray, memoryview)):
      if len(data) == 0:
        raise ImageDecodeError("empty image bytes")
      with PIL.Image.open(io.BytesIO(bytes(data))) as img:
        img.load()
        rgb = _pil_to_rgb(img)
    elif isinstance(data, PIL.Image.Image):
      rgb = _pil_to_rgb(data)
    elif isinstance(data, np.ndarray):
      rgb = _array_to_rgb(data)
    else:
      raise ImageDecodeError(f"unsupported image value of type {type(data).__name__}")
  except ImageDecodeError:
    raise
  except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as e:
    raise ImageDecodeError(f"cannot decode image: {e}") from e
  if rgb.shape[0] == 0 or rgb.shape[1] == 0:
    raise ImageDecodeError(f"zero-size image {rgb.shape}")
  return np.ascontiguousarray(rgb)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
  """Bicubic resize of uint8 [H, W, 3] to [height, width, 3] (no-op if same size)."""
  if image.shape[1] == width and image.shape[0] == height:
    return image
  return np.asarray(PIL.Image.fromarray(image).resize((width, height), PIL.Image.BICUBIC))


def resize_center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """Short edge resized to `size`, long edge centre-cropped: uint8 [size, size, 3]."""
  h, w = image.shape[:2]
  scale = size / min(h, w)
  nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
  img = resize(image, nw, nh)
  x0, y0 = (nw - size) // 2, (nh - size) // 2
  return np.ascontiguousarray(img[y0:y0 + size, x0:x0 + size])
