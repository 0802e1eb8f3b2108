"""Small source files for the tests of the raw-feedback builders (hm_fashion, fashion_catalog).

Images are 8x8 and come in the awkward kinds real shops have: RGB, grayscale and CMYK JPEGs,
PNGs with alpha, truncated and zero-byte files.
"""

from __future__ import annotations

import csv
import io
import pathlib

import numpy as np
from PIL import Image


def image_bytes(seed: int = 0, kind: str = "rgb", size: int = 8) -> bytes:
  """Image bytes of one `kind`: rgb, gray, cmyk (JPEGs), png_rgba, png, truncated, empty,
  text (not an image)."""
  if kind == "empty":
    return b""
  if kind == "text":
    return b"<html>404 not found</html>"
  y, x = np.mgrid[0:size, 0:size]
  base = np.array([(37 * seed) % 256, (91 * seed + 50) % 256, (151 * seed + 100) % 256])
  pixels = ((base[None, None, :] + 16 * x[..., None] + 8 * y[..., None]) % 256).astype(np.uint8)
  image = Image.fromarray(pixels, "RGB")
  out = io.BytesIO()
  if kind in ("rgb", "truncated"):
    image.save(out, format="JPEG", quality=90)
  elif kind == "gray":
    image.convert("L").save(out, format="JPEG", quality=90)
  elif kind == "cmyk":
    image.convert("CMYK").save(out, format="JPEG", quality=90)
  elif kind == "png_rgba":
    rgba = image.convert("RGBA")
    rgba.putalpha(0)  # Fully transparent: composited onto white.
    rgba.save(out, format="PNG")
  elif kind == "png":
    image.save(out, format="PNG")
  else:
    raise ValueError(f"unknown image kind {kind!r}")
  data = out.getvalue()
  return data[:len(data) // 3] if kind == "truncated" else data


def write_csv(path: pathlib.Path, header, rows) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
  return path


def decode(jpeg: bytes) -> Image.Image:
  image = Image.open(io.BytesIO(jpeg))
  image.load()
  return image
