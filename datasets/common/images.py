"""Turning whatever image bytes a source holds into the RGB JPEG the records store."""

from __future__ import annotations

import io

from PIL import Image
from PIL import UnidentifiedImageError

JPEG_QUALITY = 95


class BadImageError(ValueError):
  """The bytes are not an image that can be decoded."""


def to_rgb_jpeg(data: bytes, size: int | None = None, quality: int = JPEG_QUALITY,
                reduced_decode: bool = False) -> bytes:
  """Returns `data` as an RGB JPEG, resized to `size`x`size` when `size` is given.

  An RGB JPEG at the requested size is returned unchanged (no second lossy encoding). Other
  inputs (grayscale, CMYK, palette, PNG with alpha, GIF, ...) are converted; transparency is
  composited onto white, the background of product photos.

  With `reduced_decode` and a `size`, a JPEG much larger than `size` is decoded by libjpeg at
  1/2, 1/4 or 1/8 scale (never below `size`; Pillow's `Image.draft`) before the resize: a
  1750x1166 photo shrunk to 64x64 decodes about ten times faster, with a barely different
  result. Off by default, so that existing builds stay byte-identical.

  Raises:
    BadImageError: empty, truncated or undecodable bytes.
  """
  if not data:
    raise BadImageError("zero-byte image")
  try:
    with Image.open(io.BytesIO(data)) as image:
      needs_resize = size is not None and image.size != (size, size)
      if reduced_decode and needs_resize and image.format == "JPEG":
        image.draft(image.mode, (size, size))
      image.load()  # Forces a full decode: truncated files fail here, not later.
      if image.format == "JPEG" and image.mode == "RGB" and not needs_resize:
        return bytes(data)
      rgb = _to_rgb(image)
  except UnidentifiedImageError as e:  # Its message holds an object address: not helpful.
    raise BadImageError("not an image in a format Pillow can read") from e
  except (OSError, SyntaxError, ValueError) as e:
    raise BadImageError(f"cannot decode image ({type(e).__name__}: {e})") from e
  if needs_resize:
    rgb = rgb.resize((size, size), Image.BILINEAR)
  return encode_jpeg(rgb, quality)


def encode_jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
  out = io.BytesIO()
  image.save(out, format="JPEG", quality=quality)
  return out.getvalue()


def _to_rgb(image: Image.Image) -> Image.Image:
  if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background
  return image.convert("RGB")
