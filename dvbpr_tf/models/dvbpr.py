"""DVBPR: the CNN-F tower Phi and one preference vector theta_u per user.

    x_ui = theta_u^T Phi(X_i)                                                        (eq. 6)

No item bias and no non-visual item factors (the paper found dropping them helps); alpha and
beta_u cancel in the BPR difference and are not modelled. theta_u is initialised
uniform(0, 1) / 100, as the authors' code.

With `visual_bias` (off in the paper's and the authors' presets) the score gains VBPR's
visual bias (He & McAuley, AAAI 2016), a K-vector beta' shared by all users:

    x_ui = theta_u^T Phi(X_i) + beta'^T Phi(X_i) = (theta_u + beta')^T Phi(X_i)

so what every user likes in an image (one direction of Phi) is learnt from all users'
pairs, and lambda_2 shrinks a user with few interactions towards beta' rather than towards
0. beta' starts at 0 and is not decayed (the tower's kernels are). `user_vectors` gives
theta_u + beta', which is what every consumer (evaluation, export, design) multiplies with
Phi.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from dvbpr_tf.models import cnn_f
from dvbpr_tf.models import losses


@keras.saving.register_keras_serializable(package="dvbpr_tf")
class Dvbpr(keras.Model):
  """The Siamese recommender: positive and negative images go through the same tower."""

  metric_names = ("loss", "bpr", "weight_decay", "theta_decay")

  def __init__(self, num_users: int, tower: cnn_f.TowerConfig = cnn_f.TowerConfig(),
               weight_decay: float = 1e-3, theta_decay: float = 1.0,
               visual_bias: bool = False, **kwargs):
    """`weight_decay` (lambda_1, on the tower's kernels) and `theta_decay` (lambda_2, on the
    batch's theta_u rows) weigh the regularisers of `loss_terms`; `visual_bias` adds the
    shared beta' (see the module docstring)."""
    super().__init__(**kwargs)
    self.num_users = int(num_users)
    self.weight_decay, self.theta_decay = float(weight_decay), float(theta_decay)
    self.tower = cnn_f.CnnF(tower, name="cnn_f")
    self.theta = self.add_weight(
        shape=(self.num_users, tower.embedding_dim), name="theta",
        initializer=keras.initializers.RandomUniform(0.0, 0.01))
    self.visual_bias = (self.add_weight(shape=(tower.embedding_dim,), name="visual_bias",
                                        initializer="zeros") if visual_bias else None)

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
    """The users' preference vectors [B, K]: theta_u (+ beta' with `visual_bias`)."""
    return self._with_bias(self._theta_rows(users))

  def all_user_vectors(self) -> tf.Tensor:
    """Every user's preference vector, [num_users, K]."""
    return self._with_bias(tf.convert_to_tensor(self.theta))

  def _theta_rows(self, users: tf.Tensor) -> tf.Tensor:
    # Inside a mixed-precision call Keras reads variables as float16; the scores stay float32.
    return tf.cast(tf.gather(self.theta, users), self.theta.dtype)

  def _with_bias(self, theta: tf.Tensor) -> tf.Tensor:
    if self.visual_bias is None:
      return theta
    return theta + tf.cast(self.visual_bias, theta.dtype)

  def score(self, users: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
    """x_ui for aligned pairs (users[k], images[k]) (eq. 6)."""
    return tf.reduce_sum(self.user_vectors(users) * self.item_embeddings(images), axis=-1)

  def call(self, batch, training=False):
    """A BPR batch -> dict of `x_ui`, `x_uj` [B] and `theta` [B, K] (the batch's theta_u rows,
    which lambda_2 decays; without beta')."""
    theta = self._theta_rows(batch["user"])
    preference = self._with_bias(theta)
    x_ui = tf.reduce_sum(preference * self.item_embeddings(batch["pos_image"], training), -1)
    x_uj = tf.reduce_sum(preference * self.item_embeddings(batch["neg_image"], training), -1)
    return {"x_ui": x_ui, "x_uj": x_uj, "theta": theta}

  def loss_terms(self, batch, training: bool = False) -> dict[str, tf.Tensor]:
    """The authors' objective (eq. 5) of a batch: dict of `loss`, `bpr`, `weight_decay`,
    `theta_decay` (see `losses.dvbpr_loss`), computed in float32."""
    out = self(batch, training=training)
    return losses.dvbpr_loss(
        tf.cast(out["x_ui"], tf.float32), tf.cast(out["x_uj"], tf.float32),
        self.tower.kernels, tf.cast(out["theta"], tf.float32),
        self.weight_decay, self.theta_decay)
