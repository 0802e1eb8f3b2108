"""The CNN-F tower and the DVBPR model: layer table, parameter count, scores."""

import numpy as np
import tensorflow as tf

from dvbpr_tf.models import cnn_f
from dvbpr_tf.models import dvbpr


def _expected_parameters(size=224, k=100):
  """Counts the layer table of docs/reproduction.md §1 by hand (SAME padding)."""
  total, channels, side = 0, 3, size
  for _, filters, kernel, stride, pool in cnn_f.CONV_LAYERS:
    total += kernel * kernel * channels * filters + filters
    channels, side = filters, -(-side // stride)
    if pool:
      side = -(-side // 2)
  flat = side * side * channels  # 7 * 7 * 256 at 224
  total += flat * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * k + k
  return total, side


def test_paper_tower_shapes_and_parameter_count():
  expected, side = _expected_parameters()
  assert side == 7
  assert expected == 70_778_724  # "about 70.8 M parameters at K=100"
  tower = cnn_f.CnnF(cnn_f.TowerConfig()).build_for_input()
  assert tower.count_params() == expected
  assert tower(tf.zeros([2, 224, 224, 3])).shape == (2, 100)
  assert len(tower.kernels) == 8
  assert all(float(tf.reduce_sum(tf.abs(layer.bias))) == 0.0
             for layer in (*tower.convs, tower.fc6, tower.fc7, tower.fc8))


def test_width_multiplier_and_input_size():
  tower = cnn_f.CnnF(cnn_f.TowerConfig(embedding_dim=7, input_size=64,
                                       width_multiplier=0.25)).build_for_input()
  assert tower(tf.zeros([3, 64, 64, 3])).shape == (3, 7)
  assert tower.convs[0].filters == 16 and tower.fc6.units == 1024


def test_scores_are_theta_dot_phi_and_branches_share_weights():
  model = dvbpr.Dvbpr(5, cnn_f.TowerConfig(embedding_dim=4, input_size=32,
                                           width_multiplier=0.125)).build_for_input()
  theta = model.theta.numpy()
  assert theta.min() >= 0.0 and theta.max() <= 0.01  # uniform(0, 1) / 100
  images = tf.random.uniform([3, 32, 32, 3], -1, 1, seed=1)
  users = tf.constant([0, 4, 2])
  phi = model.item_embeddings(images).numpy()
  np.testing.assert_allclose(model.score(users, images).numpy(),
                             np.sum(theta[[0, 4, 2]] * phi, axis=1), rtol=1e-5)
  out = model({"user": users, "pos_image": images, "neg_image": images}, training=False)
  np.testing.assert_allclose(out["x_ui"].numpy(), out["x_uj"].numpy(), rtol=1e-6)
  # Dropout is on in training only.
  train_out = model({"user": users, "pos_image": images, "neg_image": images}, training=True)
  assert not np.allclose(train_out["x_ui"].numpy(), train_out["x_uj"].numpy())


def test_visual_bias_is_shared_by_every_user_learnt_and_not_decayed():
  """x_ui = (theta_u + beta')^T Phi(X_i); lambda_2 decays theta_u's rows only."""
  tower = cnn_f.TowerConfig(embedding_dim=4, input_size=32, width_multiplier=0.125,
                            dropout=0.0)
  model = dvbpr.Dvbpr(5, tower, theta_decay=2.0, visual_bias=True).build_for_input()
  plain = dvbpr.Dvbpr(5, tower, theta_decay=2.0).build_for_input()
  assert plain.visual_bias is None and len(model.weights) == len(plain.weights) + 1
  bias = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
  model.visual_bias.assign(bias)
  theta = model.theta.numpy()
  images = tf.random.uniform([3, 32, 32, 3], -1, 1, seed=2)
  negatives = tf.random.uniform([3, 32, 32, 3], -1, 1, seed=3)
  users = tf.constant([1, 3, 1])
  phi = model.item_embeddings(images).numpy()
  np.testing.assert_allclose(model.score(users, images).numpy(),
                             np.sum((theta[[1, 3, 1]] + bias) * phi, axis=1), rtol=1e-5)
  np.testing.assert_allclose(model.all_user_vectors().numpy(), theta + bias, rtol=1e-6)
  batch = {"user": users, "pos_image": images, "neg_image": negatives}
  terms = model.loss_terms(batch)
  np.testing.assert_allclose(float(terms["theta_decay"]),
                             2.0 * np.sum(theta[[1, 3, 1]] ** 2) / 2, rtol=1e-5)
  with tf.GradientTape() as tape:
    loss = model.loss_terms(batch)["loss"]
  gradient = tape.gradient(loss, model.visual_bias)
  assert gradient is not None and np.any(gradient.numpy() != 0)
