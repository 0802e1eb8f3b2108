"""The two baselines that learn nothing about users: RAND (a) and PopRank (b) of Table III.

- RAND: every (user, item) gets an independent uniform score in [0, 1). A user's row is drawn
  by the counter-based Philox generator keyed on (seed, user), so it is the same whichever
  chunk of users it is scored in; its expected AUC is 0.5 (less 2^-25 for float32 ties).
  (NumPy's Philox fills a row in C: 3-5x faster than the splitmix64 hash over (user, item)
  used before, which took 6-11 minutes for one exact evaluation at Amazon Fashion's size.)
- PopRank: x_ui = the number of training observations of item i, the same for every user.
  Items with equal counts tie; the paper's AUC counts a tie as not ranked above (`>`), which
  is why PopRank can fall below 0.5 on cold items, where most items have equal counts.

Both are plain NumPy scorers: `score_rows(users) -> [B, num_items]` (PopRank also
`embeddings()`, its scores as inner products).
"""

from __future__ import annotations

import numpy as np

from dvbpr_tf.core import checks
from dvbpr_tf.core import errors

class RandomScorer:
  """RAND: uniform random scores in [0, 1), deterministic given the seed, user and item.

  The scores are float32 multiples of 2^-24: two items of one user tie with probability
  2^-24, which moves an AUC by far less than its sampling error.

  Args:
    num_items: catalog size.
    seed: any integer.
  """

  def __init__(self, num_items: int, seed: int = 0):
    checks.integer("num_items", num_items, 1)
    self.num_items = int(num_items)
    self.seed = int(seed)

  def score_rows(self, users: np.ndarray) -> np.ndarray:
    """[B, num_items] float32 scores of the given users."""
    users = np.asarray(users, np.int64)
    scores = np.empty((len(users), self.num_items), np.float32)
    for row, user in enumerate(users):
      key = np.array([self.seed, user], np.int64).astype(np.uint64)
      generator = np.random.Generator(np.random.Philox(key=key))
      scores[row] = generator.random(self.num_items, dtype=np.float32)
    return scores


class PopularityScorer:
  """PopRank: x_ui = the training observations of item i, for every user.

  Args:
    train_counts: [num_items] training observations of each item (`Catalog.train_counts`).
    num_users: the user id space, for `embeddings` (None: no embedding form).
  """

  def __init__(self, train_counts: np.ndarray, num_users: int | None = None):
    counts = np.asarray(train_counts)
    if counts.ndim != 1 or len(counts) == 0 or np.any(counts < 0):
      raise errors.ConfigError(
          f"train_counts must be a non-empty [num_items] vector of counts >= 0, got shape "
          f"{counts.shape}")
    self.counts = counts.astype(np.float32)
    self.num_items = len(counts)
    self.num_users = None if num_users is None else checks.integer("num_users", num_users, 1)

  def score_rows(self, users: np.ndarray) -> np.ndarray:
    """[B, num_items] float32: every row the item counts."""
    return np.repeat(self.counts[None, :], len(np.asarray(users)), axis=0)

  def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
    """x_ui as an inner product, for the evaluator's embedding path: ([1] per user,
    [count] per item)."""
    if self.num_users is None:
      raise errors.ConfigError("PopularityScorer.embeddings needs num_users")
    return np.ones((self.num_users, 1), np.float32), self.counts[:, None].copy()
