"""The DVBPR loss (eq. 5) against hand-worked numbers and a NumPy oracle."""

import numpy as np
import pytest
import tensorflow as tf

from dvbpr_tf.models import losses


def test_hand_worked_batch():
  # Two triplets: x_ui - x_uj = 0 and = ln 3.
  #   -ln sigmoid(0) = ln 2;  -ln sigmoid(ln 3) = ln(1 + 1/3) = ln(4/3).
  # One kernel [[1, 2]]: l2_loss = (1 + 4) / 2 = 2.5, times lambda_1 = 1e-3 -> 0.0025.
  # theta rows [[1, 0], [0, 2]]: l2_loss = (1 + 4) / 2 = 2.5, times lambda_2 = 1 -> 2.5.
  x_ui = tf.constant([1.0, np.log(3.0)])
  x_uj = tf.constant([1.0, 0.0])
  terms = losses.dvbpr_loss(x_ui, x_uj, [tf.constant([[1.0, 2.0]])],
                            tf.constant([[1.0, 0.0], [0.0, 2.0]]))
  assert float(terms["bpr"]) == pytest.approx(np.log(2.0) + np.log(4.0 / 3.0), rel=1e-6)
  assert float(terms["weight_decay"]) == pytest.approx(0.0025, rel=1e-6)
  assert float(terms["theta_decay"]) == pytest.approx(2.5, rel=1e-6)
  assert float(terms["loss"]) == pytest.approx(np.log(8.0 / 3.0) + 0.0025 + 2.5, rel=1e-6)


def test_random_batch_against_numpy():
  rng = np.random.default_rng(0)
  x_ui, x_uj = rng.normal(size=32) * 5, rng.normal(size=32) * 5
  kernels = [rng.normal(size=(3, 4)), rng.normal(size=(5,))]
  theta = rng.normal(size=(32, 6))
  expected_bpr = -np.sum(np.log(1.0 / (1.0 + np.exp(-(x_ui - x_uj)))))  # a sum, not a mean
  expected = (expected_bpr + 0.01 * sum(np.sum(k ** 2) / 2 for k in kernels)
              + 0.5 * np.sum(theta ** 2) / 2)
  terms = losses.dvbpr_loss(tf.constant(x_ui), tf.constant(x_uj),
                            [tf.constant(k) for k in kernels], tf.constant(theta),
                            weight_decay=0.01, theta_decay=0.5)
  assert float(terms["loss"]) == pytest.approx(expected, rel=1e-6)


def test_bpr_is_stable_for_large_margins():
  assert float(losses.bpr_loss(tf.constant([0.0]), tf.constant([1000.0]))) == pytest.approx(1000)
  assert float(losses.bpr_loss(tf.constant([1000.0]), tf.constant([0.0]))) == 0.0
