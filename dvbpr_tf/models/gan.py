"""The conditional LSGAN (eq. 7): a generator G(z, c) and a discriminator D(x, c).

Trained with the least-squares losses of eq. 7 (`losses.lsgan_generator_loss`,
`losses.lsgan_discriminator_loss`). Both networks take the item category c as a one-hot
vector. Layer lists as the authors' GAN code (docs/reproduction.md §4), at 64x64:

Generator (3x3 transposed convolutions, SAME padding):

| layer   | output       | stride | after                        |
|---------|--------------|--------|------------------------------|
| concat  | z_dim + C    |        | [z, c]                       |
| dense   | 4*4*256      |        | reshape 4x4x256, BN, lReLU   |
| deconv1 | 8x8x256      | 2      | BN, lReLU                    |
| deconv2 | 8x8x256      | 1      | BN, lReLU                    |
| deconv3 | 16x16x256    | 2      | BN, lReLU                    |
| deconv4 | 16x16x256    | 1      | BN, lReLU                    |
| deconv5 | 32x32x128    | 2      | BN, lReLU                    |
| deconv6 | 64x64x64     | 2      | BN, lReLU                    |
| to_rgb  | 64x64x3      | 1      | tanh                         |

Discriminator (5x5 convolutions, stride 2, SAME padding; "+c": the one-hot broadcast to
every pixel and concatenated on the channel axis):

| layer | input     | output     | after              |
|-------|-----------|------------|--------------------|
| conv1 | x +c      | 32x32x64   | lReLU              |
| conv2 | h1 +c     | 16x16x128  | BN, lReLU          |
| conv3 | h2 +c     | 8x8x256    | BN, lReLU          |
| conv4 | h3 +c     | 4x4x512    | BN, lReLU          |
| dense | flat(h4)  | 1          | none (a raw score) |

lReLU = leaky ReLU with slope 0.2. Batch norm: momentum 0.9, epsilon 1e-5, with scale and
centre. Generator kernels N(0, 0.02); discriminator conv kernels truncated-normal(0.02)
(redrawn beyond two standard deviations, so their sample std is about 0.0176); the
discriminator's dense kernel N(0, 0.02) (the authors' `linear` op); all biases 0. The
convolutions keep their biases before batch norm, as the authors' code (they count in the
parameter totals but are redundant with BN's offset).

Readings of the layer list (where the text could be read two ways):
- The generator's first batch norm normalises the *reshaped* 4x4x256 map per channel (256
  scales and offsets), as the authors' code (dense -> reshape -> BN -> lReLU), not the 4096
  dense units one by one.
- The discriminator's one-hot is concatenated to the input image and to the outputs of
  conv1 .. conv(n-1) (after their activation); the last conv's output is flattened without
  it, and the dense layer sees no label.

Other sizes (the paper's Fig. 2, which would give the 128x128 layers, is not in the text):
- 128 (the paper preset): one more stride-2 block at the end of the generator,
  deconv7 128x128x32 (half the filters of deconv6, as each earlier upsampling halves them),
  and one more conv in the discriminator, conv5 512 filters (4x4x512 again before the dense,
  as at 64), with BN, and the label also concatenated to h4.
- 32 (tests only): the generator drops deconv6 (deconv5's 32x32x128 feeds to_rgb); the
  discriminator keeps its four convs (2x2x512 before the dense).

Two options that the authors' code does not have (both off by default; the `demo` preset
turns them on, see config.py):
- `upsampling='resize'`: each stride-2 transposed conv becomes nearest-neighbour x2 then a
  3x3 conv, each stride-1 one a 3x3 conv (same filters, BN and lReLU after). A 3x3 transposed
  conv of stride 2 covers alternate output pixels with 4 and 1..2 kernel taps, the checkerboard
  that made the demo's samples speckled; the resize keeps every pixel alike.
- `minibatch_stddev`: before D's dense layer, one channel is appended to the last map: the
  standard deviation across the batch of each of its features, averaged to one number
  (ProGAN's minibatch standard deviation; `minibatch_stddev_group` = g > 0 gives each run of
  g consecutive images its own number, as ProGAN's groups of 4). It lets D see a batch whose
  fakes all share one colour, but only when no group holds both real images and fakes. At inference (training=False) the channel holds a moving average of the
  training batches' values (with BN's momentum), so D scores each image on its own, as a
  design's realism term needs.

`width_multiplier` scales every filter count and the 256 channels of the 4x4 map (1.0 = the
authors' code); the 3 output channels and the single logit are not scaled.

The models read no files or flags; both are built at construction by `build_for_input()` so
that `tf.train.Checkpoint` and `keras.export.ExportArchive` see every variable.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from dvbpr_tf import config as config_lib

INIT_STDDEV = 0.02
BASE_SIDE = 4  # The generator's first map is 4x4.
BASE_CHANNELS = 256  # ... with 256 channels.

# The authors' 64x64 generator blocks: (filters, stride) of each 3x3 transposed conv.
GENERATOR_BLOCKS_64 = ((256, 2), (256, 1), (256, 2), (256, 1), (128, 2), (64, 2))
GENERATOR_EXTRA_BLOCK_128 = (32, 2)
# The authors' 64x64 discriminator: filters of each 5x5 stride-2 conv.
DISCRIMINATOR_FILTERS_64 = (64, 128, 256, 512)
DISCRIMINATOR_EXTRA_FILTERS_128 = 512
GENERATOR_KERNEL = 3
DISCRIMINATOR_KERNEL = 5


GanConfig = config_lib.GanConfig  # The networks' part of the configuration tree.


def generator_blocks(config: GanConfig) -> tuple[tuple[int, int], ...]:
  """(filters, stride) of each 3x3 transposed conv followed by BN and lReLU, scaled."""
  blocks = GENERATOR_BLOCKS_64
  if config.image_size == 32:
    blocks = blocks[:-1]
  elif config.image_size == 128:
    blocks = blocks + (GENERATOR_EXTRA_BLOCK_128,)
  return tuple((config.width(filters), stride) for filters, stride in blocks)


def discriminator_filters(config: GanConfig) -> tuple[int, ...]:
  """Filters of each 5x5 stride-2 conv, scaled."""
  filters = DISCRIMINATOR_FILTERS_64
  if config.image_size == 128:
    filters = filters + (DISCRIMINATOR_EXTRA_FILTERS_128,)
  return tuple(config.discriminator_width(f) for f in filters)


def discriminator_features(config: GanConfig) -> int:
  """The length of h, D's flattened last feature map (with the minibatch-stddev channel)."""
  side = config.image_size
  for _ in discriminator_filters(config):
    side = -(-side // 2)  # 'same' padding, stride 2.
  return side * side * (discriminator_filters(config)[-1] + int(config.minibatch_stddev))


def sample_latent(config: GanConfig, batch_size, seed=None) -> tf.Tensor:
  """z [batch_size, z_dim] float32 from the configured distribution.

  Args:
    config: gives z_dim and z_distribution ('normal': N(0, 1); 'uniform': U(-1, 1)).
    batch_size: a Python int or a scalar int tensor (no retracing inside a tf.function).
    seed: None (TensorFlow's global random state), a `tf.random.Generator` (stateful, can
      be checkpointed), an int, or a shape-[2] int seed (stateless: the same seed, the same
      z).
  """
  shape = tf.stack([tf.cast(batch_size, tf.int32), config.z_dim])
  uniform = config.z_distribution == "uniform"
  if seed is None:
    if uniform:
      return tf.random.uniform(shape, -1.0, 1.0)
    return tf.random.normal(shape)
  if isinstance(seed, tf.random.Generator):
    if uniform:
      return seed.uniform(shape, -1.0, 1.0)
    return seed.normal(shape)
  if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
    seed = [int(seed), 0]
  seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
  if uniform:
    return tf.random.stateless_uniform(shape, seed, -1.0, 1.0)
  return tf.random.stateless_normal(shape, seed)


def _initializer(kind: str, seed, index: int):
  seed = None if seed is None else int(seed) * 1000 + index  # One stream per layer.
  if kind == "truncated":
    return keras.initializers.TruncatedNormal(0.0, INIT_STDDEV, seed=seed)
  return keras.initializers.RandomNormal(0.0, INIT_STDDEV, seed=seed)


def _batch_norm(config: GanConfig, name: str) -> keras.layers.BatchNormalization:
  return keras.layers.BatchNormalization(
      momentum=config.bn_momentum, epsilon=config.bn_epsilon, center=True, scale=True,
      name=name)


class ResizeConv(keras.layers.Layer):
  """Nearest-neighbour upsampling by `strides`, then a 3x3 (SAME) convolution."""

  def __init__(self, filters: int, kernel_size: int, strides: int = 1, name=None,
               kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
    super().__init__(name=name, **kwargs)
    self.strides = int(strides)
    self.conv = keras.layers.Conv2D(filters, kernel_size, padding="same", name="conv",
                                    kernel_initializer=kernel_initializer,
                                    bias_initializer=bias_initializer)

  def call(self, x):
    if self.strides > 1:
      x = tf.repeat(tf.repeat(x, self.strides, axis=1), self.strides, axis=2)
    return self.conv(x)


class MinibatchStddev(keras.layers.Layer):
  """[B, H, W, F] -> [B, H, W, F + 1]: the mean over positions and features of their
  standard deviation across a group of images, as one more channel; at inference, the moving
  average of the training batches' mean value.

  `group` = 0: one group of the whole batch. `group` = g > 0: images b*g .. b*g + g - 1 form
  group b (consecutive images, so the parts of a joint real/fake call stay apart), each with
  its own value; B must be a multiple of g.
  """

  def __init__(self, momentum: float = 0.9, epsilon: float = 1e-8, group: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.momentum, self.epsilon, self.group = momentum, epsilon, group

  def build(self, input_shape):
    self.moving_stddev = self.add_weight(shape=(), name="moving_stddev", initializer="zeros",
                                         trainable=False, autocast=False)

  def call(self, x, training=False):
    if training:
      values = tf.cast(x, tf.float32)
      if self.group:
        shape = tf.shape(values)
        grouped = tf.reshape(values, tf.concat([[-1, self.group], shape[1:]], 0))
        _, variance = tf.nn.moments(grouped, axes=[1])  # [B / g, H, W, F]
        per_group = tf.reduce_mean(tf.sqrt(variance + self.epsilon), axis=[1, 2, 3])
        value = tf.repeat(per_group, self.group)[:, None, None, None]  # [B, 1, 1, 1]
      else:
        _, variance = tf.nn.moments(values, axes=[0])
        value = tf.reduce_mean(tf.sqrt(variance + self.epsilon))
      self.moving_stddev.assign(self.momentum * self.moving_stddev
                                + (1.0 - self.momentum) * tf.reduce_mean(value))
    else:
      value = tf.convert_to_tensor(self.moving_stddev)
    return tf.concat([x, tf.ones_like(x[..., :1]) * tf.cast(value, x.dtype)], axis=-1)


def _concat_label(features: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
  """[B, H, W, F] and [B, C] -> [B, H, W, F + C]: the label copied to every pixel."""
  shape = tf.shape(features)
  tiled = tf.broadcast_to(labels[:, tf.newaxis, tf.newaxis, :],
                          tf.stack([shape[0], shape[1], shape[2], tf.shape(labels)[-1]]))
  return tf.concat([features, tiled], axis=-1)


class _GanNetwork(keras.Model):
  """What the two networks share: the config, (de)serialisation.

  Sub-layers are held in tuples, never lists: Keras 3 (3.15) tracks layers in a list for its
  own `weights`, but `tf.train.Checkpoint` does not see them (a checkpoint would silently
  omit them); tuples are tracked by both.
  """

  def __init__(self, config: GanConfig = GanConfig(), seed: int | None = None, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.seed = seed

  def _labels(self, labels_onehot, like: tf.Tensor) -> tf.Tensor:
    return tf.cast(labels_onehot, like.dtype)

  def one_hot(self, category_ids) -> tf.Tensor:
    """int category ids [B] -> float32 one-hot [B, C]."""
    return tf.one_hot(tf.cast(category_ids, tf.int32), self.config.num_categories)

  def get_config(self):
    return {**super().get_config(), "gan": dataclasses.asdict(self.config), "seed": self.seed}

  @classmethod
  def from_config(cls, config):
    gan = GanConfig(**config.pop("gan"))
    return cls(gan, **config)


@keras.saving.register_keras_serializable(package="dvbpr_tf")
class Generator(_GanNetwork):
  """G(z, c): z [B, z_dim] and one-hot c [B, C] -> images [B, S, S, 3] in (-1, 1) (tanh).

  `seed` (optional) makes the initial weights a function of the seed only.
  """

  def __init__(self, config: GanConfig = GanConfig(), seed: int | None = None, **kwargs):
    super().__init__(config, seed, **kwargs)
    self.base_channels = config.width(BASE_CHANNELS)
    self.dense = keras.layers.Dense(
        BASE_SIDE * BASE_SIDE * self.base_channels, name="dense",
        kernel_initializer=_initializer("normal", seed, 0), bias_initializer="zeros")
    self.dense_bn = _batch_norm(config, "dense_bn")
    deconvs, bns = [], []
    for index, (filters, stride) in enumerate(generator_blocks(config), start=1):
      initializer = _initializer("normal", seed, index)
      if config.upsampling == "resize":
        deconvs.append(ResizeConv(filters, GENERATOR_KERNEL, strides=stride,
                                  name=f"deconv{index}", kernel_initializer=initializer))
      else:
        deconvs.append(keras.layers.Conv2DTranspose(
            filters, GENERATOR_KERNEL, strides=stride, padding="same", name=f"deconv{index}",
            kernel_initializer=initializer, bias_initializer="zeros"))
      bns.append(_batch_norm(config, f"deconv{index}_bn"))
    self.deconvs, self.bns = tuple(deconvs), tuple(bns)  # Tuples: see _GanNetwork.
    self.to_rgb = keras.layers.Conv2DTranspose(
        3, GENERATOR_KERNEL, strides=1, padding="same", name="to_rgb",
        kernel_initializer=_initializer("normal", seed, len(self.deconvs) + 1),
        bias_initializer="zeros")

  def feature_maps(self, z, labels_onehot, training=False) -> list[tf.Tensor]:
    """Every block's output: the 4x4 map, each deconv block's output (after BN and lReLU),
    and the tanh images last."""
    slope = self.config.leaky_slope
    x = tf.concat([z, self._labels(labels_onehot, z)], axis=-1)
    x = tf.reshape(self.dense(x), [-1, BASE_SIDE, BASE_SIDE, self.base_channels])
    x = tf.nn.leaky_relu(self.dense_bn(x, training=training), alpha=slope)
    maps = [x]
    for deconv, bn in zip(self.deconvs, self.bns):
      x = tf.nn.leaky_relu(bn(deconv(x), training=training), alpha=slope)
      maps.append(x)
    maps.append(tf.tanh(self.to_rgb(x)))
    return maps

  def call(self, z, labels_onehot, training=False):
    return self.feature_maps(z, labels_onehot, training=training)[-1]

  def generate(self, z, category_ids, training=False) -> tf.Tensor:
    """G(z, c) with c given as int category ids [B] (inference mode by default)."""
    return self(z, self.one_hot(category_ids), training=training)

  def build_for_input(self) -> "Generator":
    self(tf.zeros([1, self.config.z_dim]), tf.zeros([1, self.config.num_categories]))
    self.built = True
    return self


@keras.saving.register_keras_serializable(package="dvbpr_tf")
class Discriminator(_GanNetwork):
  """D(x, c): images [B, S, S, 3] in [-1, 1] and one-hot c [B, C] -> raw scores [B, 1].

  No sigmoid: the least-squares losses of eq. 7 push D(real) to 1 and D(fake) to 0.
  `seed` (optional) makes the initial weights a function of the seed only.
  """

  def __init__(self, config: GanConfig = GanConfig(), seed: int | None = None, **kwargs):
    super().__init__(config, seed, **kwargs)
    convs, bns = [], []
    for index, filters in enumerate(discriminator_filters(config), start=1):
      convs.append(keras.layers.Conv2D(
          filters, DISCRIMINATOR_KERNEL, strides=2, padding="same", name=f"conv{index}",
          kernel_initializer=_initializer("truncated", seed, index),
          bias_initializer="zeros"))
      # No batch norm on the first conv.
      bns.append(None if index == 1 else _batch_norm(config, f"conv{index}_bn"))
    self.convs, self.bns = tuple(convs), tuple(bns)  # Tuples: see _GanNetwork.
    self.stddev = (MinibatchStddev(config.bn_momentum, group=config.minibatch_stddev_group,
                                   name="minibatch_stddev")
                   if config.minibatch_stddev else None)
    self.flatten = keras.layers.Flatten()
    self.dense = keras.layers.Dense(
        1, name="dense", kernel_initializer=_initializer("normal", seed, 0),
        bias_initializer="zeros")
    # E: one row per category, as long as h (a one-hot times a bias-free dense = a lookup).
    self.projection = (keras.layers.Dense(
        discriminator_features(config), use_bias=False, name="projection",
        kernel_initializer=_initializer("normal", seed, len(convs) + 1))
                       if config.projection else None)

  def feature_maps(self, images, labels_onehot, training=False) -> list[tf.Tensor]:
    """Each conv block's output (after BN and lReLU, before the label is concatenated),
    and the logits [B, 1] last."""
    labels = self._labels(labels_onehot, images)
    x = images
    maps = []
    for conv, bn in zip(self.convs, self.bns):
      x = conv(_concat_label(x, labels))
      if bn is not None:
        x = bn(x, training=training)
      x = tf.nn.leaky_relu(x, alpha=self.config.leaky_slope)
      maps.append(x)
    if self.stddev is not None:
      x = self.stddev(x, training=training)
    features = self.flatten(x)
    logits = self.dense(features)
    if self.projection is not None:
      embedded = self.projection(tf.cast(labels_onehot, features.dtype))
      logits += tf.reduce_sum(embedded * features, axis=-1, keepdims=True)
    maps.append(logits)
    return maps

  def call(self, images, labels_onehot, training=False):
    return self.feature_maps(images, labels_onehot, training=training)[-1]

  def build_for_input(self) -> "Discriminator":
    size = self.config.image_size
    self(tf.zeros([1, size, size, 3]), tf.zeros([1, self.config.num_categories]))
    self.built = True
    return self
