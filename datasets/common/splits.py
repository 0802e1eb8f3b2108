"""Interaction filtering and the paper's leave-one-out split."""

from __future__ import annotations

import numpy as np

from dvbpr_tf_datasets.common import records

MIN_INTERACTIONS_PER_USER = 5  # The paper discards users with fewer than 5 interactions.


def leave_one_out(users: np.ndarray, num_users: int, seed: int) -> np.ndarray:
  """The paper's split: per user one random interaction for validation, one for test.

  Args:
    users: [M] dense user index of each (distinct) interaction.
    num_users: number of users; each must have at least 3 interactions.
    seed: the split is a deterministic function of (users, seed).

  Returns:
    [M] int8 split codes (records.TRAIN / VALIDATION / TEST).
  """
  counts = np.bincount(users, minlength=num_users)
  if counts.min(initial=3) < 3:
    raise ValueError("leave_one_out needs at least 3 interactions per user")
  rng = np.random.default_rng(seed)
  # A random permutation inside each user's rows: sort by (user, random key).
  order = np.lexsort((rng.random(len(users)), users))
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  rank = np.empty(len(users), np.int64)
  rank[order] = np.arange(len(users)) - np.repeat(starts, counts)
  split = np.full(len(users), records.TRAIN, np.int8)
  split[rank == 0] = records.VALIDATION
  split[rank == 1] = records.TEST
  return split


def check_split(users: np.ndarray, items: np.ndarray, splits: np.ndarray, num_users: int) -> None:
  """Raises ValueError unless each user has exactly one validation and one test interaction,
  no (user, item) pair repeats, and no held-out item is also a training item of the user."""
  for code, name in ((records.VALIDATION, "validation"), (records.TEST, "test")):
    per_user = np.bincount(users[splits == code], minlength=num_users)
    if np.any(per_user != 1):
      bad = int(np.flatnonzero(per_user != 1)[0])
      raise ValueError(f"user {bad} has {per_user[bad]} {name} interactions, expected 1")
  keys = users.astype(np.int64) * (int(items.max(initial=0)) + 1) + items
  if len(np.unique(keys)) != len(keys):
    raise ValueError("a (user, item) interaction appears twice")
