"""WARP: matrix factorisation trained with the WARP loss (baseline (c) of Table III).

The predictor is BPR-MF's (eq. 1 without the terms that cancel in a pairwise loss),
x_ui = beta_i + gamma_u . gamma_i; only the loss differs. WARP (Weston et al., IJCAI 2011,
"WSABIE"; as LightFM's `loss='warp'`), for each training pair (u, i) of the batch:

1. draw up to `max_sampled` candidate negatives j_1, j_2, ... uniformly over the items,
   each redrawn while it is one of u's training items (so candidates are true negatives);
2. the violator is the first candidate j_t with x_uj > x_ui - 1 (margin 1), at 1-based
   trial t; with no violator among the `max_sampled` candidates the pair contributes 0;
3. the rank of i is estimated as r = floor((num_items - 1) / t), weighted by
   L(r) = sum_{k=1..r} 1/k (held constant: no gradient flows through it);
4. the pair contributes L(r) * (1 - x_ui + x_uj) (positive, since j violates the margin).

    L = sum_{(u,i) in batch with a violator j} L(r_ui) * (1 - x_ui + x_uj)
        + reg * (l2_loss(gamma_u) + l2_loss(gamma_i) + l2_loss(beta_i)         [every pair]
                 + l2_loss(gamma_j) + l2_loss(beta_j))                  [pairs with a violator]

The regulariser is BPR-MF's over the rows the step uses, with j the violator: a pair without
one has no negative row. The sampler draws no negative for WARP (`draw_negatives=False`).

The candidates are a pure function of (seed, batch index): stateless random ops keyed on
`fold_in(seed, batch['batch'])`, so a resumed run draws the same as an uninterrupted one.
Differences from LightFM: LightFM weights by log(max(1, floor((n - 1) / t))) rather than the
harmonic sum L(r) of the WARP paper, and counts a drawn training item as a trial; here a drawn
training item is redrawn and does not count. All candidates are scored at once (vectorised),
which picks the same violator as LightFM's one-at-a-time loop.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import tensorflow as tf

from dvbpr_tf.baselines import bpr_mf
from dvbpr_tf.core import checks
from dvbpr_tf.core import distribution
from dvbpr_tf.models import losses

MARGIN = 1.0
_MAX_REDRAWS = 1000
_KEY_SALT = 0x3A4F  # Keeps the candidates' random stream apart from the sampler's.

Contains = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
"""(users [n], items [n]) -> [n] bool: whether items[k] is a training item of users[k]
(`TripletSampler.contains`)."""


@dataclasses.dataclass(frozen=True)
class WarpConfig(bpr_mf.MfConfig):
  """Attributes:
    dim: K, the number of latent factors.
    reg: lambda, the L2 regulariser on the rows the step uses.
    max_sampled: candidate negatives per pair (LightFM's default: 10).
  """

  max_sampled: int = 10

  def __post_init__(self):
    super().__post_init__()
    checks.integer("max_sampled", self.max_sampled, 1)


def warp_rank_weight(trials, num_items) -> tf.Tensor:
  """L(r) = sum_{k=1..r} 1/k with r = floor((num_items - 1) / trials) (float32).

  `trials` (int, any shape) is the 1-based trial of the first violator. Computed as the
  harmonic number H_r = digamma(r + 1) + Euler's gamma, exact in float64 (H_0 = 0).
  """
  trials = tf.cast(trials, tf.int64)
  rank = (tf.cast(num_items, tf.int64) - 1) // trials
  harmonic = tf.math.digamma(tf.cast(rank, tf.float64) + 1.0) + np.euler_gamma
  return tf.cast(tf.where(rank > 0, harmonic, 0.0), tf.float32)


def first_violators(x_ui: tf.Tensor, x_candidates: tf.Tensor,
                    margin: float = MARGIN) -> tuple[tf.Tensor, tf.Tensor]:
  """The first candidate with x_uj > x_ui - margin.

  Args:
    x_ui: [B] scores of the positive items.
    x_candidates: [B, M] scores of the candidates, in draw order.

  Returns:
    (position [B] int64, 0-based, 0 where none; found [B] bool).
  """
  violated = x_candidates > x_ui[:, tf.newaxis] - margin
  found = tf.reduce_any(violated, axis=1)
  position = tf.argmax(tf.cast(violated, tf.int32), axis=1, output_type=tf.int64)
  return position, found


def warp_losses(x_ui: tf.Tensor, x_candidates: tf.Tensor, num_items: int
                ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """Per-pair WARP loss L(r) * (1 - x_ui + x_uj), 0 for a pair without violator.

  Returns:
    (losses [B], violator position [B] int64, found [B] bool).
  """
  position, found = first_violators(x_ui, x_candidates)
  x_uj = tf.gather(x_candidates, position, batch_dims=1)
  weight = tf.stop_gradient(warp_rank_weight(position + 1, num_items))
  pair = weight * (MARGIN - x_ui + x_uj)
  return tf.where(found, pair, tf.zeros_like(pair)), position, found


class WarpMf(bpr_mf.BprMf):
  """BPR-MF's predictor trained with the WARP loss.

  Args:
    num_users, num_items: sizes of the id spaces.
    contains: the training-set membership test (`TripletSampler.contains`) that rejects
      a user's training items as candidates.
    config: K, lambda, max_sampled.
    seed: seeds the initial values and the candidates.
  """

  metric_names = ("loss", "warp", "regularization")

  def __init__(self, num_users: int, num_items: int, contains: Contains,
               config: WarpConfig = WarpConfig(), seed: int = 0, **kwargs):
    super().__init__(num_users, num_items, config, seed=seed, **kwargs)
    self._contains = contains
    self._key = tf.constant([int(seed), _KEY_SALT], tf.int64)

  def candidates(self, users: tf.Tensor, batch_index: tf.Tensor) -> tf.Tensor:
    """[B, max_sampled] int64 candidate negatives of `users` [B] for batch `batch_index`:
    uniform over the items, redrawn while a user's training item."""
    users = tf.convert_to_tensor(users, tf.int64)
    key = tf.random.experimental.stateless_fold_in(self._key,
                                                   tf.cast(batch_index, tf.int64))
    # Under a distribution strategy each replica draws for its own rows, independently.
    key = distribution.fold_in_replica(key)
    shape = tf.stack([tf.size(users, out_type=tf.int32),
                      tf.constant(self.config.max_sampled, tf.int32)])
    flat_users = tf.reshape(
        tf.broadcast_to(users[:, tf.newaxis], shape), [-1])

    def draw(round_index):
      round_key = tf.random.experimental.stateless_fold_in(key, round_index)
      return tf.random.stateless_uniform(shape, round_key, minval=0, maxval=self.num_items,
                                         dtype=tf.int64)

    def positive(candidates):
      return tf.reshape(self._contains(flat_users, tf.reshape(candidates, [-1])), shape)

    # Each round tests its draws once and carries which are still training items.
    def redraw(round_index, candidates, is_positive):
      candidates = tf.where(is_positive, draw(round_index), candidates)
      return round_index + 1, candidates, positive(candidates)

    def has_positive(round_index, candidates, is_positive):
      del round_index, candidates
      return tf.reduce_any(is_positive)

    first = draw(tf.constant(0, tf.int64))
    _, candidates, is_positive = tf.while_loop(
        has_positive, redraw, (tf.constant(1, tf.int64), first, positive(first)),
        maximum_iterations=_MAX_REDRAWS)
    with tf.control_dependencies([tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(is_positive)),
        ["a WARP candidate could not be drawn outside the user's training items"])]):
      return tf.identity(candidates)

  def prepare_batch(self, batch) -> dict[str, tf.Tensor]:
    """The batch with its `candidates` [B, max_sampled] drawn: the trainer calls this outside
    the XLA-compiled step (the membership test is a binary search, which XLA would compile to
    a comparison with every training pair)."""
    return {**batch, "candidates": self.candidates(batch["user"], batch["batch"][0])}

  def _warp(self, batch):
    """(the loss terms, the rows with the violators as negatives, dL/dx_ui, found [B])."""
    users, pos = batch["user"], batch["pos"]
    candidates = batch.get("candidates")
    if candidates is None:
      candidates = self.candidates(users, batch["batch"][0])
    gamma_u = tf.gather(self.gamma_user, users)
    gamma_i, beta_i = tf.gather(self.gamma_item, pos), tf.gather(self.beta_item, pos)
    x_ui = tf.reduce_sum(gamma_u * gamma_i, axis=-1) + beta_i
    x_candidates = (tf.einsum("bk,bmk->bm", gamma_u, tf.gather(self.gamma_item, candidates))
                    + tf.gather(self.beta_item, candidates))
    per_pair, position, found = warp_losses(x_ui, x_candidates, self.num_items)
    warp = tf.reduce_sum(per_pair)
    violators = tf.gather(candidates, position, batch_dims=1)
    rows = bpr_mf.PairRows(users, pos, violators, gamma_u, gamma_i,
                           tf.gather(self.gamma_item, violators), beta_i,
                           tf.gather(self.beta_item, violators))
    found = tf.cast(found, tf.float32)
    reg = self.config.reg * (losses.l2_loss(gamma_u) + losses.l2_loss(gamma_i)
                             + losses.l2_loss(beta_i)
                             + losses.l2_loss(rows.gamma_j * found[:, tf.newaxis])
                             + losses.l2_loss(rows.beta_j * found))
    # d per_pair / d x_ui: -L(r) where a violator was found, else 0 (and +L(r) for x_uj).
    d_pos = -warp_rank_weight(position + 1, self.num_items) * found
    terms = {"loss": warp + reg, "warp": warp, "regularization": reg}
    return terms, rows, d_pos, found

  def loss_terms(self, batch, training: bool = False) -> dict[str, tf.Tensor]:
    """The WARP loss of a batch dict of int64 [B] `user`, `pos`, `batch` (and `candidates`
    when `prepare_batch` drew them; see the module docstring): dict of `loss`, `warp`,
    `regularization`."""
    del training  # No dropout.
    return self._warp(batch)[0]

  def sgd_step(self, batch, rate) -> dict[str, tf.Tensor]:
    """One SGD step on `loss_terms(batch)`, the gradient written out (BPR-MF's fast path,
    with the violator as the negative row and no negative row where none was found)."""
    terms, rows, d_pos, found = self._warp(batch)
    self.descend(rows, d_pos, -d_pos, rate, neg_weight=found)
    return terms
