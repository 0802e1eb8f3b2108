"""The DVBPR training task: model, optimizer, sampler, inputs, step and evaluation.

The `Trainer` (trainer.py) runs it; this module only says what one step and one evaluation
are for DVBPR.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from dvbpr_tf import catalog as catalog_lib
from dvbpr_tf import config as config_lib
from dvbpr_tf import distribution
from dvbpr_tf import dvbpr
from dvbpr_tf import evaluation
from dvbpr_tf import input_pipeline
from dvbpr_tf import losses
from dvbpr_tf import sampler as sampler_lib


def steps_per_epoch(catalog: catalog_lib.Catalog, config: config_lib.DvbprConfig) -> int:
  """The authors' epoch: number of training interactions // batch size (at least 1)."""
  if config.train.steps_per_epoch > 0:
    return config.train.steps_per_epoch
  num_train = int(np.sum(catalog.splits == catalog_lib.TRAIN))
  return max(1, num_train // config.pipeline.batch_size)


class DvbprTask:
  """Trains DVBPR by BPR on (u, i, j) triplets (eq. 5)."""

  metric_names = ("loss", "bpr", "weight_decay", "theta_decay")
  example_unit = "pairs"

  def __init__(self, catalog: catalog_lib.Catalog, config: config_lib.DvbprConfig,
               table: input_pipeline.ImageTable | None = None):
    self.catalog, self.config = catalog, config
    keras.utils.set_random_seed(config.pipeline.seed)  # Initial weights and dropout masks.
    self.model = dvbpr.Dvbpr(catalog.num_users, config.tower, name="dvbpr").build_for_input()
    opt = config.optimizer
    self.optimizer = distribution.loss_scaling(keras.optimizers.Adam(
        learning_rate=opt.learning_rate, beta_1=opt.beta_1, beta_2=opt.beta_2,
        epsilon=opt.epsilon))
    self.optimizer.build(self.model.trainable_variables)
    users, items = catalog.interactions("train")
    self.sampler = sampler_lib.TripletSampler(users, items, catalog.num_users,
                                              catalog.num_items, seed=config.pipeline.seed)
    self.table = table or input_pipeline.ImageTable.from_config(catalog.jpegs, config.pipeline)
    # Made under a strategy's scope, the task evaluates on that strategy's devices.
    devices = (tf.distribute.get_strategy().extended.worker_devices
               if tf.distribute.has_strategy() else None)
    self.evaluator = evaluation.Evaluator(catalog, config.train.sampled_negatives,
                                          seed=config.pipeline.seed, devices=devices)
    self.examples_per_step = config.pipeline.batch_size
    self._embed = tf.function(lambda images: self.model.item_embeddings(images, False),
                              reduce_retracing=True)

  def trackables(self):
    return {"model": self.model, "optimizer": self.optimizer, "sampler": self.sampler,
            "dropout_state": list(self.model.tower.random_state)}

  def dataset(self, start_step: int,
              shard: distribution.Shard | None = None) -> tf.data.Dataset:
    return input_pipeline.triplet_dataset(self.sampler, self.table, self.config.pipeline,
                                          start=start_step, shard=shard)

  def train_step(self, batch):
    """One Adam step on eq. 5 (under a strategy: this replica's rows and share)."""
    with tf.GradientTape() as tape:
      out = self.model(batch, training=True)
      terms = losses.dvbpr_loss(
          tf.cast(out["x_ui"], tf.float32), tf.cast(out["x_uj"], tf.float32),
          self.model.tower.kernels, tf.cast(out["theta"], tf.float32),
          self.config.weight_decay, self.config.theta_decay)
      scaled = self.optimizer.scale_loss(terms["loss"])
    distribution.apply_gradients(self.optimizer, tape, scaled,
                                 self.model.trainable_variables)
    self.sampler.position.assign_add(1)
    return terms

  def item_vectors(self) -> np.ndarray:
    """Phi of every catalog item: [num_items, K] (inference mode: no dropout)."""
    return evaluation.embed_items(self._embed, self.table, self.config.train.eval_batch_size)

  def user_vectors(self) -> np.ndarray:
    return self.model.theta.numpy()

  def evaluate(self):
    return self.evaluator.evaluate_embeddings(self.user_vectors(), self.item_vectors())

  def learning_rate(self) -> float:
    return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
