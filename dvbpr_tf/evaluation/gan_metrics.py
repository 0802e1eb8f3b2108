"""How close generated images are to the catalogue's: colour statistics per category, and the
Fréchet distance between two sets of image features.

Colour is what the embedded shoppers' tastes are mostly about, so a GAN that draws the
garments' shapes in the wrong colours cannot serve personalised design. The statistics are
taken on **garment pixels**: those clearly away from the white background (some channel below
`BACKGROUND_LEVEL`). Per image set:
- `saturation`: mean HSV saturation of the garment pixels;
- `lightness`: mean HSV value of the garment pixels;
- `hue_histogram`: the garment pixels' hues in `HUE_BINS` bins, each pixel weighted by its
  saturation (grey pixels carry no hue), normalised to sum 1.
Two hue histograms are compared by their total-variation distance, half the L1 distance (0:
the same, 1: disjoint). The same figure between two disjoint halves of the real images is the
yardstick of what sampling alone gives.

`frechet_distance` is the distance between the Gaussians fitted to two feature sets,
||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) (Dowson and Landau's formula, the one
FID uses). With the penultimate features of the dataset's own category classifier it is
**not FID** (which uses ImageNet's Inception) and is named for the features it uses.
Plain NumPy and SciPy; the features come from any network.
"""

from __future__ import annotations

from typing import Mapping
import warnings

import numpy as np
from scipy import linalg

BACKGROUND_LEVEL = 235  # A pixel with every channel at or above this is background.
HUE_BINS = 18  # 20 degrees each.


def _check_images(images) -> np.ndarray:
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
    raise ValueError(f"images must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
  return images


def hsv(images) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Hue in [0, 1) (0 red, 1/3 green, 2/3 blue), saturation and value in [0, 1] of uint8
  RGB pixels (any leading shape)."""
  rgb = np.asarray(images, np.float64) / 255.0
  maximum, minimum = rgb.max(-1), rgb.min(-1)
  spread = maximum - minimum
  saturation = np.where(maximum > 0, spread / np.where(maximum > 0, maximum, 1.0), 0.0)
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  safe = np.where(spread > 0, spread, 1.0)
  hue = np.select([spread == 0, maximum == r, maximum == g],
                  [0.0, ((g - b) / safe) % 6.0, (b - r) / safe + 2.0],
                  (r - g) / safe + 4.0) / 6.0
  return hue % 1.0, saturation, maximum


def garment_mask(images) -> np.ndarray:
  """[N, H, W] bool: the pixels with some channel below the background level."""
  return _check_images(images).min(-1) < BACKGROUND_LEVEL


def colour_statistics(images) -> dict:
  """`saturation`, `lightness`, `hue_histogram` (list of HUE_BINS), `garment_share` of a set
  of uint8 images (see the module docstring); NaN and a zero histogram without garment
  pixels."""
  images = _check_images(images)
  mask = garment_mask(images)
  hue, saturation, value = hsv(images)
  hue, saturation, value = hue[mask], saturation[mask], value[mask]
  histogram = np.bincount(np.minimum((hue * HUE_BINS).astype(np.int64), HUE_BINS - 1),
                          weights=saturation, minlength=HUE_BINS)
  total = histogram.sum()
  return {"saturation": float(saturation.mean()) if len(saturation) else float("nan"),
          "lightness": float(value.mean()) if len(value) else float("nan"),
          "hue_histogram": (histogram / total if total > 0 else histogram).tolist(),
          "garment_share": float(mask.mean())}


def total_variation(p, q) -> float:
  """Half the L1 distance of two histograms (each normalised to sum 1 first)."""
  p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
  p = p / p.sum() if p.sum() > 0 else p
  q = q / q.sum() if q.sum() > 0 else q
  return float(0.5 * np.abs(p - q).sum())


def random_halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Two disjoint random halves of range(n) (each n // 2 sorted indices): the real-vs-real
  yardstick's split."""
  order = np.random.default_rng(seed).permutation(n)
  half = n // 2
  return np.sort(order[:half]), np.sort(order[half:2 * half])


def real_reference(real, seed: int = 0) -> dict:
  """The real side of `colour_comparison` for one category, computed once: the statistics
  of the real images and the hue-histogram distance between two disjoint random halves of
  them (the yardstick)."""
  real = _check_images(real)
  one, other = random_halves(len(real), seed)
  first, second = colour_statistics(real[one]), colour_statistics(real[other])
  return {"real": colour_statistics(real),
          "hue_distance_real_halves": total_variation(first["hue_histogram"],
                                                      second["hue_histogram"])}


def colour_comparison(generated, real=None, seed: int = 0, reference: dict | None = None
                      ) -> dict:
  """Generated against real images of one category: each side's statistics, the
  saturation ratio generated / real, the hue-histogram distance, and the same distance
  between two disjoint random halves of the real images (the yardstick). The real side is
  `reference` (from `real_reference`) when given, else computed from `real`."""
  generated = _check_images(generated)
  reference = reference or real_reference(real, seed)
  fake, true = colour_statistics(generated), reference["real"]
  return {
      "generated": fake, "real": true,
      "saturation_ratio": (fake["saturation"] / true["saturation"]
                           if true["saturation"] > 0 else float("nan")),
      "hue_distance": total_variation(fake["hue_histogram"], true["hue_histogram"]),
      "hue_distance_real_halves": reference["hue_distance_real_halves"],
      "lightness_generated": fake["lightness"], "lightness_real": true["lightness"],
  }


def gaussian(features) -> tuple[np.ndarray, np.ndarray]:
  """The mean [D] and covariance [D, D] (unbiased) of features [N, D], N >= 2."""
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or len(features) < 2:
    raise ValueError(f"features must be [N >= 2, D], got {features.shape}")
  return features.mean(0), np.cov(features, rowvar=False).reshape(
      features.shape[1], features.shape[1])


def frechet_distance(mu_1, sigma_1, mu_2, sigma_2, epsilon: float = 1e-6) -> float:
  """||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)).

  The matrix square root is SciPy's; when S_1 S_2 is near singular, `epsilon` is added to
  both diagonals; the imaginary rounding residue is dropped.
  """
  mu_1, mu_2 = np.atleast_1d(np.asarray(mu_1, np.float64)), np.atleast_1d(
      np.asarray(mu_2, np.float64))
  sigma_1, sigma_2 = np.atleast_2d(sigma_1).astype(np.float64), np.atleast_2d(
      sigma_2).astype(np.float64)
  if mu_1.shape != mu_2.shape or sigma_1.shape != sigma_2.shape or \
      sigma_1.shape != (len(mu_1), len(mu_1)):
    raise ValueError(f"shapes do not match: {mu_1.shape}, {sigma_1.shape}, {mu_2.shape}, "
                     f"{sigma_2.shape}")
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", linalg.LinAlgWarning)
    root = linalg.sqrtm(sigma_1 @ sigma_2)
  if caught or not np.all(np.isfinite(root)):  # Singular (dead ReLU units, few samples).
    offset = np.eye(len(mu_1)) * epsilon
    root = linalg.sqrtm((sigma_1 + offset) @ (sigma_2 + offset))
  root = np.real(root)
  difference = mu_1 - mu_2
  value = difference @ difference + np.trace(sigma_1) + np.trace(sigma_2) - 2 * np.trace(root)
  return float(max(value, 0.0))


def frechet_distance_of(features_1, features_2) -> float:
  """`frechet_distance` of the Gaussians fitted to two feature sets [N, D]."""
  return frechet_distance(*gaussian(features_1), *gaussian(features_2))


def summarise_colours(by_category: Mapping[str, dict]) -> dict:
  """The worst category of each colour figure: least saturation ratio, largest hue
  distance, and that distance over the real-halves yardstick."""
  ratios = [c["saturation_ratio"] for c in by_category.values()]
  distances = [c["hue_distance"] for c in by_category.values()]
  over = [c["hue_distance"] / c["hue_distance_real_halves"] for c in by_category.values()
          if c["hue_distance_real_halves"] > 0]
  return {"saturation_ratio_min": float(np.nanmin(ratios)) if ratios else float("nan"),
          "hue_distance_max": float(np.max(distances)) if distances else float("nan"),
          "hue_distance_over_real_halves_max": float(np.max(over)) if over else float("nan")}
