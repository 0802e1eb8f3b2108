"""Fold-in: the preference vector of a user who was not in the training set, from a few liked
items or photos, with the tower and the catalog fixed.

DVBPR's objective (eq. 5) restricted to one new user u, every Phi fixed, is a function of
theta_u alone. Per training pair it is softplus(-(x_ui - x_uj)) + (lambda_2 / 2) ||theta_u||^2
(the BPR term and the share of lambda_2's decay that the pair's theta_u row carries in
`losses.dvbpr_loss`), so over the user's pairs

    L(theta) = (1 / W) sum_{i, j} w_ij softplus(-p^T (Phi_i - Phi_j)) + (lambda_2 / 2) ||theta||^2

with p = theta + beta' (beta' the visual bias, zero without it: x_ui = p^T Phi_i, eq. 6), i
over the liked items, j over `negatives` catalog items drawn uniformly (a seeded, stateless
draw: the same input gives the same answer) and w_ij = 0 where j is one of the liked items
(the training sampler's j is outside I_u^+), W = sum w_ij.

L is strictly convex in theta (lambda_2 > 0), so it is minimised by Newton's method from
theta = 0 (near where training starts a user: uniform(0, 1) / 100) for a fixed number of steps,
in the graph, with s_ij = p^T (Phi_i - Phi_j), c_ij = w_ij sigmoid(-s_ij) / W and
h_ij = w_ij sigmoid(s_ij) sigmoid(-s_ij) / W:

    grad = -(sum_i c_i. Phi_i - sum_j c_.j Phi_j) + lambda_2 theta
    H = sum_ij h_ij (Phi_i - Phi_j)(Phi_i - Phi_j)^T + lambda_2 I
    theta <- theta - t H^-1 grad

(t = 1, halved while L does not fall enough: Armijo's backtracking, so a small lambda_2 and
separable likes cannot make a step overshoot)

written with the row and column sums of c and h, so a step costs O(n M + (n + M) K^2) for n
liked items, M negatives and K factors, never an [n M, K] tensor. `tests/test_fold_in.py`
checks that the gradient vanishes at the result (against NumPy) and that folding in a
trained user's own training items ranks the catalog as the trained theta_u does.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from dvbpr_tf.core import checks


@dataclasses.dataclass(frozen=True)
class FoldInConfig:
  """Attributes:
    negatives: catalog items drawn per fold-in (all of them when the catalog is smaller).
    steps: Newton steps (each solves one K x K system).
    seed: the draw of the negatives.
  """

  negatives: int = 2048
  steps: int = 12
  seed: int = 0

  def __post_init__(self):
    checks.integer("negatives", self.negatives, 1)
    checks.integer("steps", self.steps, 1, 1000)
    checks.integer("seed", self.seed, 0)


def draw_negatives(num_items: int, config: FoldInConfig) -> tf.Tensor:
  """`config.negatives` item ids uniform over [0, num_items) (every item, in order, when the
  catalog holds no more than that): int64 [M], the same for every call."""
  if num_items <= config.negatives:
    return tf.range(num_items, dtype=tf.int64)
  return tf.random.stateless_uniform([config.negatives], seed=[config.seed, 0], minval=0,
                                     maxval=num_items, dtype=tf.int64)


def fold_in(liked: tf.Tensor, negatives: tf.Tensor, theta_decay: float,
            prior: tf.Tensor | None = None, weights: tf.Tensor | None = None,
            steps: int = FoldInConfig.steps) -> tf.Tensor:
  """theta minimising L (module docstring).

  Args:
    liked: float32 [n, K], Phi of the liked items or photos.
    negatives: float32 [M, K], Phi of the drawn negatives.
    theta_decay: lambda_2 (> 0).
    prior: float32 [K], beta' (None: zero).
    weights: float32 [n, M], w_ij (None: all 1).
    steps: Newton steps.

  Returns:
    float32 [K]: theta (the user's scores are (theta + prior)^T Phi).
  """
  liked = tf.convert_to_tensor(liked, tf.float32)
  negatives = tf.convert_to_tensor(negatives, tf.float32)
  dim = tf.shape(liked)[1]
  prior = tf.zeros([dim]) if prior is None else tf.convert_to_tensor(prior, tf.float32)
  if weights is None:
    weights = tf.ones([tf.shape(liked)[0], tf.shape(negatives)[0]])
  weights = weights / tf.maximum(tf.reduce_sum(weights), 1.0)
  decay = tf.constant(theta_decay, tf.float32)
  identity = tf.eye(dim)

  def newton_step(theta):
    p = theta + prior
    s = (tf.linalg.matvec(liked, p)[:, tf.newaxis]
         - tf.linalg.matvec(negatives, p)[tf.newaxis, :])  # [n, M]
    c = weights * tf.sigmoid(-s)
    h = weights * tf.sigmoid(s) * tf.sigmoid(-s)
    grad = (-(tf.linalg.matvec(liked, tf.reduce_sum(c, 1), transpose_a=True)
              - tf.linalg.matvec(negatives, tf.reduce_sum(c, 0), transpose_a=True))
            + decay * theta)
    cross = tf.matmul(liked, tf.matmul(h, negatives), transpose_a=True)  # Phi_L^T h Phi_N.
    hessian = (tf.matmul(liked * tf.reduce_sum(h, 1)[:, tf.newaxis], liked, transpose_a=True)
               + tf.matmul(negatives * tf.reduce_sum(h, 0)[:, tf.newaxis], negatives,
                           transpose_a=True)
               - cross - tf.transpose(cross) + decay * identity)
    step = -tf.linalg.solve(hessian, grad[:, tf.newaxis])[:, 0]
    return theta + backtrack(theta, step, tf.reduce_sum(grad * step))

  def loss(theta):
    return objective(theta, liked, negatives, decay, prior, weights, normalised=True)

  def backtrack(theta, step, slope):
    """The Newton step, halved until L falls by at least 1e-4 of its linear prediction (at
    most 30 times): a full step almost always, but no overshoot when lambda_2 is small and
    the liked items are separable from the negatives."""
    start = loss(theta)
    too_long = lambda t: loss(theta + t * step) > start + 1e-4 * t * slope
    size = tf.while_loop(lambda t, n: tf.logical_and(n < 30, too_long(t)),
                         lambda t, n: (t / 2.0, n + 1), (tf.constant(1.0), tf.constant(0)))[0]
    return size * step

  _, theta = tf.while_loop(lambda n, _: n < steps,
                           lambda n, theta: (n + 1, newton_step(theta)),
                           (tf.constant(0), tf.zeros([dim])))
  return theta


def objective(theta, liked, negatives, theta_decay, prior=None, weights=None,
              normalised: bool = False) -> tf.Tensor:
  """L(theta) of the module docstring (`normalised`: `weights` already sum to 1)."""
  prior = tf.zeros_like(theta) if prior is None else prior
  p = theta + prior
  s = (tf.linalg.matvec(liked, p)[:, tf.newaxis] - tf.linalg.matvec(negatives, p)[tf.newaxis])
  weights = tf.ones_like(s) if weights is None else tf.cast(weights, s.dtype)
  total = 1.0 if normalised else tf.maximum(tf.reduce_sum(weights), 1.0)
  return (tf.reduce_sum(weights * tf.nn.softplus(-s)) / total
          + 0.5 * theta_decay * tf.reduce_sum(tf.square(theta)))
