"""The image tower Phi: the CNN-F variant of the authors' DVBPR code (docs/reproduction.md §1).

| layer | filters | kernel | stride | after                                   |
|-------|---------|--------|--------|-----------------------------------------|
| conv1 | 64      | 11x11  | 4      | ReLU, 2x2/2 max-pool                    |
| conv2 | 256     | 5x5    | 1      | ReLU, 2x2/2 max-pool                    |
| conv3 | 256     | 3x3    | 1      | ReLU                                    |
| conv4 | 256     | 3x3    | 1      | ReLU                                    |
| conv5 | 256     | 3x3    | 1      | ReLU, 2x2/2 max-pool (7x7x256 at 224)   |
| fc6   | 4096    |        |        | ReLU, dropout 0.5                       |
| fc7   | 4096    |        |        | ReLU, dropout 0.5                       |
| fc8   | K       |        |        | linear                                  |

SAME padding everywhere (the code; the paper's table says "pad 0" for conv1), Glorot-uniform
kernels, zero biases, no LRN. About 70.8 M parameters at 224x224 and K = 100.
`width_multiplier` scales every filter and unit count, so that CPU presets can shrink it.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from dvbpr_tf import config as config_lib

CONV_LAYERS = (  # (name, filters, kernel, stride, pool after)
    ("conv1", 64, 11, 4, True),
    ("conv2", 256, 5, 1, True),
    ("conv3", 256, 3, 1, False),
    ("conv4", 256, 3, 1, False),
    ("conv5", 256, 3, 1, True),
)
FC_UNITS = 4096
TowerConfig = config_lib.TowerConfig  # The tower's part of the configuration tree.


@keras.saving.register_keras_serializable(package="dvbpr_tf")
class CnnF(keras.Model):
  """Phi: images in [-1, 1], [B, S, S, 3] -> item embeddings [B, K]."""

  def __init__(self, config: TowerConfig = TowerConfig(), **kwargs):
    super().__init__(**kwargs)
    self.config = config
    convs, pools = [], []
    for name, filters, kernel, stride, pool in CONV_LAYERS:
      convs.append(keras.layers.Conv2D(
          config.width(filters), kernel, strides=stride, padding="same", activation="relu",
          kernel_initializer="glorot_uniform", bias_initializer="zeros", name=name))
      pools.append(keras.layers.MaxPooling2D(2, 2, padding="same", name=f"{name}_pool")
                   if pool else None)
    # Tuples, not lists: tf.train.Checkpoint does not follow layers a Keras 3 model keeps in
    # a Python list, and would silently leave the conv weights out of every checkpoint.
    self.convs, self.pools = tuple(convs), tuple(pools)
    self.flatten = keras.layers.Flatten()
    self.fc6 = keras.layers.Dense(config.width(FC_UNITS), activation="relu", name="fc6",
                                  kernel_initializer="glorot_uniform")
    self.drop6 = keras.layers.Dropout(config.dropout)
    self.fc7 = keras.layers.Dense(config.width(FC_UNITS), activation="relu", name="fc7",
                                  kernel_initializer="glorot_uniform")
    self.drop7 = keras.layers.Dropout(config.dropout)
    self.fc8 = keras.layers.Dense(config.embedding_dim, name="fc8",
                                  kernel_initializer="glorot_uniform")

  def call(self, images, training=False):
    x = images
    for conv, pool in zip(self.convs, self.pools):
      x = conv(x)
      if pool is not None:
        x = pool(x)
    x = self.drop6(self.fc6(self.flatten(x)), training=training)
    x = self.drop7(self.fc7(x), training=training)
    return self.fc8(x)

  @property
  def kernels(self) -> list[tf.Variable]:
    """The 8 conv/fc kernels (no biases): what the weight decay lambda_1 applies to."""
    return [layer.kernel for layer in (*self.convs, self.fc6, self.fc7, self.fc8)]

  @property
  def random_state(self) -> list[tf.Variable]:
    """The dropout layers' random-generator states. A checkpoint must hold them for a resumed
    run to draw the same dropout masks as an uninterrupted one (Keras does not track them)."""
    return [layer.seed_generator.state for layer in (self.drop6, self.drop7)
            if getattr(layer, "seed_generator", None) is not None]  # None when rate is 0.

  def build_for_input(self) -> "CnnF":
    size = self.config.input_size
    self(tf.zeros([1, size, size, 3]))
    return self

  def get_config(self):
    return {**super().get_config(), "tower": dataclasses.asdict(self.config)}

  @classmethod
  def from_config(cls, config):
    tower = TowerConfig(**config.pop("tower"))
    return cls(tower, **config)
