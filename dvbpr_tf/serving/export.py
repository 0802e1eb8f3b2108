"""SavedModel export of a trained DVBPR, for serving with plain TensorFlow.

Signatures (`tf.saved_model.load(path).<name>(...)`):

- `item_embedding(images)`: uint8 [N, H, W, 3] (any size; resized to the tower's input) ->
  float32 [N, K], Phi(image).
- `score(user_ids, images)`: int64 [N], uint8 [N, H, W, 3] -> float32 [N], x_ui for the
  aligned pairs (user_ids[n], images[n]) (eq. 6).
- `recommend(user_ids, k)`: int64 [B], int32 scalar -> `item_ids` int64 [B, k], `source_ids`
  string [B, k], `scores` float32 [B, k]: the top-k catalog items by x_ui over the catalog
  embeddings stored in the export, excluding the items each user interacted with in training.
  A user with fewer than k unseen items gets them all, then padding: item id -1, source id
  "" and score -inf (never a training item).

User ids outside [0, num_users) fail with an InvalidArgumentError that says so (never a
silent gather of another user's vector); k outside [1, num_items] likewise.
"""

from __future__ import annotations

import os
import pathlib

import keras
import numpy as np
import tensorflow as tf

from dvbpr_tf.core import files
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.models import dvbpr


class ServingCatalog(keras.layers.Layer):
  """The catalog a served model recommends from: item embeddings and training items."""

  def __init__(self, item_vectors: np.ndarray, train_users: np.ndarray,
               train_items: np.ndarray, num_users: int, **kwargs):
    super().__init__(**kwargs)
    num_items, dim = item_vectors.shape
    order = np.lexsort((train_items, train_users))
    counts = np.bincount(train_users, minlength=num_users)
    self.num_items, self.num_users = int(num_items), int(num_users)
    self.item_vectors = self.add_weight(
        shape=(num_items, dim), trainable=False, name="item_vectors",
        initializer=keras.initializers.Constant(item_vectors))
    self.seen_offsets = self.add_weight(
        shape=(num_users + 1,), dtype="int64", trainable=False, name="seen_offsets",
        initializer=keras.initializers.Constant(np.concatenate([[0], np.cumsum(counts)])))
    self.seen_items = self.add_weight(
        shape=(len(order),), dtype="int64", trainable=False, name="seen_items",
        initializer=keras.initializers.Constant(np.asarray(train_items)[order]))
    self.built = True  # Holds data only; nothing to build from an input shape.


def _check_users(user_ids, num_users):
  return tf.debugging.assert_less(
      user_ids, tf.constant(num_users, tf.int64),
      message=f"user id out of range: valid user ids are 0..{num_users - 1}"), \
      tf.debugging.assert_non_negative(
          user_ids, message=f"user id out of range: valid user ids are 0..{num_users - 1}")


def export_dvbpr(model: dvbpr.Dvbpr, item_vectors: np.ndarray, train_users: np.ndarray,
                 train_items: np.ndarray, source_ids, path: str | os.PathLike) -> pathlib.Path:
  """Writes the SavedModel to `path` (through a temporary folder renamed into place)."""
  path = pathlib.Path(path)
  size = model.tower_config.input_size
  num_users = model.num_users
  catalog = ServingCatalog(np.asarray(item_vectors, np.float32),
                           np.asarray(train_users, np.int64), np.asarray(train_items, np.int64),
                           num_users, name="serving_catalog")
  source_table = tf.constant(np.asarray([str(s) for s in source_ids], dtype=object),
                             tf.string)

  def prepare(images):
    images = tf.image.resize(tf.cast(images, tf.float32), [size, size], antialias=True)
    return input_pipeline.scale_images(tf.clip_by_value(tf.round(images), 0.0, 255.0))

  def item_embedding(images):
    return model.item_embeddings(prepare(images), training=False)

  def score(user_ids, images):
    with tf.control_dependencies(_check_users(user_ids, num_users)):
      theta = model.user_vectors(user_ids)
    return tf.reduce_sum(theta * item_embedding(images), axis=-1)

  def recommend(user_ids, k):
    checks = list(_check_users(user_ids, num_users)) + [
        tf.debugging.assert_greater(k, 0, message="k must be at least 1"),
        tf.debugging.assert_less_equal(
            k, catalog.num_items, message=f"k must be at most {catalog.num_items}")]
    with tf.control_dependencies(checks):
      theta = model.user_vectors(user_ids)
    scores = tf.matmul(theta, catalog.item_vectors, transpose_b=True)
    seen = tf.RaggedTensor.from_row_splits(catalog.seen_items, catalog.seen_offsets)
    seen = tf.gather(seen, user_ids)
    rows = tf.cast(seen.value_rowids(), tf.int64)
    indices = tf.stack([rows, seen.flat_values], axis=1)
    scores = tf.tensor_scatter_nd_update(
        scores, indices, tf.fill([tf.shape(indices)[0]], tf.constant(-np.inf, tf.float32)))
    top = tf.math.top_k(scores, k=k)
    # Only unseen items: a user with fewer than k unseen items gets the rest padded with
    # item id -1, source id "" and score -inf (never one of their training items).
    unseen = catalog.num_items - tf.cast(seen.row_lengths(), tf.int32)
    valid = tf.range(k)[tf.newaxis, :] < unseen[:, tf.newaxis]
    items = tf.where(valid, tf.cast(top.indices, tf.int64), tf.constant(-1, tf.int64))
    source_ids = tf.where(valid, tf.gather(source_table, tf.maximum(items, 0)), "")
    scores = tf.where(valid, top.values, tf.constant(-np.inf, tf.float32))
    return {"item_ids": items, "source_ids": source_ids, "scores": scores}

  archive = keras.export.ExportArchive()
  archive.track(model)
  archive.track(catalog)
  archive.add_endpoint("item_embedding", item_embedding,
                       [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
  archive.add_endpoint("score", score,
                       [tf.TensorSpec([None], tf.int64, name="user_ids"),
                        tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
  archive.add_endpoint("recommend", recommend,
                       [tf.TensorSpec([None], tf.int64, name="user_ids"),
                        tf.TensorSpec([], tf.int32, name="k")])
  return _write_archive(archive, path)


def export_gan(generator, discriminator, num_categories: int, z_dim: int,
               path: str | os.PathLike) -> pathlib.Path:
  """Writes the GAN as a SavedModel with two signatures:

  - `generate(z, category)`: float32 [N, z_dim], int64 [N] -> `images` float32 [N, S, S, 3]
    in [-1, 1] and `images_uint8` uint8 [N, S, S, 3];
  - `discriminate(images, category)`: uint8 [N, S, S, 3], int64 [N] -> float32 [N], D's
    score (LSGAN: near 1 for real-looking images, near 0 for fakes).
  Category ids outside [0, num_categories) fail with an InvalidArgumentError that says so.
  """

  def check(category):
    message = f"category out of range: valid categories are 0..{num_categories - 1}"
    return [tf.debugging.assert_non_negative(category, message=message),
            tf.debugging.assert_less(category, tf.constant(num_categories, tf.int64),
                                     message=message)]

  def generate(z, category):
    with tf.control_dependencies(check(category)):
      labels = tf.one_hot(category, num_categories)
    images = generator(z, labels, training=False)
    as_uint8 = tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0, 255), tf.uint8)
    return {"images": images, "images_uint8": as_uint8}

  def discriminate(images, category):
    with tf.control_dependencies(check(category)):
      labels = tf.one_hot(category, num_categories)
    scores = discriminator(input_pipeline.scale_images(images), labels, training=False)
    return tf.reshape(scores, [-1])

  archive = keras.export.ExportArchive()
  archive.track(generator)
  archive.track(discriminator)
  archive.add_endpoint("generate", generate,
                       [tf.TensorSpec([None, z_dim], tf.float32, name="z"),
                        tf.TensorSpec([None], tf.int64, name="category")])
  size = generator.config.image_size
  archive.add_endpoint("discriminate", discriminate,
                       [tf.TensorSpec([None, size, size, 3], tf.uint8, name="images"),
                        tf.TensorSpec([None], tf.int64, name="category")])
  return _write_archive(archive, pathlib.Path(path))


def _write_archive(archive, path: pathlib.Path) -> pathlib.Path:
  """Writes the SavedModel through a temporary folder renamed into place (`files`)."""
  with files.atomic_folder(path) as staging:
    archive.write_out(str(staging), verbose=False)
  return path
