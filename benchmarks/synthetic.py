"""Synthetic inputs of the benchmarks: product-like JPEGs and random interaction splits.

Nothing is downloaded. The JPEGs look, to a decoder, like the Amazon product photos the paper
uses: about 300x300, a light background and a shaded object with some texture and sensor-like
noise, saved at quality 90 (about 20-30 KB each, as photos of that size).
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

from dvbpr_tf.data import catalog as catalog_lib


def product_image(rng: np.random.Generator, size: int) -> np.ndarray:
  """uint8 [size, size, 3]: a light gradient background, a shaded ellipse (the product) with a
  woven texture, and sensor-like noise."""
  axis = np.arange(size, dtype=np.float32) / size
  x, y = axis[None, :], axis[:, None]
  cx, cy, rx, ry, frequency, slant = map(float, rng.uniform(
      [0.35, 0.35, 0.2, 0.2, 20.0, 0.5], [0.65, 0.65, 0.4, 0.4, 60.0, 1.5]))
  inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1.0
  shade = 0.6 + 0.4 * np.clip(1.2 - ((x - cx) / rx) ** 2 - ((y - cy) / ry) ** 2, 0.0, 1.0)
  texture = 12.0 * np.sin(frequency * (x + slant * y))
  gradient = 15.0 * (x - y)
  channels = []
  for tilt, colour in zip(map(float, rng.uniform(-1, 1, 3)), map(float, rng.uniform(20, 220, 3))):
    channels.append(np.where(inside, colour * shade + texture, 235.0 + tilt * gradient))
  noise = rng.integers(-7, 8, (size, size, 3), dtype=np.int16)  # Uniform, std 4.3.
  image = np.stack(channels, axis=-1).astype(np.int16) + noise
  return np.clip(image, 0, 255).astype(np.uint8)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, "JPEG", quality=quality)
  return buffer.getvalue()


@functools.lru_cache(maxsize=8)
def product_jpegs(num_images: int, size: int = 300, seed: int = 0) -> tuple[bytes, ...]:
  """`num_images` distinct JPEGs of `size` x `size` (cached: benchmarks in one run share
  them)."""
  rng = np.random.default_rng(seed)
  return tuple(encode_jpeg(product_image(rng, size)) for _ in range(num_images))


def random_split(num_users: int, num_items: int, num_interactions: int, seed: int = 0):
  """Random interactions with the leave-one-out split of the paper: every user has at least
  three items; the last is the test item, the one before the validation item.

  Returns:
    (users, items, splits): int64 [M] arrays, M = max(num_interactions, 3 * num_users), splits
    holding `catalog.TRAIN`, `VALIDATION` or `TEST`.
  """
  rng = np.random.default_rng(seed)
  extra = max(0, num_interactions - 3 * num_users)
  per_user = 3 + rng.multinomial(extra, np.full(num_users, 1.0 / num_users))
  users = np.repeat(np.arange(num_users, dtype=np.int64), per_user)
  items = rng.integers(0, num_items, len(users), dtype=np.int64)
  ends = np.cumsum(per_user)
  splits = np.full(len(users), catalog_lib.TRAIN, np.int64)
  splits[ends - 1] = catalog_lib.TEST
  splits[ends - 2] = catalog_lib.VALIDATION
  return users, items, splits


def catalog(jpegs, num_users: int, interactions_per_user: int = 8, num_categories: int = 6,
            seed: int = 0) -> catalog_lib.Catalog:
  """A `Catalog` over the given JPEGs with a random split (what `DvbprTask` takes)."""
  num_items = len(jpegs)
  users, items, splits = random_split(num_users, num_items, num_users * interactions_per_user,
                                      seed)
  rng = np.random.default_rng(seed + 1)
  return catalog_lib.Catalog(
      name="synthetic/benchmark",
      num_users=num_users,
      num_items=num_items,
      category_names=tuple(f"category_{c}" for c in range(num_categories)),
      item_category=rng.integers(0, num_categories, num_items, dtype=np.int64),
      source_ids=np.array([str(i) for i in range(num_items)], dtype=object),
      jpegs=np.array(list(jpegs), dtype=object),
      users=users,
      items=items,
      splits=splits,
      statistics={},
      data_path="",
  )


# Amazon Fashion's sizes (the paper's Table II; docs/reproduction.md).
AMAZON_FASHION = {"num_users": 64_583, "num_items": 234_892, "num_interactions": 513_367}


def long_tailed_split(num_users: int, num_items: int, num_interactions: int, seed: int = 0,
                      item_exponent: float = 0.9, user_sigma: float = 1.0):
  """Interactions shaped like a shop's: item popularity falls as rank^-`item_exponent` (a Zipf
  law, over a random order of the item ids) and every item has at least one interaction when
  there are as many interactions as items; users' activity is log-normal (`user_sigma`),
  every user has at least three items; the leave-one-out split of `random_split`.

  Returns:
    (users, items, splits) as `random_split`, exactly max(num_interactions, 3 * num_users)
    interactions.
  """
  rng = np.random.default_rng(seed)
  extra = max(0, num_interactions - 3 * num_users)
  activity = rng.lognormal(0.0, user_sigma, num_users)
  per_user = 3 + rng.multinomial(extra, activity / activity.sum())
  users = np.repeat(np.arange(num_users, dtype=np.int64), per_user)
  popularity = np.arange(1, num_items + 1, dtype=np.float64) ** -item_exponent
  order = rng.permutation(num_items)
  items = order[rng.choice(num_items, len(users), p=popularity / popularity.sum())]
  # Every item bought at least once (a review dataset has no item without one), when there
  # are enough interactions: the first num_items draws, at random places, become each item.
  if len(users) >= num_items:
    items[rng.permutation(len(users))[:num_items]] = np.arange(num_items)
  ends = np.cumsum(per_user)
  splits = np.full(len(users), catalog_lib.TRAIN, np.int64)
  splits[ends - 1] = catalog_lib.TEST
  splits[ends - 2] = catalog_lib.VALIDATION
  return users, items.astype(np.int64), splits


def interaction_catalog(num_users: int, num_items: int, num_interactions: int, seed: int = 0,
                        num_categories: int = 6) -> catalog_lib.Catalog:
  """A `Catalog` with `long_tailed_split`'s interactions and no images (every JPEG empty):
  what the baselines that read features, not pixels, train on."""
  users, items, splits = long_tailed_split(num_users, num_items, num_interactions, seed)
  rng = np.random.default_rng(seed + 1)
  return catalog_lib.Catalog(
      name="synthetic/long_tailed",
      num_users=num_users,
      num_items=num_items,
      category_names=tuple(f"category_{c}" for c in range(num_categories)),
      item_category=rng.integers(0, num_categories, num_items, dtype=np.int64),
      source_ids=np.array([str(i) for i in range(num_items)], dtype=object),
      jpegs=np.full(num_items, b"", dtype=object),
      users=users,
      items=items,
      splits=splits,
      statistics={},
      data_path="",
  )


def item_features(num_items: int, dim: int, seed: int = 0, rank: int = 32) -> np.ndarray:
  """float32 [num_items, dim] non-negative features like a CNN's ReLU layer: a rank-`rank`
  product plus noise, clipped at 0 (made in blocks of rows, to bound the temporaries)."""
  rng = np.random.default_rng(seed)
  basis = rng.normal(0.0, 1.0, (rank, dim)).astype(np.float32) / np.sqrt(rank)
  out = np.empty((num_items, dim), np.float32)
  for start in range(0, num_items, 16_384):
    stop = min(num_items, start + 16_384)
    block = rng.normal(0.0, 1.0, (stop - start, rank)).astype(np.float32) @ basis
    block += rng.normal(0.0, 0.5, block.shape).astype(np.float32)
    out[start:stop] = np.maximum(block, 0.0)
  return out
