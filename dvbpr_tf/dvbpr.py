"""DVBPR: the CNN-F tower Phi and one preference vector theta_u per user.

    x_ui = theta_u^T Phi(X_i)                                                        (eq. 6)

No item bias and no non-visual item factors (the paper found dropping them helps); alpha and
beta_u cancel in the BPR difference and are not modelled. theta_u is initialised
uniform(0, 1) / 100, as the authors' code.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from dvbpr_tf import cnn_f


@keras.saving.register_keras_serializable(package="dvbpr_tf")
class Dvbpr(keras.Model):
  """The Siamese recommender: positive and negative images go through the same tower."""

  def __init__(self, num_users: int, tower: cnn_f.TowerConfig = cnn_f.TowerConfig(),
               **kwargs):
    super().__init__(**kwargs)
    self.num_users = int(num_users)
    self.tower = cnn_f.CnnF(tower, name="cnn_f")
    self.theta = self.add_weight(
        shape=(self.num_users, tower.embedding_dim), name="theta",
        initializer=keras.initializers.RandomUniform(0.0, 0.01))

  @property
  def tower_config(self) -> cnn_f.TowerConfig:
    return self.tower.config

  def build_for_input(self) -> "Dvbpr":
    self.tower.build_for_input()
    self.built = True  # theta is created in __init__; the tower is built above.
    return self

  def item_embeddings(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
    """Phi(images): [B, S, S, 3] in [-1, 1] -> [B, K] in the variables' dtype (under mixed
    precision the tower computes in float16, the scores stay float32)."""
    return tf.cast(self.tower(images, training=training), self.theta.dtype)

  def user_vectors(self, users: tf.Tensor) -> tf.Tensor:
    # Inside a mixed-precision call Keras reads variables as float16; the scores stay float32.
    return tf.cast(tf.gather(self.theta, users), self.theta.dtype)

  def score(self, users: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
    """x_ui for aligned pairs (users[k], images[k]) (eq. 6)."""
    return tf.reduce_sum(self.user_vectors(users) * self.item_embeddings(images), axis=-1)

  def call(self, batch, training=False):
    """A BPR batch -> dict of `x_ui`, `x_uj` [B] and `theta` [B, K] (the batch's rows)."""
    theta = self.user_vectors(batch["user"])
    x_ui = tf.reduce_sum(theta * self.item_embeddings(batch["pos_image"], training), -1)
    x_uj = tf.reduce_sum(theta * self.item_embeddings(batch["neg_image"], training), -1)
    return {"x_ui": x_ui, "x_uj": x_uj, "theta": theta}
