"""Fold-in (serving/fold_in.py): the minimiser of eq. 5 for one new user against NumPy, and
the same preference as training's per-sample SGD on that user's pairs."""

import numpy as np
import pytest
import tensorflow as tf

from dvbpr_tf.core import errors
from dvbpr_tf.serving import fold_in


def _numpy_gradient(theta, liked, negatives, decay, prior, weights):
  """d L / d theta of the module docstring, pair by pair."""
  p = theta + prior
  grad = decay * theta
  total = weights.sum()
  for i, phi_i in enumerate(liked):
    for j, phi_j in enumerate(negatives):
      d = phi_i - phi_j
      grad = grad - weights[i, j] / total * d / (1.0 + np.exp(p @ d))
  return grad


def _spearman(a, b):
  rank_a, rank_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
  return np.corrcoef(rank_a, rank_b)[0, 1]


@pytest.mark.parametrize("decay", [1.0, 0.05, 1e-3])
def test_the_gradient_vanishes_at_the_result(decay):
  rng = np.random.default_rng(0)
  liked = rng.normal(size=(4, 5)).astype(np.float32)
  negatives = rng.normal(size=(30, 5)).astype(np.float32)
  prior = rng.normal(scale=0.3, size=5).astype(np.float32)
  weights = np.ones((4, 30), np.float32)
  weights[:, :3] = 0.0  # Negatives that are liked items: left out.
  theta = fold_in.fold_in(liked, negatives, decay, prior, tf.constant(weights),
                          steps=30).numpy()
  gradient = _numpy_gradient(theta.astype(np.float64), liked, negatives, decay, prior, weights)
  assert np.max(np.abs(gradient)) < 1e-5
  # And a minimum: every nearby point is worse.
  best = fold_in.objective(tf.constant(theta), liked, negatives, decay, prior, weights)
  for _ in range(10):
    nearby = theta + rng.normal(scale=0.05, size=5).astype(np.float32)
    assert fold_in.objective(tf.constant(nearby), liked, negatives, decay, prior,
                             weights) > best


def test_agrees_with_per_sample_sgd_on_the_same_objective():
  """Training's update of one user with Phi fixed (per-sample SGD on softplus(-(x_ui - x_uj))
  + lambda_2 / 2 ||theta||^2, j uniform outside the liked items) ranks the catalog as the
  fold-in does."""
  rng = np.random.default_rng(1)
  catalog = rng.normal(size=(300, 8)).astype(np.float32)
  taste = rng.normal(size=8)
  liked_ids = np.argsort(-(catalog @ taste + rng.normal(scale=2.0, size=300)))[:12]
  others = np.setdiff1d(np.arange(300), liked_ids)
  decay = 0.1
  theta = np.zeros(8)
  for step in range(60_000):
    rate = 0.05 / (1 + step / 5_000)
    d = catalog[rng.choice(liked_ids)] - catalog[rng.choice(others)]
    theta -= rate * (-d / (1.0 + np.exp(theta @ d)) + decay * theta)
  negatives = tf.gather(catalog, fold_in.draw_negatives(300, fold_in.FoldInConfig()))
  liked = catalog[liked_ids]
  weights = 1.0 - np.isin(np.arange(300), liked_ids)[np.newaxis, :].repeat(12, 0)
  folded = fold_in.fold_in(liked, negatives, decay, weights=tf.constant(weights, tf.float32))
  scores = catalog @ folded.numpy()
  assert _spearman(scores, catalog @ theta) > 0.99
  np.testing.assert_allclose(folded.numpy(), theta, rtol=0.05, atol=0.02)


def test_negatives_are_seeded_and_every_item_for_a_small_catalog():
  config = fold_in.FoldInConfig(negatives=16, seed=3)
  first = fold_in.draw_negatives(1000, config).numpy()
  np.testing.assert_array_equal(first, fold_in.draw_negatives(1000, config).numpy())
  assert first.shape == (16,) and first.min() >= 0 and first.max() < 1000
  other = fold_in.draw_negatives(1000, fold_in.FoldInConfig(negatives=16, seed=4)).numpy()
  assert not np.array_equal(first, other)
  np.testing.assert_array_equal(fold_in.draw_negatives(10, config).numpy(), np.arange(10))


def test_bad_config_names_the_field():
  with pytest.raises(errors.ConfigError, match="steps"):
    fold_in.FoldInConfig(steps=0)
  with pytest.raises(errors.ConfigError, match="negatives"):
    fold_in.FoldInConfig(negatives=0)
