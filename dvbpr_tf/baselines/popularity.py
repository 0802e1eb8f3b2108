"""The two baselines that learn nothing about users: RAND (a) and PopRank (b) of Table III.

- RAND: every (user, item) gets an independent uniform score in [0, 1). The scores are a pure
  function of (seed, user, item) (a counter-based hash, splitmix64), so a user's row is the
  same whichever chunk of users it is scored in; its expected AUC is 0.5 (less 2^-25 for
  float32 ties).
- PopRank: x_ui = the number of training observations of item i, the same for every user.
  Items with equal counts tie; the paper's AUC counts a tie as not ranked above (`>`), which
  is why PopRank can fall below 0.5 on cold items, where most items have equal counts.

Both are plain NumPy scorers: `score_rows(users) -> [B, num_items]`.
"""

from __future__ import annotations

import numpy as np

from dvbpr_tf.core import checks
from dvbpr_tf.core import errors

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
  """The splitmix64 finaliser on uint64 (wraps modulo 2^64)."""
  x = x + _GOLDEN
  x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
  x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return x ^ (x >> np.uint64(31))


class RandomScorer:
  """RAND: uniform random scores in [0, 1), deterministic given the seed, user and item.

  The scores are float32 multiples of 2^-24: two items of one user tie with probability
  2^-24, which moves an AUC by far less than its sampling error.

  Args:
    num_items: catalog size.
    seed: any integer.
    max_block_elements: bound on the uint64 temporaries of one block of users.
  """

  def __init__(self, num_items: int, seed: int = 0, max_block_elements: int = 1 << 22):
    checks.integer("num_items", num_items, 1)
    checks.integer("max_block_elements", max_block_elements, 1)
    self.num_items = int(num_items)
    self.seed = int(seed)
    self.max_block_elements = int(max_block_elements)
    self._seed_key = _splitmix64(np.asarray([self.seed], np.int64).astype(np.uint64))[0]
    self._item_keys = _splitmix64(np.arange(self.num_items, dtype=np.uint64))

  def score_rows(self, users: np.ndarray) -> np.ndarray:
    """[B, num_items] float32 scores of the given users."""
    user_keys = _splitmix64(np.asarray(users, np.int64).astype(np.uint64) ^ self._seed_key)
    scores = np.empty((len(user_keys), self.num_items), np.float32)
    rows = max(1, self.max_block_elements // self.num_items)
    for start in range(0, len(user_keys), rows):
      bits = _splitmix64(user_keys[start:start + rows, None] ^ self._item_keys[None, :])
      scores[start:start + rows] = (bits >> np.uint64(40)).astype(np.float32) * 2.0 ** -24
    return scores


class PopularityScorer:
  """PopRank: x_ui = the training observations of item i, for every user.

  Args:
    train_counts: [num_items] training observations of each item (`Catalog.train_counts`).
  """

  def __init__(self, train_counts: np.ndarray):
    counts = np.asarray(train_counts)
    if counts.ndim != 1 or len(counts) == 0 or np.any(counts < 0):
      raise errors.ConfigError(
          f"train_counts must be a non-empty [num_items] vector of counts >= 0, got shape "
          f"{counts.shape}")
    self.counts = counts.astype(np.float32)
    self.num_items = len(counts)

  def score_rows(self, users: np.ndarray) -> np.ndarray:
    """[B, num_items] float32: every row the item counts."""
    return np.repeat(self.counts[None, :], len(np.asarray(users)), axis=0)
