"""VisRank: content-based ranking by visual similarity (baseline (e) of Table III).

Items are ranked for user u by how close their pre-trained feature f_i lies, on average, to
the features of u's training items I_u^+ (sec. IV-B):

    score(u, i) = - 1/|I_u^+| sum_{j in I_u^+} ||f_i - f_j||_2

(I_u^+ as a set: a repeated training pair counts once). A user without training items
scores 0 everywhere.

`score_rows` works on a chunk of users at once with no Python loop over users or items: the
distances between the chunk's training items and every item come from one matrix product,
||a - b||^2 = ||a||^2 - 2 a.b + ||b||^2 (features centred first, which changes no distance
and reduces cancellation), then a segment mean per user (`np.add.reduceat`). The chunk is
split into blocks of users so that the distance block holds at most `max_block_elements`
floats.
"""

from __future__ import annotations

import numpy as np

from dvbpr_tf.baselines import bpr_mf
from dvbpr_tf.core import checks
from dvbpr_tf.core import errors


class VisRankScorer:
  """score(u, i) = -mean_{j in I_u^+} ||f_i - f_j||.

  Args:
    features: [num_items, F] pre-trained item features.
    train_users, train_items: [T] the training interactions.
    max_block_elements: memory bound of one distance block (floats).
  """

  def __init__(self, features: np.ndarray, train_users: np.ndarray, train_items: np.ndarray,
               max_block_elements: int = 1 << 26):
    features = bpr_mf.check_features(features)
    checks.integer("max_block_elements", max_block_elements, 1)
    train_users = np.asarray(train_users, np.int64)
    train_items = np.asarray(train_items, np.int64)
    self.num_items = len(features)
    if train_users.shape != train_items.shape or train_users.ndim != 1:
      raise errors.ConfigError("train_users and train_items must be [T] vectors of one length")
    if len(train_items) and (train_items.min() < 0 or train_items.max() >= self.num_items
                             or train_users.min() < 0):
      raise errors.ConfigError(
          f"train_items must lie in [0, {self.num_items}) (the rows of features) and "
          "train_users must be >= 0")
    centred = features - features.mean(axis=0, keepdims=True)
    self.features = np.ascontiguousarray(centred, np.float32)
    self.squared_norms = np.einsum("nf,nf->n", self.features, self.features)
    keys = np.unique(train_users * self.num_items + train_items)  # Distinct, sorted by user.
    users, self._items = keys // self.num_items, keys % self.num_items
    num_users = int(users.max(initial=-1)) + 1
    self._offsets = np.searchsorted(users, np.arange(num_users + 1)).astype(np.int64)
    self.max_block_elements = int(max_block_elements)

  def _user_items(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(counts [B], the users' training items concatenated in user order)."""
    num_users = len(self._offsets) - 1
    known = (users >= 0) & (users < num_users)
    safe = np.where(known, users, 0)
    starts = self._offsets[safe]
    counts = np.where(known, self._offsets[np.minimum(safe + 1, num_users)] - starts, 0)
    gather = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return counts, self._items[gather + np.arange(counts.sum())]

  def distances(self, items: np.ndarray) -> np.ndarray:
    """||f_a - f_i|| for a in `items` [T] and every item i: [T, num_items] float32."""
    anchor = self.features[items]
    squared = (self.squared_norms[items][:, None] - 2.0 * (anchor @ self.features.T)
               + self.squared_norms[None, :])
    np.maximum(squared, 0.0, out=squared)
    return np.sqrt(squared, out=squared)

  def score_rows(self, users: np.ndarray) -> np.ndarray:
    """[B, num_items] float32 scores of the given users."""
    users = np.asarray(users, np.int64)
    counts, items = self._user_items(users)
    scores = np.zeros((len(users), self.num_items), np.float32)
    ends = np.cumsum(counts)
    starts = ends - counts
    rows_per_block = max(1, self.max_block_elements // self.num_items)
    start = 0
    while start < len(users):
      # The users start..stop-1 whose items fit in one block (at least one user).
      stop = int(np.searchsorted(ends, starts[start] + rows_per_block, side="right"))
      stop = max(stop, start + 1)
      block = slice(start, stop)
      active = np.flatnonzero(counts[block] > 0) + start
      if len(active):
        lo, hi = starts[start], ends[stop - 1]
        distance = self.distances(items[lo:hi])
        sums = np.add.reduceat(distance, starts[active] - lo, axis=0)
        scores[active] = -sums / counts[active][:, None]
      start = stop
    return scores
