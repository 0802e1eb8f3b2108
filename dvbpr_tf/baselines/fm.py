"""FM: a factorisation machine trained with BPR (baseline (f) of Table III).

Rendle's factorisation machine over the input (one-hot user u, one-hot item i, item
features f_i),

    y(x) = w_0 + sum_k w_k x_k + sum_{k < l} <v_k, v_l> x_k x_l,

restricted as the paper says (sec. IV-B) to the user-item and user-item-feature interactions,
and trained by BPR (eq. 5 with this predictor). w_0, the user's linear weight and every term
without the item cancel in x_ui - x_uj, and the item x item-feature and item-feature x
item-feature interactions are left out, leaving

    x_ui = w_i + w_f . f_i + v_u . (v_i + V^T f_i)

with f_i [F] the item's fixed, pre-trained feature vector, w_i the item's linear weight, w_f
[F] the features' linear weights, v_u, v_i [K] the user's and item's factors and V [F, K] the
features' factors. The minimised loss, a sum over the batch:

    L = - sum_{(u,i,j) in batch} ln sigmoid(x_ui - x_uj)
        + reg * (l2_loss(v_u) + l2_loss(v_i) + l2_loss(v_j) + l2_loss(w_i) + l2_loss(w_j))
        + reg * (l2_loss(V) + l2_loss(w_f))

i.e. the batch's rows (a row drawn twice counts twice) and, once per batch, the whole of the
shared feature parameters V and w_f; l2_loss(t) = sum(t^2) / 2. The features are a
constant of the model (not a weight: not checkpointed). All parameters start N(0, 0.01^2).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from dvbpr_tf.baselines import bpr_mf
from dvbpr_tf.core import distribution
from dvbpr_tf.models import losses


@dataclasses.dataclass(frozen=True)
class FmConfig(bpr_mf.MfConfig):
  """Attributes:
    dim: K, the number of factors of every input (user, item, feature).
    reg: lambda, on the batch's rows and on V and w_f.
  """


class FactorizationMachine(bpr_mf.BprModel):
  """x_ui = w_i + w_f . f_i + v_u . (v_i + V^T f_i), BPR-trained.

  Args:
    num_users: size of the user id space.
    features: [num_items, F] fixed item features.
    config: K and lambda.
    seed: seeds the initial values.
  """

  def __init__(self, num_users: int, features: np.ndarray, config: FmConfig = FmConfig(),
               seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    num_features, rng = self._start_feature_model(num_users, features, config, seed)
    self.v_user = bpr_mf.add_normal_weight(self, (self.num_users, config.dim), "v_user", rng)
    self.v_item = bpr_mf.add_normal_weight(self, (self.num_items, config.dim), "v_item", rng)
    self.v_feature = bpr_mf.add_normal_weight(self, (num_features, config.dim), "v_feature",
                                              rng)
    self.w_item = bpr_mf.add_normal_weight(self, (self.num_items,), "w_item", rng)
    self.w_feature = bpr_mf.add_normal_weight(self, (num_features,), "w_feature", rng)
    self.built = True  # Every weight exists; nothing depends on an input shape.

  def item_terms(self, items: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """(v_i + V^T f_i [n, K], w_i + w_f . f_i [n]) of `items` (all items when None)."""
    if items is None:
      f, v, w = self.features, self.v_item, self.w_item
    else:
      f = tf.gather(self.features, items)
      v, w = tf.gather(self.v_item, items), tf.gather(self.w_item, items)
    factors = v + tf.matmul(f, self.v_feature)
    linear = w + tf.linalg.matvec(f, self.w_feature)
    return factors, linear

  def score(self, users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
    """x_ui for aligned pairs (users[k], items[k]): [B]."""
    factors, linear = self.item_terms(items)
    return tf.reduce_sum(tf.gather(self.v_user, users) * factors, axis=-1) + linear

  def score_rows(self, users: tf.Tensor) -> tf.Tensor:
    """x_ui of the given users over every item: [B, num_items]."""
    factors, linear = self.item_terms()
    return (tf.matmul(tf.gather(self.v_user, users), factors, transpose_b=True)
            + linear[tf.newaxis, :])

  def call(self, users, training=False):
    del training
    return self.score_rows(users)

  def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
    """x_ui as one inner product (`bpr_mf.inner_product_form`): ([v_u, 1],
    [v_i + V^T f_i, w_i + w_f . f_i])."""
    factors, linear = self.item_terms()
    return bpr_mf.inner_product_form([self.v_user], [factors], linear)

  def regularization(self, users: tf.Tensor, pos: tf.Tensor, neg: tf.Tensor) -> tf.Tensor:
    """reg * (l2_loss of the rows v_u, v_i, v_j, w_i, w_j + l2_loss(V) + l2_loss(w_f))."""
    rows = [tf.gather(self.v_user, users), tf.gather(self.v_item, pos),
            tf.gather(self.v_item, neg), tf.gather(self.w_item, pos),
            tf.gather(self.w_item, neg)]
    model_terms = losses.l2_loss(self.v_feature) + losses.l2_loss(self.w_feature)
    # The model's own matrices count once per step: each replica adds its share.
    return self.config.reg * (tf.add_n([losses.l2_loss(t) for t in rows])
                              + distribution.replica_share(model_terms))

