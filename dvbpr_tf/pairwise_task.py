"""Training task for the recommenders that learn from (u, i, j) index triplets alone or with
fixed item features (BPR-MF, WARP, FM, VBPR): no images pass through the input pipeline.

A model trained by this task is a Keras model with:
- `metric_names`: the names of the scalars `loss_terms` returns, the total `loss` first;
- `loss_terms(batch, training)`: dict of scalar tensors for a batch dict of int64 [B]
  `user`, `pos`, `neg` (the triplets of the authors' sampler);
- `score_rows(users)`: [B, num_items] scores x_ui of the given users over every item.
The `Trainer` runs it; `Evaluator` scores it exactly as DVBPR.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from dvbpr_tf import catalog as catalog_lib
from dvbpr_tf import distribution
from dvbpr_tf import evaluation
from dvbpr_tf import sampler as sampler_lib


class PairwiseTask:
  """Adam on a pairwise model's loss over the sampler's triplets."""

  example_unit = "pairs"

  def __init__(self, model: keras.Model, catalog: catalog_lib.Catalog, *, batch_size: int,
               learning_rate: float, seed: int = 0, sampled_negatives: int = 100,
               sampler: sampler_lib.TripletSampler | None = None,
               evaluator: evaluation.Evaluator | None = None):
    self.model, self.catalog = model, catalog
    self.metric_names = tuple(model.metric_names)
    self.examples_per_step = batch_size
    self.batch_size = batch_size
    self.optimizer = distribution.loss_scaling(
        keras.optimizers.Adam(learning_rate=learning_rate, epsilon=1e-8))
    self.optimizer.build(model.trainable_variables)
    if sampler is None:
      users, items = catalog.interactions("train")
      sampler = sampler_lib.TripletSampler(users, items, catalog.num_users, catalog.num_items,
                                           seed=seed)
    self.sampler = sampler
    self.evaluator = evaluator or evaluation.Evaluator(catalog, sampled_negatives, seed=seed)
    self._score_rows = tf.function(model.score_rows, reduce_retracing=True)

  def trackables(self):
    return {"model": self.model, "optimizer": self.optimizer, "sampler": self.sampler}

  def dataset(self, start_step: int,
              shard: distribution.Shard | None = None) -> tf.data.Dataset:
    return self.sampler.dataset(self.batch_size, start=start_step,
                                shard=shard).prefetch(tf.data.AUTOTUNE)

  def train_step(self, batch):
    """One Adam step (under a strategy: this replica's rows and share of the loss)."""
    with tf.GradientTape() as tape:
      terms = self.model.loss_terms(batch, training=True)
      scaled = self.optimizer.scale_loss(terms["loss"])
    distribution.apply_gradients(self.optimizer, tape, scaled,
                                 self.model.trainable_variables)
    self.sampler.position.assign_add(1)
    return terms

  def score_rows(self, users: np.ndarray) -> np.ndarray:
    return self._score_rows(tf.constant(users, tf.int64)).numpy()

  def evaluate(self):
    return self.evaluator.evaluate_scores(self.score_rows)

  def learning_rate(self) -> float:
    return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
