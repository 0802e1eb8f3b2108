"""Lazy Adam: Adam whose update of an embedding table touches only the rows a batch read.

A model that reads a table through `tf.gather` (FM's and VBPR's user and item rows) gets an
`IndexedSlices` gradient: the batch's rows, a row listed once per use. Dense Adam turns it
into a full-size gradient and moves every row's moments at every step,

    m <- beta_1 m + (1 - beta_1) g,    v <- beta_2 v + (1 - beta_2) g^2,
    w <- w - alpha_t m / (sqrt(v) + epsilon),   alpha_t = lr sqrt(1 - beta_2^t) / (1 - beta_1^t),

so a step costs O(rows x K) whatever the batch: at Amazon Fashion's size (64,583 users,
234,892 items) 90% of an FM step at K = 10 (benchmarks/README.md). Lazy Adam applies the same
three lines to the rows r the batch used only, with g_r the sum of the row's gradients over
its uses, and leaves the other rows, their m and their v as they are (the update of TF1's
`tf.contrib.opt.LazyAdamOptimizer` and TF Addons' `LazyAdam`). alpha_t uses the global step t,
as dense Adam does. A row used at every step gets exactly dense Adam's update; a row skipped
by a step keeps its moments instead of decaying them and does not coast on its momentum.
(Keras' dense Adam, given the same `IndexedSlices`, sums the uses for m but squares each use
before summing for v, sum_k g_k^2 instead of (sum_k g_k)^2: the two differ on rows a batch
uses more than once.) Gradients that are not `IndexedSlices` (FM's V and w_f, VBPR's E: every
pair reads them) take dense Adam's update unchanged.

The step's cost is O(batch x K) for the tables, and the rows' moments are the same variables
as dense Adam's (a checkpoint of either restores into the other). `tests/test_lazy_adam.py`
compares it with a NumPy oracle of the three lines, and with dense Adam on a row used at
every step.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class LazyAdam(keras.optimizers.Adam):
  """`keras.optimizers.Adam` with the lazy update of row-sparse gradients (module docstring).
  Takes Adam's arguments; `amsgrad` is not supported."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    if self.amsgrad:
      raise ValueError("LazyAdam does not support amsgrad")

  def update_step(self, gradient, variable, learning_rate):
    if not isinstance(gradient, tf.IndexedSlices):
      return super().update_step(gradient, variable, learning_rate)
    dtype = variable.dtype
    rows, position = tf.unique(gradient.indices)
    grad = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), position,
                                        tf.size(rows))
    step = tf.cast(self.iterations + 1, dtype)
    beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
    alpha = (tf.cast(learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step))
             / (1 - tf.pow(beta_1, step)))
    index = self._get_variable_index(variable)
    m, v = self._momentums[index], self._velocities[index]
    m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * grad
    v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(grad)
    self.assign(m, tf.IndexedSlices(m_rows, rows))
    self.assign(v, tf.IndexedSlices(v_rows, rows))
    self.assign_sub(variable, tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows)
                                                                 + self.epsilon), rows))
