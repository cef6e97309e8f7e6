"""Images in and out of the API: data URLs -> uint8 RGB arrays (with limits), PNGs out.

Only `data:image/...;base64,` URLs are accepted: the server never fetches a URL and never
opens a path. The pixel limit is checked from the header, before any pixel is decoded
(a decompression bomb costs nothing); undecodable or truncated data, unknown formats and
zero-size images raise `BadImage`. Any size and mode is accepted (palette, gray, alpha,
CMYK, 16-bit: `data_pipelines.sources.image_io.decode_image`); the model's tiling resizes.
"""

import base64
import binascii
import io
import re
import warnings

import numpy as np
import PIL.Image
import PIL.ImageOps

from data_pipelines.sources import image_io

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)"
                       r"(?P<b64>;base64)?,", re.ASCII)


class BadImage(ValueError):
  """The message says what was wrong; `too_large` for the pixel limit."""

  def __init__(self, message: str, too_large: bool = False):
    super().__init__(message)
    self.too_large = too_large


def data_url_bytes(url: str) -> bytes:
  if not isinstance(url, str):
    raise BadImage("image_url.url must be a string")
  m = _DATA_URL.match(url[:256])
  if not m:
    scheme = url.split(":", 1)[0][:16] if ":" in url else ""
    raise BadImage("image_url.url must be a data URL (data:image/png;base64,...); "
                   + (f"{scheme!r} URLs are not fetched" if scheme else "got something else"))
  if not m.group("b64"):
    raise BadImage("image data URLs must be base64 encoded (data:image/png;base64,...)")
  try:
    return base64.b64decode(url[m.end():], validate=True)
  except (binascii.Error, ValueError) as e:
    raise BadImage(f"the image data URL is not valid base64: {e}") from None


def decode(data: bytes, max_pixels: int) -> np.ndarray:
  """Encoded image bytes -> uint8 [H, W, 3] (first frame, EXIF orientation applied)."""
  if not data:
    raise BadImage("the image is empty")
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
      img = PIL.Image.open(io.BytesIO(data))
      w, h = img.size
      if w * h > max_pixels:
        raise BadImage(f"the image is {w} x {h} = {w * h:,} pixels; the limit is "
                       f"{max_pixels:,}", too_large=True)
      if w < 1 or h < 1:
        raise BadImage(f"the image has no pixels ({w} x {h})")
      PIL.Image.open(io.BytesIO(data)).verify()  # chunk CRCs, a missing end (PNG)
      img.load()
      img = PIL.ImageOps.exif_transpose(img)
      return image_io.decode_image(img)
  except BadImage:
    raise
  except (PIL.Image.DecompressionBombError, PIL.Image.DecompressionBombWarning) as e:
    raise BadImage(f"the image is too large: {e}", too_large=True) from None
  except PIL.UnidentifiedImageError:
    raise BadImage("the data is not an image in a format this server reads (PNG, JPEG, "
                   "GIF, WebP, BMP, TIFF, ...)") from None
  except image_io.ImageDecodeError as e:
    raise BadImage(f"the image cannot be used: {e}") from None
  except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
    raise BadImage(f"the image is truncated or corrupt: {e}") from None


def png_base64(image: np.ndarray, size: int | None = None) -> str:
  """uint8 [S, S, 3] -> base64 PNG, upscaled (nearest) to `size` when given."""
  img = PIL.Image.fromarray(np.asarray(image, np.uint8))
  if size and size != img.width:
    img = img.resize((size, size), PIL.Image.NEAREST)
  buf = io.BytesIO()
  img.save(buf, format="PNG")
  return base64.b64encode(buf.getvalue()).decode("ascii")
