"""Ranking metrics: the paper's exact AUC and top-K metrics on the full ranking (all items and
cold items).

The paper (section IV-C) averages, over users, the fraction of the user's negative items that
the held-out item outranks:

    AUC = 1/|U| sum_u 1/|D_u| sum_{(i, j) in D_u} [x_ui > x_uj]                  (AUC, sec. IV-C)

with i the user's held-out item and j every item outside the user's train, validation and test
sets. Ties count as not ranked above (`>` is strict), as in the paper's indicator.

"Cold items" in this project: the same AUC over the users whose held-out item has fewer than
`cold_threshold` training observations, with the negatives j restricted to items that also
have fewer than `cold_threshold` training observations.

Top-K metrics on the full ranking, from the same counts. The held-out item's rank among the
user's negatives (the same exclusions: the user's other train, validation and test items never
count) is

    rank_u = 1 + |{j in D_u : x_uj >= x_ui}| = 1 + |D_u| - wins_u

so a negative scored equal to the held-out item ranks above it (the pessimistic tie rule, the
same as AUC's strict `>`), and AUC_u = 1 - (rank_u - 1) / |D_u|. With one relevant item:
HR@K = [rank_u <= K] (= Recall@K), NDCG@K = [rank_u <= K] / log2(1 + rank_u) (the ideal DCG is
1), MRR = 1 / rank_u (not cut at K); K in `TOP_K`. Three settings: all users ranked among all
items (`hr10`); the cold users ranked among cold items only (`hr10_cold`, the negatives of
`auc_cold`); the cold users ranked among all items (`hr10_cold_all_items`).

Two ways in, one arithmetic. `per_user_auc` and `auc_all_and_cold` take a function that
returns a chunk of users' [chunk, num_items] score rows (any recommender).
`per_user_auc_from_embeddings` and `auc_all_and_cold_from_embeddings` take theta and Phi
(x_ui = theta_u . phi_i, eq. 6): each chunk's product goes into one reused buffer and each row
is counted while it is in cache, so the evaluation costs little more than the bare product
(`benchmarks/evaluation_bench.py`). Both count, per user, the items scored strictly below the
held-out item over the whole row, then subtract the user's excluded items through their CSR
lists (never masking full rows); the cold-item figures come from the same pass. Memory stays
bounded whatever the catalog size.
"""

from __future__ import annotations

from concurrent import futures
import dataclasses
import os
from typing import Callable, Iterable, Sequence

import numpy as np

from dvbpr_tf_datasets.common import protocol

COLD_THRESHOLD = protocol.COLD_THRESHOLD
TOP_K = (10, 20, 50)
COLD_SETTINGS = {"_cold": "cold users, ranked among cold items",
                 "_cold_all_items": "cold users, ranked among all items"}
_COUNTING_THREADS = max(1, os.cpu_count() or 1)


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


@dataclasses.dataclass(frozen=True)
class _Counts:
  """Per evaluated user: held-out wins and negatives over all items (`wins`, `negatives`)
  and over the candidate items only (`candidate_wins`, `candidate_negatives`)."""

  wins: np.ndarray
  negatives: np.ndarray
  candidate_wins: np.ndarray
  candidate_negatives: np.ndarray


def _ratio(wins: np.ndarray, negatives: np.ndarray) -> np.ndarray:
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(negatives > 0, wins / np.maximum(negatives, 1), np.nan)


def _row_wins(scores: np.ndarray, positive: np.ndarray, candidates,
              pool: futures.ThreadPoolExecutor) -> tuple[np.ndarray, np.ndarray]:
  """Per row of `scores`, the items scored strictly below the row's positive, over all items
  and over the candidates (a bool mask, or an int: the first that many columns).

  One row at a time, so that the boolean row stays in cache for both counts; the pool's
  threads take contiguous blocks of rows (NumPy releases the GIL while comparing and
  counting).
  """
  wins = np.empty(len(scores), np.int64)
  candidate_wins = np.empty(len(scores), np.int64)
  prefix = isinstance(candidates, (int, np.integer))

  def count(lo: int, hi: int) -> None:
    below = np.empty(scores.shape[1], bool)
    for row in range(lo, hi):
      np.less(scores[row], positive[row], out=below)  # x_uj < x_ui: i ranks j below it.
      if prefix:  # Candidates first: each column is counted once.
        candidate_wins[row] = np.count_nonzero(below[:candidates])
        wins[row] = candidate_wins[row] + np.count_nonzero(below[candidates:])
      else:
        wins[row] = np.count_nonzero(below)
        candidate_wins[row] = np.count_nonzero(np.logical_and(below, candidates, out=below))

  bounds = np.linspace(0, len(scores), _COUNTING_THREADS + 1).astype(int)
  list(pool.map(count, bounds[:-1], bounds[1:]))  # list(): raises a thread's error here.
  return wins, candidate_wins


def _chunk_exclusions(heldout: HeldOut, start: int, stop: int, num_items: int):
  """The chunk's excluded (row, item) pairs, each once (a repeated item counts once):
  int64 rows (relative to `start`) and items."""
  lo, hi = heldout.exclude_offsets[start], heldout.exclude_offsets[stop]
  rows = np.repeat(np.arange(stop - start, dtype=np.int64),
                   np.diff(heldout.exclude_offsets[start:stop + 1]))
  key = np.unique(rows * num_items + heldout.exclude_items[lo:hi].astype(np.int64))
  return key // num_items, key % num_items


def _negatives(ex_rows, ex_items, num_rows: int, num_items: int, candidates: np.ndarray):
  """Negatives per row over all items and over the candidates: the items minus the row's
  excluded items."""
  all_negatives = num_items - np.bincount(ex_rows, minlength=num_rows)
  candidate_negatives = int(candidates.sum()) - np.bincount(
      ex_rows, weights=candidates[ex_items], minlength=num_rows).astype(np.int64)
  return all_negatives, candidate_negatives


def _count(chunks: Iterable[tuple[int, int, np.ndarray]], heldout: HeldOut,
           candidates: np.ndarray, column: np.ndarray | None = None) -> _Counts:
  """Win and negative counts, over all items and over the candidates, from chunks of score
  rows (so the cold-item AUC comes from the same rows as the all-items AUC).

  Args:
    chunks: (start, stop, [stop - start, num_items] scores of heldout.users[start:stop]),
      consumed before the next chunk is produced (a producer may reuse its buffer).
    heldout: the evaluated users.
    candidates: [num_items] bool.
    column: where item i's score is in a row (None: column i). When given, the candidates
      must be the leading columns: a row's candidate wins are then counted from its first
      `candidates.sum()` columns, with no mask.
  """
  num_items = len(candidates)
  size = len(heldout)
  wins, negatives = np.zeros(size, np.int64), np.zeros(size, np.int64)
  c_wins, c_negatives = np.zeros(size, np.int64), np.zeros(size, np.int64)
  spec = candidates if column is None else int(candidates.sum())
  with futures.ThreadPoolExecutor(_COUNTING_THREADS) as pool:
    for start, stop, scores in chunks:
      count = stop - start
      items = heldout.items[start:stop]
      positive = scores[np.arange(count), items if column is None else column[items]]
      chunk_wins, chunk_c_wins = _row_wins(scores, positive, spec, pool)
      ex_rows, ex_items = _chunk_exclusions(heldout, start, stop, num_items)
      ex_columns = ex_items if column is None else column[ex_items]
      ex_below = scores[ex_rows, ex_columns] < positive[ex_rows]
      wins[start:stop] = chunk_wins - np.bincount(ex_rows[ex_below], minlength=count)
      c_wins[start:stop] = chunk_c_wins - np.bincount(
          ex_rows[ex_below & candidates[ex_items]], minlength=count)
      negatives[start:stop], c_negatives[start:stop] = _negatives(
          ex_rows, ex_items, count, num_items, candidates)
  return _Counts(wins, negatives, c_wins, c_negatives)


def _score_row_chunks(score_rows: ScoreRows, heldout: HeldOut, chunk_size: int,
                      observe: Callable[[int, int, np.ndarray], None] | None = None):
  """(start, stop, scores) chunk by chunk; `observe` sees each chunk first (e.g.
  `SampledAuc.add_rows`, so that the sampled AUC needs no second pass over the scores)."""
  for start in range(0, len(heldout), chunk_size):
    stop = min(start + chunk_size, len(heldout))
    scores = np.asarray(score_rows(heldout.users[start:stop]))
    if observe is not None:
      observe(start, stop, scores)
    yield start, stop, scores


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
  candidates = (np.ones(num_items, bool) if candidates is None
                else np.asarray(candidates, bool))
  counts = _count(_score_row_chunks(score_rows, heldout, chunk_size), heldout, candidates)
  return _ratio(counts.candidate_wins, counts.candidate_negatives)


def auc_all_and_cold(
    score_rows: ScoreRows,
    heldout: HeldOut,
    train_counts: np.ndarray,
    cold_threshold: int = COLD_THRESHOLD,
    chunk_size: int = 1024,
    per_user: bool = False,
    observe: Callable[[int, int, np.ndarray], None] | None = None,
) -> dict:
  """Exact AUC on all items and on cold items (see the module docstring), both from one pass
  over the score rows.

  Args:
    score_rows: returns the score matrix of a chunk of users.
    heldout: the evaluated users, their held-out items and excluded items.
    train_counts: [num_items] training observations per item.
    cold_threshold: items with fewer training observations are cold.
    chunk_size: users scored at once.
    per_user: also return every user's values (`per_user_values`) under `per_user`.
    observe: called with (start, stop, scores) of each chunk before it is counted.

  Returns:
    dict with `auc`, `auc_cold`, the top-K figures of `per_user_values` (`hr10`, `ndcg10`,
    `mrr`, `hr10_cold`, `hr10_cold_all_items`, ...), and the user counts `num_users`,
    `num_users_cold` (cold figures are NaN when no evaluated user has a cold held-out item).
  """
  cold_items = np.asarray(train_counts) < cold_threshold
  counts = _count(_score_row_chunks(score_rows, heldout, chunk_size, observe), heldout,
                  cold_items)
  return _summary(counts, cold_items[heldout.items], per_user)


def ranks(wins: np.ndarray, negatives: np.ndarray) -> np.ndarray:
  """The held-out item's rank among the negatives, 1 + |D_u| - wins (ties rank it below):
  float64, NaN for a user with no negative."""
  with np.errstate(invalid="ignore"):
    return np.where(negatives > 0, 1.0 + negatives - wins, np.nan)


def top_k_values(rank: np.ndarray, ks: Sequence[int] = TOP_K) -> dict:
  """Per-user `hr<K>`, `ndcg<K>` for each K and `mrr` from ranks (NaN ranks stay NaN)."""
  values = {}
  finite = np.isfinite(rank)
  with np.errstate(invalid="ignore"):
    for k in ks:
      hit = np.where(finite, rank <= k, np.nan)
      values[f"hr{k}"] = hit
      values[f"ndcg{k}"] = np.where(hit == 1, 1.0 / np.log2(1.0 + np.where(finite, rank, 1)),
                                    hit)
    values["mrr"] = 1.0 / rank
  return values


def figure_names(ks: Sequence[int] = TOP_K) -> tuple[str, ...]:
  """The names `per_user_values` returns, in its order: `auc`, `auc_cold`, then the top-K
  names with no suffix, `_cold` and `_cold_all_items`."""
  top_k = [f"{m}{k}" for k in ks for m in ("hr", "ndcg")] + ["mrr"]
  return ("auc", "auc_cold") + tuple(name + suffix for suffix in ("", *COLD_SETTINGS)
                                     for name in top_k)


def per_user_values(counts: _Counts, cold_users: np.ndarray,
                    ks: Sequence[int] = TOP_K) -> dict:
  """Every metric of every evaluated user, [E] float64 each, NaN where it does not apply (no
  negative left; a cold figure of a user whose held-out item is not cold): `auc`, `auc_cold`,
  and the top-K values (`top_k_values`) with no suffix (all items), `_cold` (cold users among
  cold items) and `_cold_all_items` (cold users among all items). The figure of a metric is
  the mean of its finite values."""
  cold_users = np.asarray(cold_users, bool)
  rank_all = ranks(counts.wins, counts.negatives)
  rank_cold = np.where(cold_users, ranks(counts.candidate_wins, counts.candidate_negatives),
                       np.nan)
  values = {"auc": _ratio(counts.wins, counts.negatives),
            "auc_cold": np.where(cold_users,
                                 _ratio(counts.candidate_wins, counts.candidate_negatives),
                                 np.nan)}
  for suffix, rank in (("", rank_all), ("_cold", rank_cold),
                       ("_cold_all_items", np.where(cold_users, rank_all, np.nan))):
    values.update({name + suffix: v for name, v in top_k_values(rank, ks).items()})
  return values


def _summary(counts: _Counts, cold_users: np.ndarray, per_user: bool = False) -> dict:
  values = per_user_values(counts, cold_users)
  summary = {name: nanmean(v) for name, v in values.items()}
  summary["num_users"] = int(np.sum(np.isfinite(values["auc"])))
  summary["num_users_cold"] = int(np.sum(np.isfinite(values["auc_cold"])))
  if per_user:
    summary["per_user"] = values
  return summary


# --- From embeddings: x_ui = theta_u . phi_i, each product row counted while in cache -------

EMBEDDING_CHUNK_SIZE = 512


def _embedding_counts(user_vectors, item_vectors, heldout: HeldOut, candidates: np.ndarray,
                      chunk_size: int, devices: Sequence[str] | None = None) -> _Counts:
  """`_count` for x_ui = user_vectors[u] . item_vectors[i].

  The items are reordered once, candidates first, so that a row's candidate wins are counted
  from its leading columns without a mask. Each chunk's product is written into one reused
  float32 buffer (no allocation, no page faults per chunk) and counted row by row right after.
  With `devices` (a distribution strategy's), the products run there instead, chunk k on
  device k mod len(devices), each device holding the item matrix once and one chunk of scores
  at a time: a catalog whose users x items matrix fits no device still evaluates.
  """
  user_vectors = np.asarray(user_vectors, np.float32)
  item_vectors = np.asarray(item_vectors, np.float32)
  num_items = len(item_vectors)
  order = np.concatenate([np.flatnonzero(candidates), np.flatnonzero(~candidates)])
  column = np.empty(num_items, np.int64)
  column[order] = np.arange(num_items)
  items_t = np.ascontiguousarray(item_vectors[order].T)  # [K, N], candidates first.
  buffer = np.empty((max(1, min(chunk_size, len(heldout))), num_items), np.float32)

  placed = []
  if devices:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top  (only this path needs it)
  for device in devices or ():
    with tf.device(device):
      placed.append(tf.constant(items_t))

  def chunks():
    for k, start in enumerate(range(0, len(heldout), chunk_size)):
      stop = min(start + chunk_size, len(heldout))
      scores = buffer[:stop - start]
      rows = user_vectors[heldout.users[start:stop]]
      if placed:
        with tf.device(devices[k % len(devices)]):
          scores[...] = tf.matmul(rows, placed[k % len(devices)]).numpy()
      else:
        np.matmul(rows, items_t, out=scores)
      yield start, stop, scores

  return _count(chunks(), heldout, candidates, column)


def per_user_auc_from_embeddings(
    user_vectors: np.ndarray,
    item_vectors: np.ndarray,
    heldout: HeldOut,
    candidates: np.ndarray | None = None,
    chunk_size: int = EMBEDDING_CHUNK_SIZE,
    devices: Sequence[str] | None = None,
) -> np.ndarray:
  """`per_user_auc` for the scores x_ui = theta_u . phi_i (eq. 6), each chunk's product
  written into one reused buffer and every row counted while in cache.

  Args:
    user_vectors: [num_users, K] theta (rows indexed by `heldout.users`).
    item_vectors: [num_items, K] phi of every item.
    heldout: the evaluated users, their held-out items and excluded items.
    candidates: optional [num_items] bool mask restricting the negatives (cold items).
    chunk_size: users scored at once (a float32 buffer of chunk_size x num_items).
    devices: where the products run (a strategy's devices); None: NumPy on the host.

  Returns:
    [E] float64 AUC per evaluated user; NaN for a user left with no negative. Equal to
    `per_user_auc` over the same float32 scores, ties included. (Another product, e.g. one
    with other chunk shapes, may round a score in the last bit differently: exact products,
    such as small-integer embeddings, make both paths agree bit for bit.)
  """
  num_items = len(item_vectors)
  candidates = (np.ones(num_items, bool) if candidates is None
                else np.asarray(candidates, bool))
  counts = _embedding_counts(user_vectors, item_vectors, heldout, candidates, chunk_size,
                             devices)
  return _ratio(counts.candidate_wins, counts.candidate_negatives)


def auc_all_and_cold_from_embeddings(
    user_vectors: np.ndarray,
    item_vectors: np.ndarray,
    heldout: HeldOut,
    train_counts: np.ndarray,
    cold_threshold: int = COLD_THRESHOLD,
    chunk_size: int = EMBEDDING_CHUNK_SIZE,
    devices: Sequence[str] | None = None,
    per_user: bool = False,
) -> dict:
  """`auc_all_and_cold` for x_ui = theta_u . phi_i (eq. 6), in one pass over the catalog.

  Args:
    user_vectors: [num_users, K] theta (rows indexed by `heldout.users`).
    item_vectors: [num_items, K] phi of every item.
    heldout: the evaluated users, their held-out items and excluded items.
    train_counts: [num_items] training observations per item.
    cold_threshold: items with fewer training observations are cold.
    chunk_size: users scored at once (a float32 buffer of chunk_size x num_items).
    devices: where the products run (a strategy's devices); None: NumPy on the host.
    per_user: also return every user's values under `per_user`.

  Returns:
    The dict of `auc_all_and_cold`.
  """
  cold_items = np.asarray(train_counts) < cold_threshold
  counts = _embedding_counts(user_vectors, item_vectors, heldout, cold_items, chunk_size,
                             devices)
  return _summary(counts, cold_items[heldout.items], per_user)


def nanmean(values: np.ndarray) -> float:
  """The mean of the finite values (NaN when there is none)."""
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
    per_user: bool = False,
):
  """The AUC the authors' code reports ("sampled-100 AUC"); not the paper's definition.

  For each evaluated user it draws `num_samples` distinct item indices uniformly (as Python's
  `random.sample(range(itemnum), 100)`), skips those in the user's training set and the
  held-out item itself, and counts x_ui > x_uj over the rest. Items of the user's other
  held-out split can be drawn as negatives, as in the authors' code. (`SampledAuc` is the
  same figure accumulated from chunks of score rows another pass produces.)

  Args:
    score_rows: user indices [B] -> [B, num_items] scores.
    train_keys: sorted int64 array of `user * num_items + item` for the training pairs.

  Returns:
    The mean over users (users left with no sampled negative are skipped); with `per_user`,
    the [E] per-user values instead (NaN for those users).
  """
  counter = SampledAuc(heldout, train_keys, num_items, num_samples, seed)
  for start, stop, scores in _score_row_chunks(score_rows, heldout, chunk_size):
    counter.add_rows(start, stop, scores)
  return counter.result(per_user)


def sampled_auc_from_embeddings(user_vectors: np.ndarray, item_vectors: np.ndarray,
                                heldout: HeldOut, train_keys: np.ndarray,
                                num_samples: int = 100, seed: int = 0,
                                chunk_size: int = 1024, per_user: bool = False):
  """`sampled_auc` for x_ui = user_vectors[u] . item_vectors[i], scoring only each user's
  drawn items and held-out item (B x (num_samples + 1) products per chunk, not B x
  num_items): the same draws, the same figure."""
  user_vectors = np.asarray(user_vectors, np.float32)
  item_vectors = np.asarray(item_vectors, np.float32)
  counter = SampledAuc(heldout, train_keys, len(item_vectors), num_samples, seed)
  for start in range(0, len(heldout), chunk_size):
    stop = min(start + chunk_size, len(heldout))
    items, valid = counter.draw(start, stop)
    counter.add_scores(start, stop, np.einsum(
        "bk,bsk->bs", user_vectors[heldout.users[start:stop]], item_vectors[items]), valid)
  return counter.result(per_user)


class SampledAuc:
  """`sampled_auc` accumulated chunk by chunk, in the order of the evaluated users: the
  draws of a chunk come from one generator in chunk order, so chunks of the same bounds give
  the same draws whichever pass scores them.

  `add_rows(start, stop, rows)` takes the chunk's [B, num_items] score rows; or
  `draw(start, stop)` gives ([B, 1 + num_samples] items, the held-out item first; [B,
  num_samples] which draws count) and `add_scores(start, stop, scores, valid)` takes their
  scores. `result(per_user)` as `sampled_auc`.
  """

  def __init__(self, heldout: HeldOut, train_keys: np.ndarray, num_items: int,
               num_samples: int = 100, seed: int = 0):
    self.heldout, self.train_keys, self.num_items = heldout, train_keys, int(num_items)
    self.num_draws = min(num_samples, num_items)
    self.rng = np.random.default_rng(seed)
    self.values = np.full(len(heldout), np.nan)

  def draw(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    users = self.heldout.users[start:stop]
    positives = self.heldout.items[start:stop].astype(np.int64)
    samples = _distinct_uniform(self.rng, len(users), self.num_draws, self.num_items)
    keys = users[:, None].astype(np.int64) * self.num_items + samples
    train_keys = self.train_keys
    position = np.minimum(np.searchsorted(train_keys, keys), max(len(train_keys) - 1, 0))
    in_train = (train_keys[position] == keys) if len(train_keys) else np.zeros_like(keys, bool)
    valid = ~in_train & (samples != positives[:, None])
    return np.concatenate([positives[:, None], samples], axis=1), valid

  def add_scores(self, start: int, stop: int, scores: np.ndarray, valid: np.ndarray) -> None:
    wins = (scores[:, 1:] < scores[:, :1]) & valid
    self.values[start:stop] = _ratio(wins.sum(axis=1), valid.sum(axis=1))

  def add_rows(self, start: int, stop: int, rows: np.ndarray) -> None:
    items, valid = self.draw(start, stop)
    self.add_scores(start, stop, np.take_along_axis(np.asarray(rows), items, axis=1), valid)

  def result(self, per_user: bool = False):
    return self.values if per_user else nanmean(self.values)


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
