"""Colour statistics and the Fréchet distance against hand-worked cases and closed forms."""

import colorsys

import numpy as np
import pytest

from dvbpr_tf.evaluation import gan_metrics


def _images(colour, n=4, size=8, background=True):
  """n images: a square of `colour` in the middle of a white (or no) background."""
  images = np.full((n, size, size, 3), 255 if background else colour, np.uint8)
  images[:, 2:6, 2:6] = colour
  return images


def test_hsv_matches_the_standard_library():
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, (500, 3)).astype(np.uint8)
  pixels[:5] = [[0, 0, 0], [255, 255, 255], [128, 128, 128], [255, 0, 0], [0, 0, 255]]
  hue, saturation, value = gan_metrics.hsv(pixels)
  expected = np.array([colorsys.rgb_to_hsv(*(p / 255.0)) for p in pixels])
  np.testing.assert_allclose(np.stack([hue, saturation, value], 1), expected, atol=1e-12)


def test_colour_statistics_on_hand_worked_images():
  red = gan_metrics.colour_statistics(_images((255, 0, 0)))
  assert red["saturation"] == 1.0 and red["lightness"] == 1.0
  assert red["hue_histogram"][0] == 1.0 and sum(red["hue_histogram"]) == 1.0
  assert red["garment_share"] == 16 / 64  # The white background is not garment.
  grey = gan_metrics.colour_statistics(_images((100, 100, 100)))
  assert grey["saturation"] == 0.0 and sum(grey["hue_histogram"]) == 0.0
  assert grey["lightness"] == pytest.approx(100 / 255)
  blue = gan_metrics.colour_statistics(_images((0, 0, 200)))
  assert np.argmax(blue["hue_histogram"]) == int(2 / 3 * gan_metrics.HUE_BINS)  # 240 deg.
  with pytest.raises(ValueError, match="uint8"):
    gan_metrics.colour_statistics(np.zeros((2, 4, 4, 3), np.float32))


def test_hue_distance_and_the_real_halves_yardstick():
  red, green = _images((200, 10, 10), n=10), _images((10, 200, 10), n=10)
  same = gan_metrics.colour_comparison(red, red)
  assert same["hue_distance"] == 0.0 and same["saturation_ratio"] == 1.0
  assert same["hue_distance_real_halves"] == 0.0
  other = gan_metrics.colour_comparison(green, red)
  assert other["hue_distance"] == 1.0  # Disjoint histograms.
  washed = gan_metrics.colour_comparison(_images((200, 120, 120), n=10), red)
  assert washed["saturation_ratio"] == pytest.approx((80 / 200) / (190 / 200))
  assert gan_metrics.total_variation([1, 1, 0], [0, 1, 1]) == 0.5
  summary = gan_metrics.summarise_colours({"a": other, "b": washed})
  assert summary["saturation_ratio_min"] == washed["saturation_ratio"]
  assert summary["hue_distance_max"] == 1.0


def test_frechet_distance_of_identical_gaussians_is_zero():
  rng = np.random.default_rng(1)
  a = rng.normal(size=(6, 6))
  sigma = a @ a.T + np.eye(6)
  mu = rng.normal(size=6)
  assert gan_metrics.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_closed_forms():
  rng = np.random.default_rng(2)
  a = rng.normal(size=(5, 5))
  sigma = a @ a.T + np.eye(5)
  shift = rng.normal(size=5)
  # The same covariance, shifted means: the squared distance of the means.
  assert gan_metrics.frechet_distance(np.zeros(5), sigma, shift, sigma) == pytest.approx(
      shift @ shift, rel=1e-8)
  # Diagonal covariances: sum of (sqrt(a) - sqrt(b))^2 plus the means' term.
  var_1, var_2 = rng.uniform(0.5, 3, 5), rng.uniform(0.5, 3, 5)
  expected = shift @ shift + np.sum((np.sqrt(var_1) - np.sqrt(var_2)) ** 2)
  assert gan_metrics.frechet_distance(np.zeros(5), np.diag(var_1), shift,
                                      np.diag(var_2)) == pytest.approx(expected, rel=1e-8)
  # One dimension: (m1 - m2)^2 + (s1 - s2)^2.
  assert gan_metrics.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(5.0)


def test_frechet_distance_of_samples_approaches_the_closed_form():
  rng = np.random.default_rng(3)
  first = rng.normal(0.0, 1.0, (20000, 3))
  second = rng.normal(0.5, 2.0, (20000, 3))
  expected = 3 * 0.5 ** 2 + 3 * (1.0 - 2.0) ** 2
  assert gan_metrics.frechet_distance_of(first, second) == pytest.approx(expected, rel=0.03)
  assert gan_metrics.frechet_distance_of(first, first) == pytest.approx(0.0, abs=1e-6)
  # Rank-deficient covariances (fewer samples than dimensions) still give a finite value.
  assert np.isfinite(gan_metrics.frechet_distance_of(first[:3, :], second[:3, :]))
