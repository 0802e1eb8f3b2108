"""The conditional LSGAN training task: networks, optimizers, inputs, the alternating step.

Per batch, as the authors' code: one discriminator step then one generator step, both with
the same z and the batch's category labels, Adam(1e-4, beta_1 0.5, beta_2 0.99) each
(docs/reproduction.md §4); with `discriminator_batch='joint'` (not the authors') D scores the
real and the fake batch in one call, in both steps; with `generator_ema` (not the authors')
a moving average of G's weights follows each G step and is the generator every sample,
figure, export and design uses (`inference_generator`). z is drawn with stateless random ops keyed
on the step, so a resumed run draws the same noise. At every checkpoint the task writes, to
TensorBoard, a grid of samples per category at a fixed z; every `sample_every_steps` and at
the end, the fidelity of its samples against the real images of each category (colours and,
with a feature scorer, the classifier Fréchet distance; evaluation/gan_metrics.py).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import distribution
from dvbpr_tf.core import errors
from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.evaluation import gan_metrics
from dvbpr_tf.models import gan
from dvbpr_tf.models import losses
from dvbpr_tf.training import trainer


def steps_per_epoch(catalog: catalog_lib.Catalog, config: config_lib.GanTrainConfig) -> int:
  """The authors' GAN epoch: items // batch size."""
  return trainer.steps_per_epoch(catalog.num_items, config.batch_size, config.steps_per_epoch)


def build_networks(catalog: catalog_lib.Catalog, config: config_lib.GanTrainConfig
                   ) -> tuple[gan.Generator, gan.Discriminator]:
  """The generator and discriminator for this catalog's categories, their initial weights
  drawn from the config's seed."""
  network = dataclasses.replace(config.network, num_categories=catalog.num_categories)
  keras.utils.set_random_seed(config.seed)
  generator = gan.Generator(network, seed=config.seed, name="generator").build_for_input()
  discriminator = gan.Discriminator(network, seed=config.seed + 1,
                                    name="discriminator").build_for_input()
  return generator, discriminator


def inference_key(config: config_lib.GanTrainConfig) -> str:
  """The checkpoint name of the generator that draws samples and designs: the moving
  average `generator_ema` when the config keeps one, else `generator`."""
  return "generator_ema" if config.generator_ema > 0 else "generator"


def mismatched_labels(labels_onehot: tf.Tensor, seed) -> tf.Tensor:
  """Each row's category moved to another one: c + k mod C with k uniform in 1..C-1
  (stateless, keyed on `seed`), one-hot like `labels_onehot` [B, C]."""
  num = labels_onehot.shape[-1]
  categories = tf.argmax(labels_onehot, axis=-1, output_type=tf.int32)
  shift = tf.random.stateless_uniform(tf.shape(categories), seed, minval=1, maxval=max(num, 2),
                                      dtype=tf.int32)
  return tf.one_hot((categories + shift) % num, num, dtype=labels_onehot.dtype)


def update_moving_average(average: keras.Model, model: keras.Model, decay,
                          step) -> None:
  """average <- d * average + (1 - d) * model, for every trainable weight, with
  d = min(decay, (1 + step) / (10 + step)) (the warm-up of tf.train.ExponentialMovingAverage
  with num_updates, so early steps are not dominated by the initial weights). Batch-norm
  statistics are not averaged: see `recalibrate_batch_norm`."""
  step = tf.cast(step, tf.float32)
  d = tf.minimum(tf.constant(decay, tf.float32), (1.0 + step) / (10.0 + step))
  for slow, fast in zip(average.trainable_weights, model.trainable_weights):
    slow.assign(tf.cast(d, slow.dtype) * slow + tf.cast(1.0 - d, slow.dtype) * fast)


def recalibrate_batch_norm(generator: gan.Generator, seed: int, batches: int = 16,
                           batch_size: int = 64) -> None:
  """Sets each batch-norm layer's moving mean and variance to the mean of its batch
  statistics over `batches` batches of G(z, c) in training mode (z from the config's
  distribution keyed on `seed`, the categories in turn): the statistics of the averaged
  weights themselves. Averaging the moving statistics along with the weights does not give
  them: an average of weights makes smaller activations than the weights it averages did,
  so the averaged variance over-normalises and the samples come out pale (measured on the
  demo: generated/real saturation 0.59 in the worst category, against 0.91 for the last
  iterate). A function of the weights and `seed` only, so a resumed run gets the same."""
  network = generator.config
  layers = [layer for layer in generator._flatten_layers(include_self=False)  # pylint: disable=protected-access
            if isinstance(layer, keras.layers.BatchNormalization)]
  momenta = [layer.momentum for layer in layers]
  labels = tf.one_hot(tf.range(batch_size) % network.num_categories, network.num_categories)
  try:
    for k in range(batches):
      for layer in layers:  # moving <- m * moving + (1 - m) * batch: the running mean.
        layer.momentum = k / (k + 1.0)
      generator(gan.sample_latent(network, batch_size, seed=seed + k), labels, training=True)
  finally:
    for layer, momentum in zip(layers, momenta):
      layer.momentum = momentum


class GanTask:
  """Trains a category-conditional LSGAN on a catalog's images (eq. 7)."""

  metric_names = ("d_loss", "g_loss", "d_real", "d_fake")
  example_unit = "images"

  def __init__(self, catalog: catalog_lib.Catalog, config: config_lib.GanTrainConfig,
               feature_scorer=None):
    """`feature_scorer` (optional): anything with `features(uint8 images) -> [N, D]`, e.g.
    the dataset's category classifier; with it each fidelity check also gives the Fréchet
    distance in its features."""
    if catalog.num_items < config.batch_size:
      raise errors.ConfigError(
          f"the catalog has {catalog.num_items} items, fewer than one batch "
          f"(--batch_size={config.batch_size})")
    self.catalog, self.config = catalog, config
    self.generator, self.discriminator = build_networks(catalog, config)
    self.network = network = self.generator.config
    self.generator_ema = None
    if config.generator_ema > 0:
      self.generator_ema = gan.Generator(network, seed=config.seed,
                                         name="generator_ema").build_for_input()
      self.generator_ema.set_weights(self.generator.get_weights())
    # Samples, fidelity, export and design use this one.
    self.inference_generator = self.generator_ema or self.generator
    self.steps_per_epoch = steps_per_epoch(catalog, config)
    adam = lambda: distribution.loss_scaling(keras.optimizers.Adam(
        trainer.learning_rate_schedule(config.learning_rate, config.schedule,
                                       self.steps_per_epoch * config.epochs),
        beta_1=config.beta_1, beta_2=config.beta_2))
    self.g_optimizer, self.d_optimizer = adam(), adam()
    self.g_optimizer.build(self.generator.trainable_variables)
    self.d_optimizer.build(self.discriminator.trainable_variables)
    self.table = input_pipeline.ImageTable(catalog.jpegs, network.image_size,
                                           cache_decoded=config.cache_decoded)
    self.examples_per_step = config.batch_size
    # The fixed z of the sample grids: the same noise for every category.
    count = config.samples_per_category
    z = gan.sample_latent(network, count, seed=config.seed + 7919)
    self.grid_z = tf.tile(z, [network.num_categories, 1])
    self.grid_categories = tf.repeat(tf.range(network.num_categories, dtype=tf.int64), count)
    self._real = None
    self._references: dict[int, dict] = {}  # Per category: the real side of the colours.
    self._real_features = None
    self._fidelity: tuple[int, dict] | None = None  # (step, figures) of the last check.
    self.feature_scorer = feature_scorer
    self._generate = tf.function(
        lambda z, c: self.inference_generator(z, tf.one_hot(c, network.num_categories),
                                              training=False),
        reduce_retracing=True)

  def trackables(self):
    objects = {"generator": self.generator, "discriminator": self.discriminator,
               "g_optimizer": self.g_optimizer, "d_optimizer": self.d_optimizer}
    if self.generator_ema is not None:
      objects["generator_ema"] = self.generator_ema
    return objects

  def dataset(self, start_step: int,
              shard: distribution.Shard | None = None) -> tf.data.Dataset:
    # Position in the data's own epochs (num_items // batch batches each), which can differ
    # from the trainer's epoch when steps_per_epoch is overridden.
    epoch, offset = divmod(start_step, self.catalog.num_items // self.config.batch_size)
    return input_pipeline.gan_dataset(self.table, self.catalog.item_category,
                                      self.network.num_categories, self.config.batch_size,
                                      seed=self.config.seed, epoch_start=epoch,
                                      skip_batches=offset, shard=shard)

  def train_step(self, batch):
    """One D step then one G step on a batch (one replica's rows of the global batch under a
    distribution strategy: each returns its share of the batch means, see distribution)."""
    images, labels = batch["image"], batch["label"]
    step = self.d_optimizer.iterations
    # The global batch's z, keyed on the step; each replica takes its rows.
    z = distribution.replica_rows(gan.sample_latent(
        self.network, self.config.batch_size,
        seed=tf.stack([tf.constant(self.config.seed, tf.int64), tf.cast(step, tf.int64)])))
    share = distribution.replica_share
    weight = self.config.mismatched_labels
    wrong = None
    with tf.GradientTape() as tape:
      fake = self.generator(z, labels, training=True)
      if weight:
        wrong = mismatched_labels(labels, seed=tf.stack([
            tf.constant(self.config.seed + 1, tf.int64), tf.cast(step, tf.int64)]))
        d_real, d_fake, d_wrong = self._discriminate(images, fake, labels, wrong=wrong)
        start = self.config.mismatched_labels_from_epoch * self.steps_per_epoch
        weight_now = tf.where(step >= start, weight, 0.0)
        d_loss = share(losses.matching_aware_discriminator_loss(
            d_real, d_fake, d_wrong, weight_now,
            fake_weight=None if self.config.mismatched_labels_split else 1.0))
      else:
        d_real, d_fake = self._discriminate(images, fake, labels)
        d_loss = share(losses.lsgan_discriminator_loss(d_real, d_fake))
      scaled = self.d_optimizer.scale_loss(d_loss)
    distribution.apply_gradients(self.d_optimizer, tape, scaled,
                                 self.discriminator.trainable_variables)
    # In 'joint' mode G's step shows D the batch D's step saw (with the mismatched reals), so
    # that D's batch-norm statistics are the ones it was trained with.
    joint_wrong = wrong if weight and self.config.discriminator_batch == "joint" else None
    with tf.GradientTape() as tape:
      fake = self.generator(z, labels, training=True)
      g_fake = self._discriminate(images, fake, labels, real_needed=False,
                                  wrong=joint_wrong)[1]
      g_loss = share(losses.lsgan_generator_loss(g_fake))
      scaled = self.g_optimizer.scale_loss(g_loss)
    distribution.apply_gradients(self.g_optimizer, tape, scaled,
                                 self.generator.trainable_variables)
    if self.generator_ema is not None:
      update_moving_average(self.generator_ema, self.generator, self.config.generator_ema,
                            step)
    return {"d_loss": d_loss, "g_loss": g_loss, "d_real": share(tf.reduce_mean(d_real)),
            "d_fake": share(tf.reduce_mean(d_fake))}

  def _discriminate(self, images, fake, labels, real_needed: bool = True, wrong=None):
    """(D(real), D(fake)) [B, 1] float32 in training mode, and with `wrong` (one-hot
    categories) D(real, wrong) third: one call per batch ('separate', the authors'; without
    `real_needed` D(real) is None and not computed) or one call on all of them ('joint',
    which always includes the real batch: its batch-norm statistics are the whole call's)."""
    joint = self.config.discriminator_batch == "joint"
    parts = [(images, labels)] if real_needed or joint else [None]
    parts.append((tf.cast(fake, images.dtype), labels))
    if wrong is not None:
      parts.append((images, wrong))
    if joint:
      scores = tf.cast(self.discriminator(tf.concat([x for x, _ in parts], 0),
                                          tf.concat([c for _, c in parts], 0), training=True),
                       tf.float32)
      return tuple(tf.split(scores, len(parts), axis=0))
    return tuple(None if part is None else
                 tf.cast(self.discriminator(part[0], part[1], training=True), tf.float32)
                 for part in parts)

  def evaluate(self):
    return {}

  def before_checkpoint(self) -> None:
    """The moving-average generator's batch-norm statistics, made its own before every
    checkpoint (so every sample, export and design drawn from it uses them)."""
    if self.generator_ema is not None:
      recalibrate_batch_norm(self.generator_ema, seed=self.config.seed + 65537,
                             batch_size=self.config.batch_size)

  def learning_rate(self) -> float:
    return float(keras.ops.convert_to_numpy(self.g_optimizer.learning_rate))

  def sample_grid(self) -> np.ndarray:
    """uint8 [num_categories * samples_per_category, S, S, 3]: rows of categories."""
    images = self._generate(self.grid_z, self.grid_categories)
    return input_pipeline.to_uint8(images)

  def real_images(self) -> np.ndarray:
    """Every catalog item at the GAN's size, uint8 (decoded once)."""
    if self._real is None:
      self._real = (self.table.pixels.numpy() if self.table.cached else
                    input_pipeline.decode_items(self.catalog.jpegs,
                                                range(self.catalog.num_items),
                                                self.network.image_size))
    return self._real

  def colour_fidelity(self, per_category: int | None = None) -> dict:
    """Generated against real images per category (evaluation/gan_metrics): `per_category`
    (default: the config's `fidelity_samples`) samples at a fixed z against up to as many
    real images of the category (categories with fewer than 2 real images are skipped), and
    the worst category of each figure. With a
    `feature_scorer`, also the Fréchet distance in its features between all those samples and
    every real image, beside the same distance between two disjoint halves of the real
    images. Cached per training step."""
    per_category = per_category or self.config.fidelity_samples
    step = int(self.d_optimizer.iterations.numpy())
    if self._fidelity is not None and self._fidelity[0] == step:
      return self._fidelity[1]
    real = self.real_images()
    z = gan.sample_latent(self.network, per_category, seed=self.config.seed + 104729)
    by_category, samples = {}, []
    for category, name in enumerate(self.catalog.category_names):
      members = np.flatnonzero(self.catalog.item_category == category)[:per_category]
      if len(members) < 2:
        continue
      labels = tf.fill([per_category], tf.constant(category, tf.int64))
      generated = input_pipeline.to_uint8(self._generate(z, labels))
      samples.append(generated)
      if category not in self._references:
        self._references[category] = gan_metrics.real_reference(real[members],
                                                                seed=self.config.seed)
      by_category[str(name)] = gan_metrics.colour_comparison(
          generated, reference=self._references[category])
    figures = {"by_category": by_category, **gan_metrics.summarise_colours(by_category)}
    if self.feature_scorer is not None and samples:
      figures.update(self._frechet(np.concatenate(samples)))
    self._fidelity = (step, figures)
    return figures

  def _frechet(self, generated: np.ndarray) -> dict:
    if self._real_features is None:
      features = self.feature_scorer.features(self.real_images())
      one, other = gan_metrics.random_halves(len(features), self.config.seed)
      self._real_features = (features, gan_metrics.frechet_distance_of(features[one],
                                                                       features[other]))
    features, halves = self._real_features
    return {"frechet_classifier": gan_metrics.frechet_distance_of(
                self.feature_scorer.features(generated), features),
            "frechet_classifier_real_halves": halves}

  def write_summaries(self, step: int) -> None:
    """The sample grid at every checkpoint; the fidelity figures every `sample_every_steps`
    steps and at the end."""
    grid = tile(self.sample_grid(), self.config.samples_per_category)
    tf.summary.image("samples/grid (rows: categories)", grid[None], step=step)
    every = self.config.sample_every_steps
    last = self.steps_per_epoch * self.config.epochs
    if not (step >= last or (every and step % every == 0)):
      return
    fidelity = self.colour_fidelity()
    for key in ("saturation_ratio_min", "hue_distance_max",
                "hue_distance_over_real_halves_max", "frechet_classifier",
                "frechet_classifier_real_halves"):
      if key in fidelity:
        tf.summary.scalar(f"fidelity/{key}", fidelity[key], step=step)
    for name, figures in fidelity["by_category"].items():
      tf.summary.scalar(f"fidelity_saturation_ratio/{name}", figures["saturation_ratio"],
                        step=step)
      tf.summary.scalar(f"fidelity_hue_distance/{name}", figures["hue_distance"], step=step)
      tf.summary.scalar(f"fidelity_lightness/{name}", figures["lightness_generated"],
                        step=step)


def tile(images: np.ndarray, columns: int, pad: int = 2) -> np.ndarray:
  """[N, S, S, 3] -> one image of rows of `columns` images, white padding between."""
  n, size = len(images), images.shape[1]
  rows = -(-n // columns)
  out = np.full((rows * (size + pad) + pad, columns * (size + pad) + pad, 3), 255, np.uint8)
  for k, image in enumerate(images):
    r, c = divmod(k, columns)
    out[pad + r * (size + pad):pad + r * (size + pad) + size,
        pad + c * (size + pad):pad + c * (size + pad) + size] = image
  return out
