"""The one training task of every BPR-trained recommender: DVBPR and the pairwise baselines.

The model supplies the objective, as `BprModel` and `Dvbpr` do:
- `metric_names`: the names of the scalars `loss_terms` returns, the total `loss` first;
- `loss_terms(batch, training)`: dict of scalar tensors for one batch of the triplet sampler.
The task owns what is the same for all of them: Adam (with TF1's epsilon, as the authors'
`tf.train.AdamOptimizer`), the stateless triplet sampler, the step (one Adam update of the
summed loss, eq. 5 for DVBPR) and the learning rate. `DvbprTask` (images through the tower)
and `PairwiseTask` (indices only) add their inputs and their evaluation.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import distribution
from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf.data import sampler as sampler_lib
from dvbpr_tf.training import trainer


def default_sampler(catalog: catalog_lib.Catalog, seed: int) -> sampler_lib.TripletSampler:
  """The authors' sampler over the training split: u, i in I_u^+, j uniform outside it."""
  users, items = catalog.interactions("train")
  return sampler_lib.TripletSampler(users, items, catalog.num_users, catalog.num_items,
                                    seed=seed)


def learning_rate(config: config_lib.OptimizerConfig, total_steps: int | None):
  """Adam's step size: a constant, or a cosine decay to 0 over `total_steps`."""
  return trainer.learning_rate_schedule(config.learning_rate, config.schedule, total_steps)


def make_optimizer(config: config_lib.OptimizerConfig, total_steps: int | None):
  """The Keras optimiser `config` names, with its schedule."""
  rate = learning_rate(config, total_steps)
  if config.algorithm == "sgd":
    return keras.optimizers.SGD(learning_rate=rate)
  return keras.optimizers.Adam(learning_rate=rate, beta_1=config.beta_1, beta_2=config.beta_2,
                               epsilon=config.epsilon)


class BprTask:
  """Adam (or SGD) on `model.loss_terms` over a triplet sampler's batches."""

  example_unit = "pairs"

  def __init__(self, model: keras.Model, catalog: catalog_lib.Catalog, *, batch_size: int,
               optimizer: config_lib.OptimizerConfig, sampler: sampler_lib.TripletSampler,
               total_steps: int | None = None):
    """`total_steps`: the run's training steps, over which a 'cosine' schedule decays."""
    self.model, self.catalog = model, catalog
    self.metric_names = tuple(model.metric_names)
    self.batch_size = self.examples_per_step = batch_size
    self.optimizer = distribution.loss_scaling(make_optimizer(optimizer, total_steps))
    self.optimizer.build(model.trainable_variables)
    self.sampler = sampler

  def trackables(self):
    return {"model": self.model, "optimizer": self.optimizer, "sampler": self.sampler}

  def train_step(self, batch):
    """One Adam step on the model's loss (under a strategy: this replica's rows and share)."""
    with tf.GradientTape() as tape:
      terms = self.model.loss_terms(batch, training=True)
      scaled = self.optimizer.scale_loss(terms["loss"])
    distribution.apply_gradients(self.optimizer, tape, scaled,
                                 self.model.trainable_variables)
    self.sampler.position.assign_add(1)
    return terms

  def learning_rate(self) -> float:
    return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
