"""Turning whatever image bytes a source holds into the RGB JPEG the records store."""

from __future__ import annotations

import contextlib
import io
import os
import stat

import numpy as np
from PIL import Image
from PIL import ImageOps
from PIL import UnidentifiedImageError

JPEG_QUALITY = 95

# The most pixels an image may declare (width x height) before it is decoded: 8000 x 8000,
# far above any product photo, far below what a few hundred bytes of PNG can claim (a
# decompression bomb: 30000 x 30000 pixels are 2.7 GB of RGB). Set it with
# `set_max_pixels` (the `--max_image_pixels` flag of the commands); Pillow's own limit is
# replaced by this one.
DEFAULT_MAX_PIXELS = 64_000_000
_max_pixels = DEFAULT_MAX_PIXELS
# Pillow's own check (a warning above 89 M pixels, an error at open above twice that) is
# replaced by this module's, made on the declared size before anything is decoded, with a
# message that names the setting.
Image.MAX_IMAGE_PIXELS = None


class BadImageError(ValueError):
  """The bytes are not an image that can be decoded."""


def set_max_pixels(limit: int) -> None:
  """Sets the most pixels an image may declare (`DEFAULT_MAX_PIXELS` unless set)."""
  global _max_pixels
  if not isinstance(limit, int) or limit < 1:
    raise ValueError(f"the image pixel limit must be a positive integer, got {limit!r}")
  _max_pixels = limit


def max_pixels() -> int:
  return _max_pixels


def read_regular_file(path: os.PathLike | str) -> bytes:
  """The bytes of `path`, which must be a regular file.

  A FIFO, a device or a socket named like an image would block a read forever (or never
  end): it is refused by `OSError` before it is opened for reading. The file is opened
  without blocking and checked on the descriptor, so a file swapped for a FIFO after a
  check is refused too.
  """
  fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
  try:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
      raise OSError(f"{os.fspath(path)} is not a regular file")
    with os.fdopen(fd, "rb", closefd=False) as f:
      return f.read()
  finally:
    os.close(fd)


def to_rgb_jpeg(data: bytes, size: int | None = None, quality: int = JPEG_QUALITY,
                reduced_decode: bool = False) -> bytes:
  """Returns `data` as an RGB JPEG, resized to `size`x`size` when `size` is given.

  An RGB JPEG at the requested size, without an EXIF rotation, is returned unchanged (no
  second lossy encoding). Other inputs (grayscale, CMYK, palette, PNG with alpha, GIF, ...)
  are converted; transparency is composited onto white, the background of product photos;
  16-bit (and 32-bit integer or float) pixels are scaled to 8 bits, not clipped; an EXIF
  orientation (a phone photo taken sideways) is applied, so the image is stored upright.
  An image that declares more than `max_pixels()` pixels is refused before it is decoded.

  With `reduced_decode` and a `size`, a JPEG much larger than `size` is decoded by libjpeg at
  1/2, 1/4 or 1/8 scale (never below `size`; Pillow's `Image.draft`) before the resize: a
  1750x1166 photo shrunk to 64x64 decodes about ten times faster, with a barely different
  result. Off by default, so that existing builds stay byte-identical.

  Raises:
    BadImageError: empty, truncated or undecodable bytes.
  """
  with _opened(data) as image:
    rotated = _orientation(image) not in (None, 1)
    target = image.size[::-1] if _orientation(image) in (5, 6, 7, 8) else image.size
    needs_resize = size is not None and target != (size, size)
    if reduced_decode and needs_resize and image.format == "JPEG":
      image.draft(image.mode, (size, size))
    image.load()  # Forces a full decode: truncated files fail here, not later.
    if image.format == "JPEG" and image.mode == "RGB" and not needs_resize and not rotated:
      return bytes(data)
    rgb = _to_rgb(ImageOps.exif_transpose(image) if rotated else image)
  if needs_resize:
    rgb = rgb.resize((size, size), Image.BILINEAR)
  return encode_jpeg(rgb, quality)


def encode_jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
  out = io.BytesIO()
  image.save(out, format="JPEG", quality=quality)
  return out.getvalue()


def decode_rgb(data: bytes) -> np.ndarray:
  """The image in `data` as an upright HxWx3 uint8 array (the conversions of `to_rgb_jpeg`,
  at the image's own size, without a JPEG round trip).

  Raises:
    BadImageError: empty, truncated, undecodable or too large (see `to_rgb_jpeg`).
  """
  with _opened(data) as image:
    image.load()
    return np.asarray(_to_rgb(ImageOps.exif_transpose(image)))


@contextlib.contextmanager
def _opened(data: bytes):
  """The image in `data`, opened (not yet decoded) and within the pixel limit; every
  failure inside the block, Pillow's included, comes out as one BadImageError."""
  if not data:
    raise BadImageError("zero-byte image")
  try:
    with Image.open(io.BytesIO(data)) as image:
      width, height = image.size
      if width * height > _max_pixels:
        raise BadImageError(
            f"the image declares {width}x{height} pixels, more than the limit of "
            f"{_max_pixels:,} (a decompression bomb, or raise --max_image_pixels)")
      yield image
  except BadImageError:  # A ValueError too: already the one line.
    raise
  except UnidentifiedImageError as e:  # Its message holds an object address: not helpful.
    raise BadImageError("not an image in a format Pillow can read") from e
  except Image.DecompressionBombError as e:  # Pillow's own check (frames, APNG chunks).
    raise BadImageError(f"the image is too large to decode ({e})") from e
  except (OSError, SyntaxError, ValueError, EOFError) as e:
    raise BadImageError(f"cannot decode image ({type(e).__name__}: {e})") from e


def _orientation(image: Image.Image) -> int | None:
  try:
    return image.getexif().get(0x0112)  # EXIF Orientation; 1 is upright.
  except Exception:  # pylint: disable=broad-except  # A broken EXIF block: ignore it.
    return None


def _to_8_bits(image: Image.Image) -> Image.Image:
  """Scales 16-bit, 32-bit integer and float pixels to 8 bits (Pillow's `convert` clips
  them: a 0..65535 ramp would become 0, 255, 255, ...)."""
  mode = image.mode
  if mode.startswith("I;16"):
    scale = 257.0  # 65535 -> 255.
  elif mode == "I":  # 32-bit integers; a 16-bit file opened by older Pillow comes as "I".
    scale = 257.0 if np.asarray(image).max(initial=0) > 255 else 1.0
  elif mode == "F":
    scale = 1 / 255 if np.asarray(image).max(initial=0) <= 1.0 else 1.0  # [0, 1] or 0..255.
  else:
    return image
  pixels = np.asarray(image, dtype=np.float64) / scale
  return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), mode="L")


def _to_rgb(image: Image.Image) -> Image.Image:
  image = _to_8_bits(image)
  if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background
  return image.convert("RGB")
