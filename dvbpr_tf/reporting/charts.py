"""Line charts drawn with Pillow (no plotting library needed), returned as uint8 RGB arrays."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

# Colour-blind-safe line colours (Okabe-Ito), in the order series are given.
COLOURS = ((0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0),
           (86, 180, 233))
GREY = (110, 110, 110)
MIN_IMAGE_SIDE = 96  # Pixels an image gets on a figure at least (small images upscaled).


def scale_for(side: int, min_side: int = MIN_IMAGE_SIDE) -> int:
  """The whole factor that brings an image of `side` pixels to at least `min_side`."""
  return max(1, -(-int(min_side) // max(1, int(side))))


def enlarge(images: np.ndarray, min_side: int = MIN_IMAGE_SIDE) -> np.ndarray:
  """uint8 [..., S, S, 3] images upscaled by nearest neighbour (pixels repeated, never
  blurred) to at least `min_side` pixels a side."""
  images = np.asarray(images)
  factor = scale_for(images.shape[-2], min_side)
  return np.repeat(np.repeat(images, factor, axis=-3), factor, axis=-2)


def _font(size: int):
  try:
    return ImageFont.load_default(size=size)
  except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font.
    return ImageFont.load_default()


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
  """About `count` round values (steps of 1, 2 or 5 times a power of ten) covering
  [low, high]."""
  if not (math.isfinite(low) and math.isfinite(high)):
    return []
  if high <= low:
    high = low + (abs(low) or 1.0) * 0.1
  raw = (high - low) / max(1, count - 1)
  power = 10.0 ** math.floor(math.log10(raw))
  step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
  first = math.floor(low / step) * step
  ticks = [round(first, 12)]
  while ticks[-1] < high - step * 1e-9:
    ticks.append(round(first + len(ticks) * step, 12))
  return ticks


def line_chart(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
               title: str, x_label: str, y_label: str,
               reference_lines: Mapping[str, float] | None = None,
               width: int = 720, height: int = 400) -> np.ndarray:
  """Lines with markers, one per series (name -> (xs, ys); None or NaN values are skipped),
  plus dashed horizontal reference lines (name -> y), a legend, axes with round ticks.

  Returns:
    uint8 [height, width, 3].
  """
  reference_lines = dict(reference_lines or {})
  font, small = _font(15), _font(12)
  canvas = Image.new("RGB", (width, height), (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  left, right, top, bottom = 80, width - 20, 48, height - 90
  points = {name: [(float(x), float(y)) for x, y in zip(xs, ys)
                   if x is not None and y is not None and math.isfinite(float(y))]
            for name, (xs, ys) in series.items()}
  all_x = [x for pts in points.values() for x, _ in pts]
  all_y = [y for pts in points.values() for _, y in pts] + list(reference_lines.values())
  draw.text((8, 6), title, fill=(0, 0, 0), font=font)
  if not all_x:
    draw.text((left, top + 20), "no data", fill=GREY, font=font)
    return np.asarray(canvas)
  y_ticks = nice_ticks(min(all_y), max(all_y))
  step = (y_ticks[1] - y_ticks[0]) if len(y_ticks) > 1 else 1.0
  decimals = min(12, max(0, -math.floor(math.log10(step)))) if step > 0 else 0
  y_low, y_high = min(y_ticks + all_y), max(y_ticks + all_y)
  x_low, x_high = min(all_x), max(all_x)
  if x_high == x_low:
    x_low, x_high = x_low - 1, x_high + 1
  to_x = lambda x: left + (x - x_low) / (x_high - x_low) * (right - left)
  to_y = lambda y: bottom - (y - y_low) / ((y_high - y_low) or 1.0) * (bottom - top)

  for tick in y_ticks:
    y = to_y(tick)
    draw.line([(left, y), (right, y)], fill=(232, 232, 232))
    draw.text((8, y - 7), f"{tick:.{decimals}f}", fill=(0, 0, 0), font=small)
  x_ticks = [t for t in nice_ticks(x_low, x_high, 8) if x_low <= t <= x_high]
  if all(float(x).is_integer() for x in all_x):  # Epochs, steps: whole numbers only.
    x_ticks = [t for t in x_ticks if float(t).is_integer()] or sorted(set(all_x))
  for tick in x_ticks:
    x = to_x(tick)
    draw.line([(x, bottom), (x, bottom + 5)], fill=(0, 0, 0))
    draw.text((x - 6, bottom + 8), f"{tick:g}", fill=(0, 0, 0), font=small)
  draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
  draw.text(((left + right) // 2 - 4 * len(x_label), bottom + 26), x_label, fill=(0, 0, 0),
            font=small)
  draw.text((8, top - 18), y_label, fill=(0, 0, 0), font=small)

  legend = []
  for k, (name, value) in enumerate(reference_lines.items()):
    y = to_y(value)
    for x in range(left, right, 12):
      draw.line([(x, y), (min(x + 6, right), y)], fill=GREY, width=1)
    draw.text((left + 6 + 150 * k, y - 15), f"{name} {value:.3f}", fill=GREY, font=small)
  for k, (name, pts) in enumerate(points.items()):
    colour = COLOURS[k % len(COLOURS)]
    xy = [(to_x(x), to_y(y)) for x, y in pts]
    if len(xy) > 1:
      draw.line(xy, fill=colour, width=2)
    for x, y in xy:
      draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    legend.append((name, colour))
  for k, (name, colour) in enumerate(legend):
    x0, y0 = left + 200 * (k % 3), bottom + 50 + 18 * (k // 3)
    draw.line([(x0, y0 + 7), (x0 + 24, y0 + 7)], fill=colour, width=3)
    draw.text((x0 + 30, y0), name, fill=(0, 0, 0), font=small)
  return np.asarray(canvas)
