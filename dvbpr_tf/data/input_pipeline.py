"""tf.data pipelines: BPR triplets with images, every item once, and GAN batches.

Images are decoded, resized and scaled inside the tf.data graph. An `ImageTable` holds the
catalog's JPEG bytes in memory, so any item is reachable by index without touching the disk,
and, when the decoded catalog fits under a memory budget, the decoded pixels as well, so the
CPU does not decode the same JPEG every epoch.
"""

from __future__ import annotations


from absl import logging
import numpy as np
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import checks
from dvbpr_tf.core import distribution
from dvbpr_tf.data import sampler as sampler_lib

AUTOTUNE = tf.data.AUTOTUNE


PipelineConfig = config_lib.PipelineConfig  # The input's part of the configuration tree.
CACHE_MODES = config_lib.CACHE_MODES
RESIZE_METHODS = config_lib.RESIZE_METHODS


def scale_images(images: tf.Tensor) -> tf.Tensor:
  """uint8 pixels -> float32 in [-1, 1]: (x - 127.5) / 127.5, as the authors' code."""
  return (tf.cast(images, tf.float32) - 127.5) / 127.5


def to_uint8(images) -> np.ndarray:
  """The inverse of `scale_images`: images in [-1, 1] -> uint8 (uint8 passes unchanged)."""
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images
  return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def decode_items(jpegs, items, image_size: int, resize: str = "antialiased") -> np.ndarray:
  """uint8 [len(items), S, S, 3]: the given catalog items decoded and resized (host side)."""
  return np.stack([decode_image(tf.constant(jpegs[i]), image_size, resize).numpy()
                   for i in items])


def decode_image(jpeg: tf.Tensor, image_size: int, resize: str = "antialiased") -> tf.Tensor:
  """JPEG bytes -> uint8 [image_size, image_size, 3]; an image of another size is resized
  bilinearly, antialiased (`resize="antialiased"`: the filter widened to the downscale, every
  source pixel counts) or plain (`"bilinear"`: the 4 nearest source pixels; about 3x faster,
  close to the antialiased result for mild downscales such as 300 -> 224, aliased for large
  ones). An image already at the size is not resized."""
  image = tf.io.decode_jpeg(jpeg, channels=3)
  checks.one_of("resize", resize, RESIZE_METHODS)

  def resize_image():  # Only traced into the branch that runs: no resize at the stored size.
    resized = tf.image.resize(image, [image_size, image_size],
                              antialias=resize == "antialiased")
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)

  same = tf.reduce_all(tf.equal(tf.shape(image)[:2], [image_size, image_size]))
  image = tf.cond(same, lambda: image, resize_image)
  return tf.ensure_shape(image, [image_size, image_size, 3])


class ImageTable:
  """Catalog images addressable by item index inside tf.data.

  Args:
    jpegs: [num_items] JPEG bytes.
    image_size: the side images are resized to.
    cache_decoded, cache_limit_bytes, resize: see `PipelineConfig`.
  """

  def __init__(self, jpegs, image_size: int, cache_decoded: str = "auto",
               cache_limit_bytes: int = 4 * 2**30, num_parallel_calls: int = AUTOTUNE,
               resize: str = "antialiased"):
    self.image_size = image_size
    self.resize = resize
    self.num_items = len(jpegs)
    self.jpegs = tf.constant(list(jpegs), tf.string)
    self.num_parallel_calls = num_parallel_calls
    decoded_bytes = self.num_items * image_size * image_size * 3
    if cache_decoded == "always" or (cache_decoded == "auto"
                                     and decoded_bytes <= cache_limit_bytes):
      self.pixels = tf.constant(self._decode_all())
      logging.info("image table: %d items decoded in memory at %dx%d (%.1f MiB)",
                   self.num_items, image_size, image_size, decoded_bytes / 2**20)
    else:
      self.pixels = None
      logging.info("image table: %d items decoded on demand (decoded cache would need "
                   "%.1f GiB, over the budget)", self.num_items, decoded_bytes / 2**30)

  @classmethod
  def from_config(cls, jpegs, config: PipelineConfig) -> "ImageTable":
    return cls(jpegs, config.image_size, config.cache_decoded, config.cache_limit_bytes,
               config.num_parallel_calls, config.resize)

  def decode(self, jpeg: tf.Tensor) -> tf.Tensor:
    """One JPEG -> uint8 [S, S, 3], at this table's size and resize."""
    return decode_image(jpeg, self.image_size, self.resize)

  @property
  def cached(self) -> bool:
    return self.pixels is not None

  def _decode_all(self) -> np.ndarray:
    dataset = tf.data.Dataset.from_tensor_slices(self.jpegs).map(
        self.decode, num_parallel_calls=self.num_parallel_calls,
        deterministic=True).batch(1024)
    parts = [batch.numpy() for batch in dataset]
    if not parts:
      return np.zeros((0, self.image_size, self.image_size, 3), np.uint8)
    return np.concatenate(parts)

  def lookup(self, items: tf.Tensor) -> tf.Tensor:
    """uint8 [..., S, S, 3] images of the given item indices."""
    if self.pixels is not None:
      return tf.gather(self.pixels, items)
    flat = tf.reshape(items, [-1])
    images = tf.map_fn(self.decode, tf.gather(self.jpegs, flat), fn_output_signature=tf.uint8)
    size = self.image_size
    return tf.reshape(images, tf.concat([tf.shape(items), [size, size, 3]], 0))


def _options() -> tf.data.Options:
  options = tf.data.Options()
  options.deterministic = True
  return options


def _prefetch(dataset: tf.data.Dataset, prefetch: int) -> tf.data.Dataset:
  return dataset.prefetch(AUTOTUNE if prefetch < 0 else prefetch)


def triplet_dataset(sampler: sampler_lib.TripletSampler, table: ImageTable,
                    config: PipelineConfig, start: int | None = None,
                    shard: distribution.Shard | None = None,
                    seed: int = 0) -> tf.data.Dataset:
  """Endless BPR batches from batch `start`: dict of `user`, `pos`, `neg` (int64 [B]) and
  `pos_image`, `neg_image` (float32 [B, S, S, 3] in [-1, 1]); with
  `config.horizontal_flip`, each image mirrored with probability 1/2 (`random_flips`, keyed
  on `seed` and the batch's index).

  With a `shard` (distributed training), the batches are this input pipeline's per-replica
  slices of each global batch of `config.batch_size` rows, B = batch_size / replicas; the
  images are looked up for those rows only.
  """
  indices = sampler.dataset(config.batch_size, start=start, shard=shard)
  rows = config.batch_size if shard is None else shard.rows_per_replica(config.batch_size)
  if table.cached:
    def attach(batch):
      return dict(batch, pos_image=scale_images(table.lookup(batch["pos"])),
                  neg_image=scale_images(table.lookup(batch["neg"])))
    dataset = indices.map(attach, num_parallel_calls=config.num_parallel_calls,
                          deterministic=True)
  else:
    # Decode example by example so that tf.data spreads the JPEG work over the cores.
    def attach_one(example):
      return dict(
          example,
          pos_image=scale_images(table.decode(tf.gather(table.jpegs, example["pos"]))),
          neg_image=scale_images(table.decode(tf.gather(table.jpegs, example["neg"]))))
    dataset = indices.unbatch().map(
        attach_one, num_parallel_calls=config.num_parallel_calls, deterministic=True
    ).batch(rows, drop_remainder=True)
  if config.horizontal_flip:
    replica = 0 if shard is None else shard.first
    first = int(sampler.position.numpy()) if start is None else start  # As the sampler.
    dataset = dataset.enumerate(first).map(
        lambda index, batch: random_flips(batch, ("pos_image", "neg_image"),
                                          tf.stack([tf.constant(seed, tf.int64), index,
                                                    tf.constant(replica, tf.int64)])),
        num_parallel_calls=config.num_parallel_calls, deterministic=True)
  return _prefetch(dataset, config.prefetch).with_options(_options())


def random_flips(batch: dict, keys, seed: tf.Tensor) -> dict:
  """`batch` with each image of `batch[key]` ([B, S, S, 3]), for each key, mirrored left to
  right when its stateless uniform draw (from `seed`, int64 [3], hashed to a key) is below
  1/2."""
  out = dict(batch)
  key = tf.random.experimental.stateless_fold_in(seed[:2], seed[2])
  for n, name in enumerate(keys):
    images = batch[name]
    flip = tf.random.stateless_uniform(
        tf.shape(images)[:1], tf.random.experimental.stateless_fold_in(key, n + 1)) < 0.5
    out[name] = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
  return out


def item_dataset(table: ImageTable, batch_size: int, items=None,
                 prefetch: int = -1) -> tf.data.Dataset:
  """Every item once (or the given `items`), in order: dict of `item` (int64 [b]) and
  `image` (float32 [b, S, S, 3] in [-1, 1]); the last batch may be smaller."""
  if items is None:
    items = np.arange(table.num_items)
  dataset = tf.data.Dataset.from_tensor_slices(np.asarray(items, np.int64)).batch(batch_size)
  if table.cached:
    dataset = dataset.map(lambda i: {"item": i, "image": scale_images(table.lookup(i))})
  else:
    dataset = dataset.unbatch().map(
        lambda i: {"item": i,
                   "image": scale_images(table.decode(tf.gather(table.jpegs, i)))},
        num_parallel_calls=table.num_parallel_calls, deterministic=True).batch(batch_size)
  return _prefetch(dataset, prefetch).with_options(_options())


def gan_dataset(table: ImageTable, item_category, num_categories: int, batch_size: int,
                seed: int = 0, epoch_start: int = 0, prefetch: int = -1,
                skip_batches: int = 0,
                shard: distribution.Shard | None = None) -> tf.data.Dataset:
  """Endless GAN batches, reshuffled each epoch (seeded, so resumable from `epoch_start`,
  then `skip_batches` into it): dict of `item` (int64 [B]), `image` (float32 [B, S, S, 3] in
  [-1, 1]), `category` (int64 [B]) and `label` (float32 one-hot [B, num_categories]). An
  epoch is floor(num_items / batch_size) full batches. With a `shard`, this input pipeline's
  per-replica slices of each global batch (see `triplet_dataset`)."""
  categories = tf.constant(np.asarray(item_category, np.int64))
  num_items = table.num_items
  if num_items < batch_size:
    raise ValueError(f"the catalog has {num_items} items, fewer than one batch ({batch_size})")

  def epoch(e):
    key = tf.random.experimental.stateless_fold_in(tf.constant([seed, 0x6A4], tf.int64), e)
    order = tf.cast(tf.argsort(tf.random.stateless_uniform([num_items], key)), tf.int64)
    return tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=True)

  def attach(i):
    category = tf.gather(categories, i)
    return {"item": i, "image": scale_images(table.lookup(i)), "category": category,
            "label": tf.one_hot(category, num_categories, dtype=tf.float32)}

  batches = tf.data.Dataset.counter(epoch_start, dtype=tf.int64).flat_map(epoch)
  if skip_batches:
    batches = batches.skip(skip_batches)
  dataset = distribution.split_batches(batches, shard, batch_size).map(
      attach, num_parallel_calls=table.num_parallel_calls, deterministic=True)
  return _prefetch(dataset, prefetch).with_options(_options())
