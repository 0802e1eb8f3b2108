"""SavedModel export of a trained DVBPR, for serving with plain TensorFlow.

Signatures (`tf.saved_model.load(path).<name>(...)`); ids are int64 (int32 is taken too,
except by `score`), k an int32 scalar, images uint8 [N, H, W, 3] of any size (resized to the
tower's input inside):

- `item_embedding(images)` -> float32 [N, K], Phi(image).
- `item_vectors(item_ids)`: [n] -> float32 [n, K], the catalog's stored Phi (e.g. to build an
  approximate nearest-neighbour index outside).
- `score(user_ids, images)`: [N], [N, H, W, 3] -> float32 [N], x_ui for the aligned pairs
  (user_ids[n], images[n]) (eq. 6).
- `recommend(user_ids, k)`: [B] -> `item_ids` int64 [B, k], `source_ids` string [B, k],
  `scores` float32 [B, k]: the top-k catalog items by x_ui over the catalog embeddings stored
  in the export, excluding the items each user interacted with in training.
- `recommend_for_items(item_ids, k)`: a user who is not in the training set, from the catalog
  items they like ([n], n >= 1): their theta folded in (`serving/fold_in.py`: eq. 5 with the
  tower and the catalog fixed, lambda_2 as in training, negatives drawn once at export, so
  the same items give the same answer), then the top-k of the catalog without the liked
  items: `item_ids`, `source_ids`, `scores` [k] and `user_vector` float32 [K] (theta + beta',
  what x_ui multiplies Phi with: keep it to score this user later).
- `recommend_for_images(images, k)`: the same from photos ([n, H, W, 3]): Phi of each photo
  takes a liked item's place; nothing is excluded.
- `similar_items(item_ids, k, metric)`: [n] -> `item_ids`, `source_ids`, `scores` [n, k]: the
  nearest catalog items to each item in the Phi space, the item itself excluded; `metric`
  'cosine' (Phi_i . Phi_j / |Phi_i| |Phi_j|: the look, whatever the strength of the image's
  features) or 'inner_product' (Phi_i . Phi_j: also favours items with strong features, as
  x_ui does).
- `similar_images(images, k, metric)`: the same for photos (nothing excluded: a photo of a
  catalog item finds that item first).

Where fewer than k items are left (the excluded ones removed), the rest is padding: item id
-1, source id "" and score -inf.

Every input is checked in the graph and fails with an InvalidArgumentError whose message says
what was wrong: user or item ids outside the range (never a silent gather of another row), an
empty list, k outside [1, num_items], images of another dtype than uint8 (float32, float64,
float16, int32, int64: each its own traced function that only refuses), of a rank other than
4 or not 3 channels, a metric other than the two.
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
from dvbpr_tf.serving import fold_in as fold_in_lib

METRICS = ("cosine", "inner_product")
# Image dtypes a caller may pass by mistake: traced too, so that they fail with a message.
REFUSED_IMAGE_DTYPES = (tf.float16, tf.float32, tf.float64, tf.int32, tf.int64)


class ServingCatalog(keras.layers.Layer):
  """The catalog a served model recommends from: item embeddings (and their norms), each
  trained user's training items, the fold-in's negatives and the users' shared prior beta'.

  Args:
    item_vectors: [num_items, K] Phi of every catalog item.
    train_users, train_items: the training interactions (what `recommend` excludes).
    num_users: the trained users.
    prior: [K] beta' (zeros without the visual bias): a folded-in user's theta starts there.
    fold_in_negatives: int64 [M] the catalog items a fold-in ranks the liked items above.
  """

  def __init__(self, item_vectors: np.ndarray, train_users: np.ndarray,
               train_items: np.ndarray, num_users: int, prior: np.ndarray,
               fold_in_negatives: np.ndarray, **kwargs):
    super().__init__(**kwargs)
    num_items, dim = item_vectors.shape
    order = np.lexsort((train_items, train_users))
    counts = np.bincount(train_users, minlength=num_users)
    self.num_items, self.num_users, self.dim = int(num_items), int(num_users), int(dim)

    def constant(name, value, dtype="float32"):
      value = np.asarray(value)
      return self.add_weight(shape=value.shape, dtype=dtype, trainable=False, name=name,
                             initializer=keras.initializers.Constant(value))

    self.item_vectors = constant("item_vectors", item_vectors)
    self.item_norms = constant("item_norms", np.linalg.norm(item_vectors, axis=1))
    self.seen_offsets = constant("seen_offsets", np.concatenate([[0], np.cumsum(counts)]),
                                 "int64")
    self.seen_items = constant("seen_items", np.asarray(train_items)[order], "int64")
    self.prior = constant("prior", prior)
    self.fold_in_negatives = constant("fold_in_negatives", fold_in_negatives, "int64")
    self.built = True  # Holds data only; nothing to build from an input shape.


class SourceIds(tf.Module):
  """The items' own ids (strings), one variable: shared by every signature's graph."""

  def __init__(self, source_ids):
    super().__init__(name="source_ids")
    self.table = tf.Variable(np.asarray([str(s) for s in source_ids], dtype=object),
                             trainable=False, dtype=tf.string, name="table")


def _in_range(ids, count: int, what: str) -> list:
  message = f"{what} id out of range: valid {what} ids are 0..{count - 1}"
  return [tf.debugging.assert_non_negative(ids, message=message),
          tf.debugging.assert_less(ids, tf.constant(count, tf.int64), message=message)]


def _not_empty(values, what: str) -> tf.Operation:
  return tf.debugging.assert_positive(
      tf.size(values), message=f"{what} is empty: give at least one")


def _k_in_range(k, num_items: int) -> list:
  return [tf.debugging.assert_greater(k, 0, message="k must be at least 1"),
          tf.debugging.assert_less_equal(
              k, num_items, message=f"k must be at most {num_items} (the catalog's items)")]


def _checked_images(images):
  """uint8 images of unknown rank as [N, H, W, 3], after checks that fail with a message.
  (A tf.cond hides the caller's shape from the ops that need rank 4 and 3 channels, so that
  the check, not a shape error while the graph is built, is what the caller reads.)"""
  rank_ok = tf.equal(tf.rank(images), 4)
  with tf.control_dependencies([tf.debugging.Assert(rank_ok, [
      "images must have rank 4, [N, H, W, 3] (add a leading axis for one image), got rank",
      tf.rank(images)])]):
    images = tf.cond(rank_ok, lambda: tf.identity(images),
                     lambda: tf.zeros([1, 1, 1, 3], images.dtype))
  channels_ok = tf.equal(tf.shape(images)[3], 3)
  with tf.control_dependencies([
      tf.debugging.Assert(channels_ok, ["images must have 3 channels (RGB), [N, H, W, 3], got",
                                        tf.shape(images)[3]]),
      _not_empty(images, "images")]):
    images = tf.cond(channels_ok, lambda: tf.identity(images),
                     lambda: tf.zeros([1, 1, 1, 3], images.dtype))
  return tf.ensure_shape(images, [None, None, None, 3])


def _refuse_dtype(images):
  """What a signature does with images of another dtype than uint8: fail, saying so."""
  message = (f"images must be uint8 [N, H, W, 3] in 0..255, got {images.dtype.name}: "
             "convert with tf.cast(tf.clip_by_value(images, 0, 255), tf.uint8) (scaling "
             "[0, 1] floats by 255 first)")
  with tf.control_dependencies([tf.debugging.Assert(tf.equal(tf.size(images), -1),
                                                    [message])]):
    return tf.zeros([0])


def _top_k(scores, excluded, available, k, source_ids):
  """The top-k of each row of `scores` [B, N] with the (row, item) pairs `excluded` [E, 2] left
  out, padded (item -1, source id "", score -inf) past the `available` [B] items of a row."""
  scores = tf.tensor_scatter_nd_update(
      scores, excluded, tf.fill([tf.shape(excluded)[0]], tf.constant(-np.inf, tf.float32)))
  top = tf.math.top_k(scores, k=k)
  valid = tf.range(k)[tf.newaxis, :] < tf.cast(available, tf.int32)[:, tf.newaxis]
  items = tf.where(valid, tf.cast(top.indices, tf.int64), tf.constant(-1, tf.int64))
  return {"item_ids": items,
          "source_ids": tf.where(valid, tf.gather(source_ids, tf.maximum(items, 0)), ""),
          "scores": tf.where(valid, top.values, tf.constant(-np.inf, tf.float32))}


def _as_int64(ids):
  return tf.cast(ids, tf.int64)


def _add_endpoint(archive, name: str, fn, *variants) -> None:
  """Adds `fn` traced once per input variant (each a list of TensorSpecs)."""
  function = tf.function(fn)
  for specs in variants:
    function.get_concrete_function(*specs)
  archive.add_endpoint(name, function)


def _add_image_endpoint(archive, name: str, fn, before=(), after=()) -> None:
  """Adds `fn`, whose images argument comes after the `before` specs and before the `after`
  ones, traced for uint8 images (the variant that serves) and for every refused dtype (a
  variant that only fails, saying so: `_refuse_dtype`)."""
  position = len(before)

  def uint8_only(*args):
    images = args[position]
    return fn(*args) if images.dtype == tf.uint8 else _refuse_dtype(images)

  _add_endpoint(archive, name, uint8_only,
                *[[*before, tf.TensorSpec(None, dtype, name="images"), *after]
                  for dtype in (tf.uint8, *REFUSED_IMAGE_DTYPES)])


def _id_variants(name, *after):
  return [[tf.TensorSpec([None], dtype, name=name), *after] for dtype in (tf.int64, tf.int32)]


def export_dvbpr(model: dvbpr.Dvbpr, item_vectors: np.ndarray, train_users: np.ndarray,
                 train_items: np.ndarray, source_ids, path: str | os.PathLike,
                 fold_in: fold_in_lib.FoldInConfig = fold_in_lib.FoldInConfig()
                 ) -> pathlib.Path:
  """Writes the SavedModel to `path` (through a temporary folder renamed into place)."""
  path = pathlib.Path(path)
  size = model.tower_config.input_size
  num_users = model.num_users
  item_vectors = np.asarray(item_vectors, np.float32)
  num_items = len(item_vectors)
  prior = (np.zeros(item_vectors.shape[1], np.float32) if model.visual_bias is None
           else keras.ops.convert_to_numpy(model.visual_bias).astype(np.float32))
  catalog = ServingCatalog(item_vectors, np.asarray(train_users, np.int64),
                           np.asarray(train_items, np.int64), num_users, prior,
                           fold_in_lib.draw_negatives(num_items, fold_in).numpy(),
                           name="serving_catalog")
  sources = SourceIds(source_ids)
  theta_decay, steps = float(model.theta_decay), fold_in.steps

  def embed(images):
    """Phi of uint8 images of any rank and size, checked (`_checked_images`)."""
    images = tf.image.resize(tf.cast(_checked_images(images), tf.float32), [size, size],
                             antialias=True)
    images = input_pipeline.scale_images(tf.clip_by_value(tf.round(images), 0.0, 255.0))
    return model.item_embeddings(images, training=False)

  def item_vectors_of(item_ids):
    item_ids = _as_int64(item_ids)
    with tf.control_dependencies(_in_range(item_ids, num_items, "item")):
      return tf.gather(catalog.item_vectors, item_ids)

  def score(user_ids, images):
    user_ids = _as_int64(user_ids)
    with tf.control_dependencies(_in_range(user_ids, num_users, "user")):
      theta = model.user_vectors(user_ids)
    return tf.reduce_sum(theta * embed(images), axis=-1)

  def recommend(user_ids, k):
    user_ids = _as_int64(user_ids)
    with tf.control_dependencies(_in_range(user_ids, num_users, "user")
                                 + _k_in_range(k, num_items)):
      theta = model.user_vectors(user_ids)
    scores = tf.matmul(theta, catalog.item_vectors, transpose_b=True)
    seen = tf.gather(tf.RaggedTensor.from_row_splits(catalog.seen_items, catalog.seen_offsets),
                     user_ids)
    excluded = tf.stack([tf.cast(seen.value_rowids(), tf.int64), seen.flat_values], axis=1)
    return _top_k(scores, excluded, num_items - seen.row_lengths(), k, sources.table)

  def fold_in_and_rank(liked, liked_ids, k):
    """The new user's top-k from Phi of the liked items [n, K] (catalog ids [n'] excluded
    from the negatives and from the ranking; none for photos)."""
    negatives = catalog.fold_in_negatives
    liked_negative = tf.reduce_any(negatives[tf.newaxis, :] == liked_ids[:, tf.newaxis], 0)
    weights = tf.tile(tf.cast(~liked_negative, tf.float32)[tf.newaxis, :],
                      [tf.shape(liked)[0], 1])
    theta = fold_in_lib.fold_in(liked, tf.gather(catalog.item_vectors, negatives),
                                theta_decay, catalog.prior, weights, steps)
    user_vector = theta + catalog.prior
    scores = tf.linalg.matvec(catalog.item_vectors, user_vector)[tf.newaxis, :]
    excluded = tf.stack([tf.zeros_like(liked_ids), liked_ids], axis=1)
    top = _top_k(scores, excluded, num_items - tf.size(liked_ids, tf.int64)[tf.newaxis], k,
                 sources.table)
    return {name: value[0] for name, value in top.items()} | {"user_vector": user_vector}

  def recommend_for_items(item_ids, k):
    item_ids = _as_int64(item_ids)
    with tf.control_dependencies([_not_empty(item_ids, "item_ids")]
                                 + _in_range(item_ids, num_items, "item")
                                 + _k_in_range(k, num_items)):
      liked_ids, _ = tf.unique(item_ids)
    return fold_in_and_rank(tf.gather(catalog.item_vectors, liked_ids), liked_ids, k)

  def recommend_for_images(images, k):
    with tf.control_dependencies(_k_in_range(k, num_items)):
      liked = embed(images)
    return fold_in_and_rank(liked, tf.zeros([0], tf.int64), k)

  def nearest(queries, query_ids, k, metric):
    """The top-k catalog items of each query vector [n, K] by `metric`, the item
    `query_ids[n]` excluded (-1: none)."""
    with tf.control_dependencies([
        tf.debugging.Assert(tf.reduce_any(tf.equal(metric, METRICS)),
                            ["metric must be 'cosine' or 'inner_product', got", metric])]):
      products = tf.matmul(queries, catalog.item_vectors, transpose_b=True)
    norms = tf.norm(queries, axis=1)[:, tf.newaxis] * catalog.item_norms[tf.newaxis, :]
    cosine = tf.math.divide_no_nan(products, norms)
    scores = tf.where(tf.equal(metric, "cosine"), cosine, products)
    rows = tf.range(tf.shape(queries, out_type=tf.int64)[0])
    own = query_ids >= 0
    excluded = tf.stack([tf.boolean_mask(rows, own), tf.boolean_mask(query_ids, own)], axis=1)
    available = num_items - tf.cast(own, tf.int64)
    return _top_k(scores, excluded, available, k, sources.table)

  def similar_items(item_ids, k, metric):
    item_ids = _as_int64(item_ids)
    with tf.control_dependencies([_not_empty(item_ids, "item_ids")]
                                 + _in_range(item_ids, num_items, "item")
                                 + _k_in_range(k, num_items)):
      queries = tf.gather(catalog.item_vectors, item_ids)
    return nearest(queries, item_ids, k, metric)

  def similar_images(images, k, metric):
    with tf.control_dependencies(_k_in_range(k, num_items)):
      queries = embed(images)
    return nearest(queries, -tf.ones([tf.shape(queries)[0]], tf.int64), k, metric)

  k_spec = tf.TensorSpec([], tf.int32, name="k")
  metric_spec = tf.TensorSpec([], tf.string, name="metric")
  # Nothing is `track`ed: the endpoints' own variables are saved (once). Tracking the Keras
  # layers too would write every weight twice (their Keras variables and the tf.Variables
  # the endpoints read): an export of Amazon Fashion's size was 243.5 MiB, not 123.5.
  archive = keras.export.ExportArchive()
  _add_image_endpoint(archive, "item_embedding", embed)
  _add_endpoint(archive, "item_vectors", item_vectors_of, *_id_variants("item_ids"))
  _add_image_endpoint(archive, "score", score,
                      before=[tf.TensorSpec([None], tf.int64, name="user_ids")])
  _add_endpoint(archive, "recommend", recommend, *_id_variants("user_ids", k_spec))
  _add_endpoint(archive, "recommend_for_items", recommend_for_items,
                *_id_variants("item_ids", k_spec))
  _add_image_endpoint(archive, "recommend_for_images", recommend_for_images, after=[k_spec])
  _add_endpoint(archive, "similar_items", similar_items,
                *_id_variants("item_ids", k_spec, metric_spec))
  _add_image_endpoint(archive, "similar_images", similar_images, after=[k_spec, metric_spec])
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

  archive = keras.export.ExportArchive()  # Nothing tracked: each weight written once.
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
