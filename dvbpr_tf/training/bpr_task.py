"""The one training task of every BPR-trained recommender: DVBPR and the pairwise baselines.

The model supplies the objective, as `BprModel` and `Dvbpr` do:
- `metric_names`: the names of the scalars `loss_terms` returns, the total `loss` first;
- `loss_terms(batch, training)`: dict of scalar tensors for one batch of the triplet sampler.
The task owns what is the same for all of them: Adam (with TF1's epsilon, as the authors'
`tf.train.AdamOptimizer`), the stateless triplet sampler, the step (one Adam update of the
summed loss, eq. 5 for DVBPR) and the learning rate. A model may also offer:
- `prepare_batch(batch)`: work on the batch that the step needs but that must not be
  XLA-compiled (WARP's candidates); the trainer runs it before each step;
- `sgd_step(batch, rate)`: the plain-SGD update with its gradient written out (BPR-MF, WARP),
  taken instead of GradientTape + `keras.optimizers.SGD` when `fused_sgd` is on, the optimiser
  is SGD without momentum, and no distribution strategy is in scope.
`DvbprTask` (images through the tower) and `PairwiseTask` (indices only) add their inputs and
their evaluation.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import distribution
from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf.data import sampler as sampler_lib
from dvbpr_tf.training import lazy_adam
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
  adam = lazy_adam.LazyAdam if config.algorithm == "lazy_adam" else keras.optimizers.Adam
  return adam(learning_rate=rate, beta_1=config.beta_1, beta_2=config.beta_2,
              epsilon=config.epsilon)


class BprTask:
  """Adam (or SGD) on `model.loss_terms` over a triplet sampler's batches."""

  example_unit = "pairs"

  def __init__(self, model: keras.Model, catalog: catalog_lib.Catalog, *, batch_size: int,
               optimizer: config_lib.OptimizerConfig, sampler: sampler_lib.TripletSampler,
               total_steps: int | None = None, fused_sgd: bool = True):
    """`total_steps`: the run's training steps, over which a 'cosine' schedule decays;
    `fused_sgd`: take the model's `sgd_step` where it applies (module docstring)."""
    self.model, self.catalog = model, catalog
    self.metric_names = tuple(model.metric_names)
    self.batch_size = self.examples_per_step = batch_size
    self.optimizer = distribution.loss_scaling(make_optimizer(optimizer, total_steps))
    self.optimizer.build(model.trainable_variables)
    self.sampler = sampler
    # Mirrored variables need their gradients all-reduced: the fused path is one replica's.
    self.fused_sgd = (fused_sgd and hasattr(model, "sgd_step") and optimizer.algorithm == "sgd"
                      and not tf.distribute.has_strategy()
                      and type(self.optimizer) is keras.optimizers.SGD  # pylint: disable=unidiomatic-typecheck
                      and not self.optimizer.momentum)

  def trackables(self):
    return {"model": self.model, "optimizer": self.optimizer, "sampler": self.sampler}

  def prepare_batch(self, batch):
    """The model's `prepare_batch`, if it has one (run outside an XLA-compiled step)."""
    prepare = getattr(self.model, "prepare_batch", None)
    return batch if prepare is None else prepare(batch)

  def train_step(self, batch):
    """One Adam step on the model's loss (under a strategy: this replica's rows and share)."""
    if self.fused_sgd:
      terms = self.model.sgd_step(batch, tf.cast(self.optimizer.learning_rate, tf.float32))
      self.optimizer.iterations.assign_add(1)  # As `apply_gradients` counts (schedules).
      self.sampler.position.assign_add(1)
      return terms
    with tf.GradientTape() as tape:
      terms = self.model.loss_terms(batch, training=True)
      scaled = self.optimizer.scale_loss(terms["loss"])
    distribution.apply_gradients(self.optimizer, tape, scaled,
                                 self.model.trainable_variables)
    self.sampler.position.assign_add(1)
    return terms

  def learning_rate(self) -> float:
    return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
