"""Implicit feedback streamed from text ids into compact arrays, deduplicated, filtered, split.

Ids are strings throughout (never parsed as numbers): they are mapped to dense integers as
rows stream in, and each interaction is three numbers in `array` buffers (user, item, time),
so 31 million H&M rows take about 0.5 GB rather than the many GB of Python tuples of strings.

The two splits:

- `random`: the paper's, one random interaction per user for validation, another for test
  (`splits.leave_one_out`).
- `time`: each user's latest interaction is the test item and the one before it the
  validation item. After deduplication an interaction's time is the first time the user took
  the item; equal times are ordered by the row of that first occurrence in the file (a later
  row counts as later), so the split is deterministic for a given file.
"""

from __future__ import annotations

import array
import datetime
import zlib

import numpy as np

from dvbpr_tf_datasets.common import records
from dvbpr_tf_datasets.common import splits as splits_lib

SPLIT_METHODS = ("random", "time")
_MAX_CACHED_TIMESTAMPS = 1 << 20


def in_sample(user_id: str, fraction: float) -> bool:
  """Whether a user belongs to the `fraction` subsample: a stable hash of the id string.

  The same id is in or out on every machine and in every pass (CRC-32 of its UTF-8 bytes,
  compared with `fraction * 2**32`), so a stream can be subsampled by user in one pass, and
  the 1% sample is contained in the 10% sample.
  """
  if fraction >= 1.0:
    return True
  return zlib.crc32(user_id.encode("utf-8")) < fraction * 4294967296.0


class TimestampParser:
  """Parses timestamps: numbers (e.g. Unix seconds) or ISO 8601 dates and date-times.

  A date-time without a time zone is read as UTC. Parsed texts are cached (H&M's 31 million
  rows hold 734 distinct dates).
  """

  def __init__(self):
    self._cache: dict[str, float] = {}

  def __call__(self, text: str) -> float:
    """Returns the timestamp as a float (seconds for ISO dates).

    Raises:
      ValueError: `text` is neither a finite number nor an ISO 8601 date or date-time.
    """
    value = self._cache.get(text)
    if value is not None:
      return value
    try:
      value = float(text)
    except ValueError:
      moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
      if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
      value = moment.timestamp()
    if not np.isfinite(value):
      raise ValueError(f"timestamp {text!r} is not finite")
    if len(self._cache) < _MAX_CACHED_TIMESTAMPS:
      self._cache[text] = value
    return value


class InteractionLog:
  """(user, item, time) rows streamed in with string ids, held as dense int arrays.

  Dense ids are given in order of first appearance; `user_names[u]` is the source id of
  dense user u (likewise items). Row order is kept: row r is the r-th `add`.
  """

  def __init__(self):
    self._user_index: dict[str, int] = {}
    self._item_index: dict[str, int] = {}
    self._users = array.array("i")
    self._items = array.array("i")
    self._times = array.array("d")

  def add(self, user: str, item: str, time: float = 0.0) -> None:
    users, items = self._user_index, self._item_index
    u = users.get(user)
    if u is None:
      u = users[user] = len(users)
    i = items.get(item)
    if i is None:
      i = items[item] = len(items)
    self._users.append(u)
    self._items.append(i)
    self._times.append(time)

  def __len__(self) -> int:
    return len(self._users)

  @property
  def num_users(self) -> int:
    return len(self._user_index)

  @property
  def num_items(self) -> int:
    return len(self._item_index)

  @property
  def user_names(self) -> list[str]:
    return list(self._user_index)

  @property
  def item_names(self) -> list[str]:
    return list(self._item_index)

  def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users int32 [M], items int32 [M], times float64 [M]), views of the buffers."""
    return (np.frombuffer(self._users, np.int32) if len(self) else np.zeros(0, np.int32),
            np.frombuffer(self._items, np.int32) if len(self) else np.zeros(0, np.int32),
            np.frombuffer(self._times, np.float64) if len(self) else np.zeros(0, np.float64))


def first_occurrences(users: np.ndarray, items: np.ndarray, times: np.ndarray) -> np.ndarray:
  """Rows that keep each (user, item) pair once: its earliest time, then its earliest row.

  Args:
    users, items: [M] dense ids.
    times: [M] timestamps (all equal when the source has none: then the first row wins).

  Returns:
    [P] sorted row indices, one per distinct pair.
  """
  if not len(users):
    return np.zeros(0, np.int64)
  keys = users.astype(np.int64) * (int(items.max()) + 1) + items
  order = np.lexsort((np.arange(len(keys)), times, keys))
  sorted_keys = keys[order]
  first = np.ones(len(order), bool)
  first[1:] = sorted_keys[1:] != sorted_keys[:-1]
  return np.sort(order[first])


def users_with_at_least(users: np.ndarray, num_users: int, minimum: int) -> np.ndarray:
  """[num_users] bool: which users have at least `minimum` rows (distinct items, once
  deduplicated)."""
  return np.bincount(users, minlength=num_users) >= minimum


def time_split(users: np.ndarray, times: np.ndarray, rows: np.ndarray,
               num_users: int) -> np.ndarray:
  """Per user: the latest interaction is test, the one before validation, the rest train.

  Args:
    users: [M] dense user ids, each user with at least 3 interactions.
    times: [M] timestamps.
    rows: [M] tie-breakers (the source row): of equal times, the larger row is later.
    num_users: number of users.

  Returns:
    [M] int8 split codes (records.TRAIN / VALIDATION / TEST).
  """
  counts = np.bincount(users, minlength=num_users)
  if counts.min(initial=3) < 3:
    raise ValueError("time_split needs at least 3 interactions per user")
  order = np.lexsort((rows, times, users))
  ends = np.cumsum(counts)
  # Rank from the end inside each user's time-ordered rows: 0 = latest.
  from_end = np.empty(len(users), np.int64)
  from_end[order] = np.repeat(ends, counts) - 1 - np.arange(len(users))
  split = np.full(len(users), records.TRAIN, np.int8)
  split[from_end == 0] = records.TEST
  split[from_end == 1] = records.VALIDATION
  return split


def split_interactions(method: str, *, users: np.ndarray, times: np.ndarray, rows: np.ndarray,
                       num_users: int, seed: int) -> np.ndarray:
  """The split codes of `method` (`random`: the paper's leave-one-out; `time`).

  Args:
    method: one of SPLIT_METHODS.
    users, times, rows: [M] the (distinct) interactions, in a deterministic order.
    num_users: number of users.
    seed: the random split's seed.
  """
  if method == "random":
    return splits_lib.leave_one_out(users, num_users, seed)
  if method == "time":
    return time_split(users, times, rows, num_users)
  raise ValueError(f"unknown split method {method!r}; expected one of {SPLIT_METHODS}")
