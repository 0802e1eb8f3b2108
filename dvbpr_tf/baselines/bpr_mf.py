"""BPR-MF: matrix factorisation trained with BPR (baseline (d) of Table III).

The preference predictor of eq. 1,

    x_ui = alpha + beta_u + beta_i + gamma_u^T gamma_i                               (eq. 1)

trained by BPR (the objective of eq. 5 with this x_ui). alpha and beta_u are the same for
x_ui and x_uj and cancel in the BPR difference, so they are not modelled:
x_ui = beta_i + gamma_u . gamma_i. The minimised loss, as the DVBPR loss a sum over the batch:

    L = - sum_{(u,i,j) in batch} ln sigmoid(x_ui - x_uj)
        + reg * (l2_loss(gamma_u) + l2_loss(gamma_i) + l2_loss(gamma_j)
                 + l2_loss(beta_i) + l2_loss(beta_j))

over the batch's rows (a row drawn twice counts twice), l2_loss(t) = sum(t^2) / 2. All
parameters start N(0, 0.01^2).

The fast path (`sgd_step`, used under plain SGD): one step with the gradient written out
instead of taken by GradientTape. With dL/dx_ui = a and dL/dx_uj = b per pair (BPR:
a = -sigmoid(x_uj - x_ui), b = -a),

    dL/dgamma_u = a gamma_i + b gamma_j + reg gamma_u,
    dL/dgamma_i = a gamma_u + reg gamma_i,     dL/dbeta_i = a + reg beta_i,
    dL/dgamma_j = b gamma_u + reg gamma_j,     dL/dbeta_j = b + reg beta_j,

every value read before any row moves, each row moved by -rate times the sum of its
loss gradients over the batch (a scatter_sub of the rows used: what SGD does with the
IndexedSlices gradient of tf.gather). The regulariser's part of a row used n times in the
batch is compounded as n per-sample SGD steps would apply it, row * (1 - (1 - rate * reg)^n),
instead of summed, n * rate * reg * row: on large batches a popular item is used dozens of
times, and the summed form overshoots (n * rate * reg > 2 diverges: reg = 10 at rate 0.01 on
batches of 2,048 did, at Amazon Fashion's popularity). For rows used once the step is the
update of `keras.optimizers.SGD` on `loss_terms` (tests/test_baselines.py compares the two;
and the compounding against its formula), with about half the ops.

The helpers (`check_features`, `add_normal_weight`, `constant_tensor`) and the base class
`BprModel` are shared by the other baselines.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from dvbpr_tf.core import checks
from dvbpr_tf.core import errors
from dvbpr_tf.models import losses

INIT_STDDEV = 0.01


def add_normal_weight(layer: keras.layers.Layer, shape, name: str, rng: np.random.Generator,
                      stddev: float = INIT_STDDEV, trainable: bool = True):
  """A float32 weight of `layer` drawn N(0, stddev^2) from `rng` (NumPy, so the initial
  values depend only on the seed and on the order of creation)."""
  weight = layer.add_weight(shape=tuple(shape), name=name, initializer="zeros",
                            trainable=trainable)
  weight.assign(rng.normal(0.0, stddev, tuple(shape)).astype(np.float32))
  return weight


def constant_tensor(value) -> tf.Tensor:
  """Fixed inputs of a model (e.g. item features) as a float32 tensor that is not a weight:
  no optimiser sees it and no checkpoint stores it (4,096-d features of Amazon Fashion's
  234,892 items are 3.85 GB; the model is rebuilt from the same features before a restore).
  A float32 tensor is kept as it is, so models over one feature matrix share its memory."""
  if isinstance(value, tf.Tensor) and value.dtype == tf.float32:
    return value
  return tf.constant(np.asarray(value, np.float32))


def check_features(features, num_items: int | None = None) -> np.ndarray:
  """Item features as float32 [num_items, F]; ConfigError when malformed."""
  features = np.asarray(features, np.float32)
  if features.ndim != 2 or features.shape[0] < 1 or features.shape[1] < 1:
    raise errors.ConfigError(
        f"features must be a non-empty [num_items, F] matrix, got shape {features.shape}")
  if num_items is not None and features.shape[0] != num_items:
    raise errors.ConfigError(
        f"features has {features.shape[0]} rows but the catalog has {num_items} items")
  if not np.all(np.isfinite(features)):
    raise errors.ConfigError("features holds NaN or infinite values")
  return features


@dataclasses.dataclass(frozen=True)
class MfConfig:
  """The two numbers of every factor model of Table III, grid-searched by the paper (the
  other baselines' configs add theirs to these).

  Attributes:
    dim: K, the number of latent factors (the paper searches {10, 30, 50}).
    reg: lambda, the L2 regulariser on the batch's rows (the paper searches
      {0, 0.001, 0.01, 0.1, 1, 10, 30}).
  """

  dim: int = 10
  reg: float = 0.01

  def __post_init__(self):
    checks.integer("dim", self.dim, 1)
    checks.number("reg", self.reg, minimum=0)


def scatter_sub(variable, rows: tf.Tensor, delta: tf.Tensor) -> None:
  """variable[rows] -= delta, summed over repeated rows; only those rows are written."""
  variable.value.scatter_sub(tf.IndexedSlices(delta, rows))


@dataclasses.dataclass(frozen=True)
class PairRows:
  """The rows a pairwise step of eq. 1's predictor reads: indices and values [B] / [B, K]."""

  users: tf.Tensor
  pos: tf.Tensor
  neg: tf.Tensor
  gamma_u: tf.Tensor
  gamma_i: tf.Tensor
  gamma_j: tf.Tensor
  beta_i: tf.Tensor
  beta_j: tf.Tensor

  @property
  def x_ui(self) -> tf.Tensor:
    return tf.reduce_sum(self.gamma_u * self.gamma_i, axis=-1) + self.beta_i

  @property
  def x_uj(self) -> tf.Tensor:
    return tf.reduce_sum(self.gamma_u * self.gamma_j, axis=-1) + self.beta_j


def inner_product_form(user_parts, item_parts, item_bias) -> tuple[np.ndarray, np.ndarray]:
  """x_ui = sum_k user_parts[k][u] . item_parts[k][i] + item_bias[i] written as one inner
  product: ([user parts..., 1], [item parts..., bias]) as float32 NumPy arrays."""
  users = [keras.ops.convert_to_numpy(part).astype(np.float32) for part in user_parts]
  items = [keras.ops.convert_to_numpy(part).astype(np.float32) for part in item_parts]
  ones = np.ones((len(users[0]), 1), np.float32)
  bias = keras.ops.convert_to_numpy(item_bias).astype(np.float32).reshape(-1, 1)
  return np.concatenate([*users, ones], axis=1), np.concatenate([*items, bias], axis=1)


class BprModel(keras.Model):
  """A model trained by summed BPR plus its own regulariser: subclasses define
  `score(users, items)` (aligned pairs) and `regularization(users, pos, neg)`."""

  def _start_feature_model(self, num_users: int, features, config, seed: int):
    """What a model over fixed item features (FM, VBPR) starts with: the checks, the sizes,
    the config, the features as a constant tensor (not checkpointed). Returns
    (num_features, the rng of the initial values)."""
    checks.integer("num_users", num_users, 1)
    self.num_users, self.config = int(num_users), config
    self.num_items, num_features = check_features(features).shape
    self.features = constant_tensor(features)
    return num_features, np.random.default_rng(seed)

  metric_names = ("loss", "bpr", "regularization")

  def loss_terms(self, batch, training: bool = False) -> dict[str, tf.Tensor]:
    """The BPR loss of a batch dict of int64 [B] `user`, `pos`, `neg` (see the module
    docstring): dict of `loss`, `bpr`, `regularization`."""
    del training  # No dropout.
    users, pos, neg = batch["user"], batch["pos"], batch["neg"]
    bpr = losses.bpr_loss(self.score(users, pos), self.score(users, neg))
    reg = self.regularization(users, pos, neg)
    return {"loss": bpr + reg, "bpr": bpr, "regularization": reg}


class BprMf(BprModel):
  """x_ui = beta_i + gamma_u . gamma_i (eq. 1 without the terms that cancel), BPR-trained.

  Args:
    num_users, num_items: sizes of the id spaces.
    config: K and lambda.
    seed: seeds the initial values.
  """

  def __init__(self, num_users: int, num_items: int, config: MfConfig = MfConfig(),
               seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    checks.integer("num_users", num_users, 1)
    checks.integer("num_items", num_items, 1)
    self.num_users, self.num_items, self.config = int(num_users), int(num_items), config
    rng = np.random.default_rng(seed)
    self.gamma_user = add_normal_weight(self, (self.num_users, config.dim), "gamma_user", rng)
    self.gamma_item = add_normal_weight(self, (self.num_items, config.dim), "gamma_item", rng)
    self.beta_item = add_normal_weight(self, (self.num_items,), "beta_item", rng)
    self.built = True  # Every weight exists; nothing depends on an input shape.

  def score(self, users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
    """x_ui for aligned pairs (users[k], items[k]): [B]."""
    return (tf.reduce_sum(tf.gather(self.gamma_user, users) * tf.gather(self.gamma_item, items),
                          axis=-1)
            + tf.gather(self.beta_item, items))

  def score_rows(self, users: tf.Tensor) -> tf.Tensor:
    """x_ui of the given users over every item: [B, num_items]."""
    return (tf.matmul(tf.gather(self.gamma_user, users), self.gamma_item, transpose_b=True)
            + self.beta_item[tf.newaxis, :])

  def call(self, users, training=False):
    del training
    return self.score_rows(users)

  def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
    """x_ui as one inner product, for the evaluator's embedding path: ([gamma_u, 1]
    [num_users, K+1], [gamma_i, beta_i] [num_items, K+1])."""
    return inner_product_form([self.gamma_user], [self.gamma_item], self.beta_item)

  def item_rows_l2(self, items: tf.Tensor) -> tf.Tensor:
    """l2_loss(gamma_i) + l2_loss(beta_i) over the rows `items` [B] (a row listed twice
    counts twice)."""
    return (losses.l2_loss(tf.gather(self.gamma_item, items))
            + losses.l2_loss(tf.gather(self.beta_item, items)))

  def regularization(self, users: tf.Tensor, pos: tf.Tensor, neg: tf.Tensor) -> tf.Tensor:
    """reg * l2_loss of the batch's rows gamma_u, gamma_i, gamma_j, beta_i, beta_j."""
    return self.config.reg * (losses.l2_loss(tf.gather(self.gamma_user, users))
                              + self.item_rows_l2(pos) + self.item_rows_l2(neg))

  # --- the fast path (module docstring) ---------------------------------------------------

  def pair_rows(self, users: tf.Tensor, pos: tf.Tensor, neg: tf.Tensor) -> PairRows:
    """The rows of the triplets (users[k], pos[k], neg[k]), read now."""
    return PairRows(users, pos, neg, tf.gather(self.gamma_user, users),
                    tf.gather(self.gamma_item, pos), tf.gather(self.gamma_item, neg),
                    tf.gather(self.beta_item, pos), tf.gather(self.beta_item, neg))

  def descend(self, rows: PairRows, d_pos: tf.Tensor, d_neg: tf.Tensor, rate,
              neg_weight: tf.Tensor | None = None) -> None:
    """One SGD step on the rows, given dL/dx_ui = `d_pos` and dL/dx_uj = `d_neg` [B] and
    the regulariser reg * (l2_loss of gamma_u, gamma_i, beta_i, and, weighted by
    `neg_weight` [B] (default 1), of gamma_j, beta_j); the regulariser's part compounded
    over a row's uses in the batch (module docstring)."""
    weight = tf.ones_like(d_neg) if neg_weight is None else neg_weight
    ones = tf.ones_like(d_pos)
    a, b = d_pos[:, tf.newaxis], d_neg[:, tf.newaxis]
    items = tf.concat([rows.pos, rows.neg], axis=0)
    item_uses = tf.concat([ones, weight], axis=0)
    user_decay = self._decay(rows.users, ones, self.num_users, rate)
    item_decay = self._decay(items, item_uses, self.num_items, rate)
    step_user = (rate * (a * rows.gamma_i + b * rows.gamma_j)
                 + user_decay[:, tf.newaxis] * rows.gamma_u)
    gamma_items = tf.concat([rows.gamma_i, rows.gamma_j], axis=0)
    step_items = (rate * tf.concat([a * rows.gamma_u, b * rows.gamma_u], axis=0)
                  + item_decay[:, tf.newaxis] * gamma_items)
    step_bias = (rate * tf.concat([d_pos, d_neg], axis=0)
                 + item_decay * tf.concat([rows.beta_i, rows.beta_j], axis=0))
    scatter_sub(self.gamma_user, rows.users, step_user)
    scatter_sub(self.gamma_item, items, step_items)
    scatter_sub(self.beta_item, items, step_bias)

  def _decay(self, rows: tf.Tensor, uses: tf.Tensor, num_rows: int, rate) -> tf.Tensor:
    """Per use k of a row r (weight `uses`[k]), its share of the regulariser's step:
    uses[k] * (1 - (1 - rate * reg)^n_r) / n_r, n_r the row's total weight in the batch, so
    that a row's shares add up to 1 - (1 - rate * reg)^n_r (rate * reg for one use)."""
    shrink = 1.0 - rate * self.config.reg
    total = tf.gather(tf.math.unsorted_segment_sum(uses, rows, num_rows), rows)
    safe = tf.maximum(total, 1e-12)
    return tf.where(total > 0, uses * (1.0 - tf.pow(shrink, total)) / safe, 0.0)

  def sgd_step(self, batch, rate) -> dict[str, tf.Tensor]:
    """One SGD step of step size `rate` on `loss_terms(batch)`, the gradient written out
    (module docstring); returns the loss terms at the values before the step."""
    rows = self.pair_rows(batch["user"], batch["pos"], batch["neg"])
    x_ui, x_uj = rows.x_ui, rows.x_uj
    bpr = losses.bpr_loss(x_ui, x_uj)
    reg = self.config.reg * (losses.l2_loss(rows.gamma_u) + losses.l2_loss(rows.gamma_i)
                             + losses.l2_loss(rows.beta_i) + losses.l2_loss(rows.gamma_j)
                             + losses.l2_loss(rows.beta_j))
    d_pos = -tf.sigmoid(x_uj - x_ui)  # d softplus(x_uj - x_ui) / d x_ui.
    self.descend(rows, d_pos, -d_pos, rate)
    return {"loss": bpr + reg, "bpr": bpr, "regularization": reg}

