"""Ranking metrics: the paper's exact AUC (all items and cold items).

The paper (section IV-C) averages, over users, the fraction of the user's negative items that
the held-out item outranks:

    AUC = 1/|U| sum_u 1/|D_u| sum_{(i, j) in D_u} [x_ui > x_uj]                  (AUC, sec. IV-C)

with i the user's held-out item and j every item outside the user's train, validation and test
sets. Ties count as not ranked above (`>` is strict), as in the paper's indicator.

"Cold items" in this project: the same AUC over the users whose held-out item has fewer than
`cold_threshold` training observations, with the negatives j restricted to items that also
have fewer than `cold_threshold` training observations.

Everything here is NumPy over one chunk of users' score rows at a time: the caller supplies a
function that returns the [chunk, num_items] score matrix (a matrix product for DVBPR), so no
Python loop runs per user and memory stays bounded whatever the catalog size.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

COLD_THRESHOLD = 5


@dataclasses.dataclass(frozen=True)
class HeldOut:
  """Who is evaluated on which item, and which items are not their negatives.

  Attributes:
    users: [E] user index of each evaluated user.
    items: [E] that user's held-out item.
    exclude_offsets: [E + 1] CSR offsets into `exclude_items`.
    exclude_items: the items that are not negatives of each evaluated user (the user's
      train, validation and test items; the held-out item itself included).
  """

  users: np.ndarray
  items: np.ndarray
  exclude_offsets: np.ndarray
  exclude_items: np.ndarray

  @classmethod
  def from_interactions(cls, users, items, heldout_mask, num_users) -> "HeldOut":
    """Builds the held-out set from all interactions.

    Args:
      users, items: [M] every interaction of the dataset (all splits).
      heldout_mask: [M] bool, True for the interactions to evaluate (for example the test
        split); every user may have at most one.
      num_users: number of users.
    """
    users = np.asarray(users, np.int64)
    items = np.asarray(items, np.int64)
    heldout_mask = np.asarray(heldout_mask, bool)
    eval_users = users[heldout_mask]
    if len(np.unique(eval_users)) != len(eval_users):
      raise ValueError("a user has more than one held-out interaction")
    order = np.argsort(eval_users, kind="stable")
    eval_users, eval_items = eval_users[order], items[heldout_mask][order]
    by_user = np.argsort(users, kind="stable")
    user_offsets = np.searchsorted(users[by_user], np.arange(num_users + 1))
    starts, ends = user_offsets[eval_users], user_offsets[eval_users + 1]
    lengths = ends - starts
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return cls(eval_users, eval_items, offsets, items[by_user][gather])

  def __len__(self) -> int:
    return len(self.users)

  def select(self, mask: np.ndarray) -> "HeldOut":
    """The evaluated users for which `mask` ([E] bool) is True."""
    rows = np.flatnonzero(mask)
    lengths = np.diff(self.exclude_offsets)[rows]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    gather = np.repeat(self.exclude_offsets[rows] - offsets[:-1], lengths) + np.arange(offsets[-1])
    return HeldOut(self.users[rows], self.items[rows], offsets, self.exclude_items[gather])


ScoreRows = Callable[[np.ndarray], np.ndarray]
"""Maps a [B] array of user indices to their [B, num_items] float scores."""


def per_user_auc(
    score_rows: ScoreRows,
    heldout: HeldOut,
    num_items: int,
    candidates: np.ndarray | None = None,
    chunk_size: int = 1024,
) -> np.ndarray:
  """Exact AUC of each evaluated user (eq. of sec. IV-C).

  Args:
    score_rows: returns the score matrix of a chunk of users.
    heldout: the evaluated users, their held-out items and excluded items.
    num_items: catalog size.
    candidates: optional [num_items] bool mask restricting the negatives (cold items).
    chunk_size: users scored at once.

  Returns:
    [E] float64 AUC per evaluated user; NaN for a user left with no negative.
  """
  if candidates is None:
    candidates = np.ones(num_items, bool)
  candidates = np.asarray(candidates, bool)
  auc = np.full(len(heldout), np.nan)
  for start in range(0, len(heldout), chunk_size):
    stop = min(start + chunk_size, len(heldout))
    rows = np.arange(stop - start)
    scores = np.asarray(score_rows(heldout.users[start:stop]))
    positive = scores[rows, heldout.items[start:stop]]
    below = (scores < positive[:, None]) & candidates[None, :]
    wins = below.sum(axis=1).astype(np.float64)
    # Remove the excluded items (train/validation/test of the user) from wins and negatives.
    lo, hi = heldout.exclude_offsets[start], heldout.exclude_offsets[stop]
    ex_items = heldout.exclude_items[lo:hi]
    ex_rows = np.repeat(rows, np.diff(heldout.exclude_offsets[start:stop + 1]))
    # An item listed twice for a user (it should not be) must be removed only once.
    key = np.unique(ex_rows.astype(np.int64) * num_items + ex_items)
    ex_rows, ex_items = key // num_items, key % num_items
    wins -= np.bincount(ex_rows, weights=below[ex_rows, ex_items], minlength=len(rows))
    negatives = candidates.sum() - np.bincount(
        ex_rows, weights=candidates[ex_items], minlength=len(rows))
    with np.errstate(invalid="ignore", divide="ignore"):
      auc[start:stop] = np.where(negatives > 0, wins / negatives, np.nan)
  return auc


def auc_all_and_cold(
    score_rows: ScoreRows,
    heldout: HeldOut,
    train_counts: np.ndarray,
    cold_threshold: int = COLD_THRESHOLD,
    chunk_size: int = 1024,
) -> dict:
  """Exact AUC on all items and on cold items (see the module docstring).

  Args:
    train_counts: [num_items] training observations per item.

  Returns:
    dict with `auc`, `auc_cold`, and the user counts `num_users`, `num_users_cold`
    (`auc_cold` is NaN when no evaluated user has a cold held-out item).
  """
  num_items = len(train_counts)
  cold_items = np.asarray(train_counts) < cold_threshold
  all_auc = per_user_auc(score_rows, heldout, num_items, chunk_size=chunk_size)
  cold_users = cold_items[heldout.items]
  cold = heldout.select(cold_users)
  cold_auc = per_user_auc(score_rows, cold, num_items, candidates=cold_items,
                          chunk_size=chunk_size)
  return {
      "auc": _nanmean(all_auc),
      "auc_cold": _nanmean(cold_auc),
      "num_users": int(np.sum(~np.isnan(all_auc))),
      "num_users_cold": int(np.sum(~np.isnan(cold_auc))),
  }


def _nanmean(values: np.ndarray) -> float:
  values = values[~np.isnan(values)]
  return float(values.mean()) if len(values) else float("nan")


def sampled_auc(
    score_rows: ScoreRows,
    heldout: HeldOut,
    train_keys: np.ndarray,
    num_items: int,
    num_samples: int = 100,
    seed: int = 0,
    chunk_size: int = 1024,
) -> float:
  """The AUC the authors' code reports ("sampled-100 AUC"); not the paper's definition.

  For each evaluated user it draws `num_samples` distinct item indices uniformly (as Python's
  `random.sample(range(itemnum), 100)`), skips those in the user's training set and the
  held-out item itself, and counts x_ui > x_uj over the rest. Items of the user's other
  held-out split can be drawn as negatives, as in the authors' code.

  Args:
    train_keys: sorted int64 array of `user * num_items + item` for the training pairs.

  Returns:
    The mean over users (users left with no sampled negative are skipped).
  """
  rng = np.random.default_rng(seed)
  total, count = 0.0, 0
  draws = min(num_samples, num_items)
  for start in range(0, len(heldout), chunk_size):
    stop = min(start + chunk_size, len(heldout))
    users = heldout.users[start:stop]
    positives = heldout.items[start:stop]
    scores = np.asarray(score_rows(users))
    rows = np.arange(len(users))[:, None]
    samples = _distinct_uniform(rng, len(users), draws, num_items)
    keys = users[:, None].astype(np.int64) * num_items + samples
    position = np.minimum(np.searchsorted(train_keys, keys), max(len(train_keys) - 1, 0))
    in_train = (train_keys[position] == keys) if len(train_keys) else np.zeros_like(keys, bool)
    valid = ~in_train & (samples != positives[:, None])
    wins = (scores[rows, samples] < scores[rows[:, 0], positives][:, None]) & valid
    negatives = valid.sum(axis=1)
    keep = negatives > 0
    total += float(np.sum(wins.sum(axis=1)[keep] / negatives[keep]))
    count += int(keep.sum())
  return total / count if count else float("nan")


def _distinct_uniform(rng: np.random.Generator, rows: int, draws: int, n: int) -> np.ndarray:
  """[rows, draws] int64, each row `draws` distinct values uniform over [0, n)."""
  if draws * 4 > n:  # Dense case: a random permutation prefix per row.
    return np.argsort(rng.random((rows, n)), axis=1)[:, :draws].astype(np.int64)
  samples = rng.integers(0, n, (rows, draws))
  while True:
    ordered = np.sort(samples, axis=1)
    duplicated = np.zeros_like(samples, bool)
    order = np.argsort(samples, axis=1, kind="stable")
    dup_sorted = np.concatenate(
        [np.zeros((rows, 1), bool), ordered[:, 1:] == ordered[:, :-1]], axis=1)
    np.put_along_axis(duplicated, order, dup_sorted, axis=1)
    if not duplicated.any():
      return samples.astype(np.int64)
    samples[duplicated] = rng.integers(0, n, int(duplicated.sum()))


def train_pair_keys(users: np.ndarray, items: np.ndarray, num_items: int) -> np.ndarray:
  """Sorted distinct `user * num_items + item` keys of training pairs (for `sampled_auc`)."""
  return np.unique(np.asarray(users, np.int64) * num_items + np.asarray(items, np.int64))
