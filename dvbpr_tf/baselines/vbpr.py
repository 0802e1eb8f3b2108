"""VBPR: visually-aware BPR on fixed, pre-trained image features (baseline (g) of Table III).

He & McAuley's predictor as the paper writes it,

    x_ui = alpha + beta_u + beta_i + gamma_u^T gamma_i + theta_u^T (E f_i)             (eq. 2)

with f_i [F] the item's pre-trained feature vector and E a learned embedding to K' visual
factors (stored here as an [F, K'] matrix, so E f_i is `f_i @ E`). alpha and beta_u cancel in
the BPR difference and are not modelled. As eq. 2, and unlike VBPR's original paper, there is
no visual bias term beta'^T f_i. Trained by BPR (eq. 5 with this predictor); the minimised
loss, a sum over the batch:

    L = - sum_{(u,i,j) in batch} ln sigmoid(x_ui - x_uj)
        + reg * (l2_loss(gamma_u) + l2_loss(theta_u) + l2_loss(gamma_i) + l2_loss(gamma_j)
                 + l2_loss(beta_i) + l2_loss(beta_j))
        + reg_E * l2_loss(E)

over the batch's rows (a row drawn twice counts twice) and, once per batch, the whole of E;
l2_loss(t) = sum(t^2) / 2. The features are a constant of the model (not a weight: not
checkpointed). All parameters start N(0, 0.01^2).

`visual_bias=True` gives He & McAuley's original predictor (VBPR, AAAI 2016, eq. 4), which adds
the visual bias beta'^T f_i, one [F] vector shared by all users (what a user-independent
"looks popular" costs nothing to learn from the features):

    x_ui = beta_i + gamma_u^T gamma_i + theta_u^T (E f_i) + beta'^T f_i

with beta' regularised as E, reg_E * l2_loss(beta') once per batch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from dvbpr_tf.baselines import bpr_mf
from dvbpr_tf.core import checks
from dvbpr_tf.core import distribution
from dvbpr_tf.models import losses


@dataclasses.dataclass(frozen=True)
class VbprConfig:
  """Attributes:
    dim: K, the non-visual factors gamma.
    visual_dim: K', the visual factors theta_u and the columns of E (None: = dim).
    reg: lambda, on the batch's rows.
    reg_E: lambda_E, on E (and beta') (None: = reg).
    visual_bias: add beta'^T f_i (He & McAuley's form; False: the paper's eq. 2).
  """

  dim: int = 10
  visual_dim: int | None = None
  reg: float = 0.01
  reg_E: float | None = None  # pylint: disable=invalid-name
  visual_bias: bool = False

  def __post_init__(self):
    if self.visual_dim is None:
      object.__setattr__(self, "visual_dim", self.dim)
    if self.reg_E is None:
      object.__setattr__(self, "reg_E", self.reg)
    checks.integer("dim", self.dim, 1)
    checks.integer("visual_dim", self.visual_dim, 1)
    checks.number("reg", self.reg, minimum=0)
    checks.number("reg_E", self.reg_E, minimum=0)


class Vbpr(bpr_mf.BprModel):
  """x_ui = beta_i + gamma_u . gamma_i + theta_u . (E f_i) (eq. 2), BPR-trained.

  Args:
    num_users: size of the user id space.
    features: [num_items, F] fixed item features f_i.
    config: K, K', lambda, lambda_E.
    seed: seeds the initial values.
  """

  def __init__(self, num_users: int, features: np.ndarray, config: VbprConfig = VbprConfig(),
               seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    num_features, rng = self._start_feature_model(num_users, features, config, seed)
    self.gamma_user = bpr_mf.add_normal_weight(self, (self.num_users, config.dim),
                                               "gamma_user", rng)
    self.gamma_item = bpr_mf.add_normal_weight(self, (self.num_items, config.dim),
                                               "gamma_item", rng)
    self.beta_item = bpr_mf.add_normal_weight(self, (self.num_items,), "beta_item", rng)
    self.theta_user = bpr_mf.add_normal_weight(self, (self.num_users, config.visual_dim),
                                               "theta_user", rng)
    self.embedding = bpr_mf.add_normal_weight(self, (num_features, config.visual_dim),
                                              "embedding", rng)
    self.visual_bias = (bpr_mf.add_normal_weight(self, (num_features,), "visual_bias", rng)
                        if config.visual_bias else None)
    self.built = True  # Every weight exists; nothing depends on an input shape.

  def visual_factors(self, items: tf.Tensor | None = None) -> tf.Tensor:
    """E f_i of `items` (all items when None): [n, K']."""
    features = self.features if items is None else tf.gather(self.features, items)
    return tf.matmul(features, self.embedding)

  def item_bias(self, items: tf.Tensor | None = None) -> tf.Tensor:
    """beta_i (+ beta'^T f_i with the visual bias) of `items` (all when None): [n]."""
    bias = self.beta_item if items is None else tf.gather(self.beta_item, items)
    if self.visual_bias is None:
      return bias
    features = self.features if items is None else tf.gather(self.features, items)
    return bias + tf.linalg.matvec(features, self.visual_bias)

  def score(self, users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
    """x_ui for aligned pairs (users[k], items[k]): [B]."""
    return (tf.reduce_sum(tf.gather(self.gamma_user, users) * tf.gather(self.gamma_item, items),
                          axis=-1)
            + tf.reduce_sum(tf.gather(self.theta_user, users) * self.visual_factors(items),
                            axis=-1)
            + self.item_bias(items))

  def score_rows(self, users: tf.Tensor) -> tf.Tensor:
    """x_ui of the given users over every item: [B, num_items]."""
    return (tf.matmul(tf.gather(self.gamma_user, users), self.gamma_item, transpose_b=True)
            + tf.matmul(tf.gather(self.theta_user, users), self.visual_factors(),
                        transpose_b=True)
            + self.item_bias()[tf.newaxis, :])

  def call(self, users, training=False):
    del training
    return self.score_rows(users)

  def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
    """x_ui as one inner product (`bpr_mf.inner_product_form`): ([gamma_u, theta_u, 1],
    [gamma_i, E f_i, beta_i (+ beta'^T f_i)])."""
    return bpr_mf.inner_product_form([self.gamma_user, self.theta_user],
                                     [self.gamma_item, self.visual_factors()],
                                     self.item_bias())

  def regularization(self, users: tf.Tensor, pos: tf.Tensor, neg: tf.Tensor) -> tf.Tensor:
    """reg * l2_loss of the rows gamma_u, theta_u, gamma_i, gamma_j, beta_i, beta_j
    + reg_E * (l2_loss(E) [+ l2_loss(beta')])."""
    rows = [tf.gather(self.gamma_user, users), tf.gather(self.theta_user, users),
            tf.gather(self.gamma_item, pos), tf.gather(self.gamma_item, neg),
            tf.gather(self.beta_item, pos), tf.gather(self.beta_item, neg)]
    shared = losses.l2_loss(self.embedding)
    if self.visual_bias is not None:
      shared += losses.l2_loss(self.visual_bias)
    return (self.config.reg * tf.add_n([losses.l2_loss(t) for t in rows])
            + distribution.replica_share(self.config.reg_E * shared))

