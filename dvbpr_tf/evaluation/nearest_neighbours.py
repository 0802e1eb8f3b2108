"""Nearest real images of generated ones (paper Fig. 4): is the GAN copying its data?"""

from __future__ import annotations

import numpy as np


def l1_nearest(samples: np.ndarray, sample_categories: np.ndarray, real: np.ndarray,
               real_categories: np.ndarray, chunk_size: int = 512) -> np.ndarray:
  """For each sample, the index of the real image of the same category at least L1 distance.

  Args:
    samples: uint8 [n, S, S, 3] generated images.
    sample_categories: [n] their categories.
    real: uint8 [N, S, S, 3] the real images at the same size.
    real_categories: [N] their categories.

  Returns:
    [n] int64 indices into `real` (-1 for a sample whose category has no real image).
  """
  samples = samples.reshape(len(samples), -1).astype(np.int32)
  real_flat = real.reshape(len(real), -1)
  nearest = np.full(len(samples), -1, np.int64)
  for category in np.unique(sample_categories):
    rows = np.flatnonzero(sample_categories == category)
    candidates = np.flatnonzero(real_categories == category)
    if not len(candidates):
      continue
    best = np.full(len(rows), np.iinfo(np.int64).max)
    for start in range(0, len(candidates), chunk_size):
      block = candidates[start:start + chunk_size]
      distance = np.abs(samples[rows][:, None, :] - real_flat[block][None, :, :].astype(
          np.int32)).sum(axis=2)
      better = distance.min(axis=1) < best
      best = np.where(better, distance.min(axis=1), best)
      nearest[rows[better]] = block[distance.argmin(axis=1)[better]]
  return nearest


def side_by_side(samples: np.ndarray, neighbours: np.ndarray, pad: int = 4,
                 pairs_per_row: int = 4) -> np.ndarray:
  """One image of pairs: each generated sample (left) beside its nearest real image (right),
  `pairs_per_row` pairs a row (images as given: enlarge them first for a figure)."""
  n, size = len(samples), samples.shape[1]
  columns = min(pairs_per_row, max(1, n))
  rows = -(-n // columns)
  pair_width = 2 * size + pad
  out = np.full((rows * (size + pad) + pad, columns * (pair_width + 3 * pad) + pad, 3), 255,
                np.uint8)
  for k in range(n):
    row, column = divmod(k, columns)
    top, left = pad + row * (size + pad), pad + column * (pair_width + 3 * pad)
    out[top:top + size, left:left + size] = samples[k]
    out[top:top + size, left + size + pad:left + 2 * size + pad] = neighbours[k]
  return out
