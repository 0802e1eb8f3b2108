"""The DVBPR training task: `BprTask` with images through the tower, evaluated from the
embeddings.

The `Trainer` (trainer.py) runs it; this module only says what DVBPR's inputs and evaluation
are.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import distribution
from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.evaluation import evaluator
from dvbpr_tf.models import dvbpr
from dvbpr_tf.training import bpr_task
from dvbpr_tf.training import trainer


def steps_per_epoch(catalog: catalog_lib.Catalog, config: config_lib.DvbprConfig) -> int:
  """The authors' epoch: number of training interactions // batch size (at least 1)."""
  return trainer.steps_per_epoch(len(catalog.interactions("train")[0]),
                                 config.pipeline.batch_size, config.train.steps_per_epoch)


def build_model(catalog: catalog_lib.Catalog, config: config_lib.DvbprConfig) -> dvbpr.Dvbpr:
  """DVBPR for this catalog's users, with its initial weights drawn from the config's seed
  (also the seed of the dropout masks)."""
  keras.utils.set_random_seed(config.seed)
  return dvbpr.Dvbpr(catalog.num_users, config.tower, weight_decay=config.weight_decay,
                     theta_decay=config.theta_decay, visual_bias=config.visual_bias,
                     name="dvbpr").build_for_input()


class DvbprTask(bpr_task.BprTask):
  """Trains DVBPR by BPR on (u, i, j) triplets of images (eq. 5)."""

  def __init__(self, catalog: catalog_lib.Catalog, config: config_lib.DvbprConfig,
               table: input_pipeline.ImageTable | None = None):
    self.config = config
    super().__init__(build_model(catalog, config), catalog,
                     batch_size=config.pipeline.batch_size, optimizer=config.optimizer,
                     sampler=bpr_task.default_sampler(catalog, config.seed),
                     total_steps=config.train.epochs * steps_per_epoch(catalog, config))
    self.table = table or input_pipeline.ImageTable.from_config(catalog.jpegs, config.pipeline)
    # Made under a strategy's scope, the task evaluates on that strategy's devices.
    devices = (tf.distribute.get_strategy().extended.worker_devices
               if tf.distribute.has_strategy() else None)
    self.evaluator = evaluator.Evaluator(catalog, config.train.sampled_negatives,
                                         seed=config.seed, devices=devices)
    self._embed = tf.function(lambda images: self.model.item_embeddings(images, False),
                              reduce_retracing=True)

  def trackables(self):
    return {**super().trackables(), "dropout_state": list(self.model.tower.random_state)}

  def dataset(self, start_step: int,
              shard: distribution.Shard | None = None) -> tf.data.Dataset:
    return input_pipeline.triplet_dataset(self.sampler, self.table, self.config.pipeline,
                                          start=start_step, shard=shard,
                                          seed=self.config.seed)

  def item_vectors(self) -> np.ndarray:
    """Phi of every catalog item: [num_items, K] (inference mode: no dropout)."""
    return evaluator.embed_items(self._embed, self.table, self.config.train.eval_batch_size)

  def user_vectors(self) -> np.ndarray:
    return self.model.all_user_vectors().numpy()

  def evaluate(self, per_user: bool = False):
    return self.evaluator.evaluate_embeddings(self.user_vectors(), self.item_vectors(),
                                              per_user=per_user)
