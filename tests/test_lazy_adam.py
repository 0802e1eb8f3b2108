"""Lazy Adam (training/lazy_adam.py) against a NumPy oracle of its update, and against dense
Adam where the two must agree; FM and VBPR trained with it through `BprTask`."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.baselines import fm
from dvbpr_tf.baselines import vbpr
from dvbpr_tf.training import bpr_task
from dvbpr_tf.training import lazy_adam

B1, B2, EPS, LR = 0.9, 0.999, 1e-8, 0.01


class _NumpyLazyAdam:
  """The oracle: per step, g_r summed over a row's uses; only used rows' m, v, w move;
  dense gradients take Adam's update everywhere; bias correction by the global step."""

  def __init__(self, shape):
    self.m, self.v, self.t = np.zeros(shape), np.zeros(shape), 0

  def step(self, w, rows, values, dense=False):
    self.t += 1
    alpha = LR * np.sqrt(1 - B2**self.t) / (1 - B1**self.t)
    if dense:
      self.m = B1 * self.m + (1 - B1) * values
      self.v = B2 * self.v + (1 - B2) * values**2
      return w - alpha * self.m / (np.sqrt(self.v) + EPS)
    g = np.zeros_like(w)
    np.add.at(g, rows, values)
    used = np.unique(rows)
    w = w.copy()
    self.m[used] = B1 * self.m[used] + (1 - B1) * g[used]
    self.v[used] = B2 * self.v[used] + (1 - B2) * g[used]**2
    w[used] -= alpha * self.m[used] / (np.sqrt(self.v[used]) + EPS)
    return w


def _gather_loss_steps(optimizer, table, batches, coefficient):
  """Steps of loss = sum_k coefficient[k] . table[rows[k]] (+ l2 of the rows), by tape."""
  for rows in batches:
    with tf.GradientTape() as tape:
      gathered = tf.gather(table, rows)
      loss = (tf.reduce_sum(gathered * coefficient[:len(rows)])
              + 0.5 * tf.reduce_sum(tf.square(gathered)))
    grads = tape.gradient(loss, [table])
    assert isinstance(grads[0], tf.IndexedSlices)
    optimizer.apply_gradients(zip(grads, [table]))


def test_row_sparse_steps_equal_the_numpy_oracle():
  rng = np.random.default_rng(0)
  start = rng.normal(size=(7, 3)).astype(np.float32)
  coefficient = rng.normal(size=(5, 3)).astype(np.float32)
  batches = [np.array([1, 4, 1, 6]), np.array([2, 4]), np.array([6, 6, 6, 0, 1])]
  table = keras.Variable(start)
  optimizer = lazy_adam.LazyAdam(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS)
  optimizer.build([table])
  _gather_loss_steps(optimizer, table, batches, tf.constant(coefficient))
  oracle, w = _NumpyLazyAdam(start.shape), start.astype(np.float64)
  for rows in batches:
    values = coefficient[:len(rows)] + w[rows]  # d/dw of the loss, per use.
    w = oracle.step(w, rows, values)
  np.testing.assert_allclose(table.numpy(), w, rtol=1e-5, atol=1e-6)
  # Rows 3 and 5 were never read: untouched, with zero moments.
  np.testing.assert_array_equal(table.numpy()[[3, 5]], start[[3, 5]])
  momentum = optimizer._momentums[0].numpy()  # pylint: disable=protected-access
  np.testing.assert_array_equal(momentum[[3, 5]], 0.0)
  np.testing.assert_allclose(momentum, oracle.m, rtol=1e-5, atol=1e-7)


def test_dense_gradients_and_rows_used_every_step_take_dense_adams_update():
  rng = np.random.default_rng(1)
  start = rng.normal(size=(4, 2)).astype(np.float32)
  coefficient = tf.constant(rng.normal(size=(6, 2)).astype(np.float32))
  # Every row once at every step. (With a row used twice in a batch Keras' Adam differs: it
  # squares an IndexedSlices gradient per use, v gets sum_k g_k^2, not (sum_k g_k)^2.)
  every_row = [np.array([2, 0, 3, 1]), np.array([0, 1, 2, 3]), np.array([3, 2, 1, 0])]
  tables = {}
  for name, make in (("lazy", lazy_adam.LazyAdam), ("dense", keras.optimizers.Adam)):
    table = keras.Variable(start)
    optimizer = make(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS)
    optimizer.build([table])
    _gather_loss_steps(optimizer, table, every_row, coefficient)
    tables[name] = table.numpy()
  np.testing.assert_allclose(tables["lazy"], tables["dense"], rtol=1e-6, atol=1e-7)
  # A dense gradient (no gather) goes through Adam's own update.
  dense = keras.Variable(start)
  optimizer = lazy_adam.LazyAdam(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS)
  optimizer.build([dense])
  optimizer.apply_gradients([(tf.ones_like(dense), dense)])
  np.testing.assert_allclose(dense.numpy(),
                             _NumpyLazyAdam(start.shape).step(start, None, np.ones_like(start),
                                                              dense=True), rtol=1e-6)


def test_refuses_amsgrad():
  with pytest.raises(ValueError, match="amsgrad"):
    lazy_adam.LazyAdam(amsgrad=True)


def test_compiles_under_xla_with_the_same_update():
  rng = np.random.default_rng(2)
  start = rng.normal(size=(6, 2)).astype(np.float32)
  coefficient = tf.constant(rng.normal(size=(4, 2)).astype(np.float32))
  rows = tf.constant([5, 0, 5, 2])
  results = []
  for jit in (False, True):
    table = keras.Variable(start)
    optimizer = lazy_adam.LazyAdam(learning_rate=LR)
    optimizer.build([table])

    step = tf.function(functools.partial(_gather_loss_steps, optimizer, table, [rows],
                                         coefficient), jit_compile=jit)
    step()
    step()
    results.append(table.numpy())
  np.testing.assert_allclose(results[0], results[1], rtol=1e-6)


@pytest.mark.parametrize("make", [
    lambda features: fm.FactorizationMachine(5, features, fm.FmConfig(dim=3, reg=0.1)),
    lambda features: vbpr.Vbpr(5, features, vbpr.VbprConfig(dim=3, reg=0.1,
                                                               visual_bias=True))],
    ids=["fm", "vbpr"])
def test_feature_models_move_only_the_batchs_id_rows(make):
  features = np.random.default_rng(3).normal(size=(8, 4)).astype(np.float32)
  model = make(features)
  before = {v.path: v.numpy() for v in model.trainable_variables}
  task = bpr_task.BprTask(
      model, catalog=None, batch_size=3,
      optimizer=config_lib.OptimizerConfig(learning_rate=0.01, algorithm="lazy_adam"),
      sampler=_NoSampler())
  assert isinstance(task.optimizer, lazy_adam.LazyAdam)
  batch = {"user": tf.constant([0, 2, 0], tf.int64), "pos": tf.constant([1, 3, 1], tf.int64),
           "neg": tf.constant([6, 3, 7], tf.int64)}
  task.train_step(batch)
  for variable in model.trainable_variables:
    changed = np.any(variable.numpy() != before[variable.path], axis=tuple(
        range(1, variable.numpy().ndim)))
    if variable.shape[0] == 5:  # A user table: rows 0 and 2 only.
      np.testing.assert_array_equal(np.flatnonzero(changed), [0, 2])
    elif variable.shape[0] == 8:  # An item table: the batch's items 1, 3, 6, 7.
      np.testing.assert_array_equal(np.flatnonzero(changed), [1, 3, 6, 7])
    else:  # Shared by every pair (V, w_f, E, beta'): dense Adam, every row moves.
      assert changed.all(), variable.path


class _NoSampler:
  """What `BprTask.train_step` needs of a sampler: its position."""

  def __init__(self):
    self.position = tf.Variable(0, dtype=tf.int64)
