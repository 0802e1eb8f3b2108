"""The BPR triplet sampler of the authors' code, in TensorFlow ops.

Per example (docs/reproduction.md §1): u uniform over the users (that have a training item);
i uniform among u's training items I_u^+; j uniform over all items, redrawn while j is in
I_u^+.

Batches are a pure function of (seed, batch index): batch b is drawn with stateless random
ops keyed by `fold_in(seed, b)`. So the whole sampler state is one integer, the index of the
next batch (`TripletSampler.position`, a `tf.Variable` a checkpoint holds), runs are
reproducible, and a resumed run draws exactly the batches the interrupted one would have.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dvbpr_tf.core import distribution

_MAX_REDRAWS = 1000


class TripletSampler(tf.Module):
  """Draws (user, positive item, negative item) batches.

  Args:
    train_users, train_items: [T] the training interactions.
    num_users, num_items: sizes of the id spaces.
    seed: the sampler's seed.
    draw_negatives: False: batches hold no `neg` (a model that draws its own, as WARP; the
      users and positives are the same either way).
  """

  def __init__(self, train_users, train_items, num_users: int, num_items: int, seed: int = 0,
               name: str = "triplet_sampler", draw_negatives: bool = True):
    super().__init__(name=name)
    train_users = np.asarray(train_users, np.int64)
    train_items = np.asarray(train_items, np.int64)
    keys = np.unique(train_users * num_items + train_items)  # Distinct, sorted (u, i) pairs.
    users, items = keys // num_items, keys % num_items
    counts = np.bincount(users, minlength=num_users)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    if np.any(counts >= num_items):
      raise ValueError("a user has every item among its training items: no negative exists")
    self.num_users, self.num_items, self.seed = int(num_users), int(num_items), int(seed)
    self.draw_negatives = bool(draw_negatives)
    self._active_users = tf.constant(np.flatnonzero(counts > 0), tf.int64)
    self._offsets = tf.constant(offsets, tf.int64)
    self._items = tf.constant(items, tf.int64)
    self._keys = tf.constant(keys, tf.int64)
    # Advanced once per step: under a distribution strategy every replica runs the step, and
    # only the first replica's increment counts.
    self.position = tf.Variable(0, dtype=tf.int64, trainable=False, name="position",
                                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

  def contains(self, users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
    """Whether each items[k] is a training item of users[k]."""
    query = users * self.num_items + items
    index = tf.searchsorted(self._keys, query)
    index = tf.minimum(index, tf.size(self._keys, out_type=index.dtype) - 1)
    return tf.equal(tf.gather(self._keys, index), query)

  def sample(self, batch_index: tf.Tensor, batch_size: int) -> dict[str, tf.Tensor]:
    """Batch number `batch_index`: dict of int64 [batch_size] `user`, `pos`, `neg` (unless
    `draw_negatives` is False), and `batch` (the batch index, repeated: models that draw more
    random numbers per batch key them on it, so that a resumed run draws the same)."""
    key = tf.random.experimental.stateless_fold_in(
        tf.constant([self.seed, 0x5EED], tf.int64), tf.cast(batch_index, tf.int64))
    k_user, k_pos, k_neg = tf.unstack(
        tf.random.experimental.stateless_split(key, num=3), axis=0)
    shape = [batch_size]
    pick = tf.random.stateless_uniform(
        shape, k_user, minval=0, maxval=tf.size(self._active_users, out_type=tf.int64),
        dtype=tf.int64)
    user = tf.gather(self._active_users, pick)
    start = tf.gather(self._offsets, user)
    count = tf.gather(self._offsets, user + 1) - start
    offset = tf.cast(
        tf.floor(tf.random.stateless_uniform(shape, k_pos, dtype=tf.float64)
                 * tf.cast(count, tf.float64)), tf.int64)
    pos = tf.gather(self._items, start + tf.minimum(offset, count - 1))
    batch = {"user": user, "pos": pos, "batch": tf.fill(shape, tf.cast(batch_index, tf.int64))}
    if not self.draw_negatives:
      return batch

    def draw(round_index):
      round_key = tf.random.experimental.stateless_fold_in(k_neg, round_index)
      return tf.random.stateless_uniform(
          shape, round_key, minval=0, maxval=self.num_items, dtype=tf.int64)

    # The membership test is the costly op: each round tests its draws once, and carries
    # which of them are still positives (the redraws and the result are as before).
    def redraw(round_index, neg, positive):
      neg = tf.where(positive, draw(round_index), neg)
      return round_index + 1, neg, self.contains(user, neg)

    def has_positive(round_index, neg, positive):
      del round_index, neg
      return tf.reduce_any(positive)

    first = draw(tf.constant(0, tf.int64))
    _, neg, positive = tf.while_loop(
        has_positive, redraw, (tf.constant(1, tf.int64), first, self.contains(user, first)),
        maximum_iterations=_MAX_REDRAWS)
    with tf.control_dependencies([tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(positive)),
        ["a negative could not be drawn outside the user's training items"])]):
      batch["neg"] = tf.identity(neg)
    return batch

  def dataset(self, batch_size: int, start: int | None = None,
              shard: distribution.Shard | None = None) -> tf.data.Dataset:
    """An endless dataset of index batches, from batch `start` (default: `position`).

    `batch_size` is the global batch; with a `shard` the dataset yields that input pipeline's
    per-replica slices of each global batch (see `distribution.split_batches`).
    """
    if start is None:
      start = int(self.position.numpy())
    # Batches in parallel, in order (a batch is a function of its index alone).
    batches = tf.data.Dataset.counter(start, dtype=tf.int64).map(
        lambda b: self.sample(b, batch_size), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True)
    return distribution.split_batches(batches, shard, batch_size)
