"""The record schema every dataset builder of this project writes.

One TFDS split, `catalog`, holds one example per item:

- `item_id`: the item's dense integer index in [0, num_items), the index every model uses;
- `source_id`: the item's id in the source data, as text (H&M article ids keep their
  leading zero; for the authors' files it is their integer index);
- `image`: the product image, JPEG-encoded RGB (stored at the builder config's size, or as the
  source gave it when the config keeps the original size);
- `category`: the item's category (a `ClassLabel`; its names are set by each builder);
- `interactions`: every (user, split) pair that touches the item, `user_id` being the user's
  dense index in [0, num_users) and `split` one of `train`, `validation`, `test`.

Keeping interactions inside the item records stores each image once (an item has a handful of
interactions) and lets one pass over the catalog rebuild both the image table and the
user-item matrix. The dataset statistics go to `metadata.json` next to the TFRecords
(`builder.info.metadata`), written atomically with the rest of the build by TFDS.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

CATALOG_SPLIT = "catalog"
INTERACTION_SPLITS = ("train", "validation", "test")
TRAIN, VALIDATION, TEST = 0, 1, 2


def clean_label(name: str) -> str:
  """A category name as it is stored: TFDS keeps a ClassLabel's names one per line, so any
  run of whitespace (newlines, carriage returns, tabs, Unicode line separators included) is
  one space and the ends are stripped. Every builder cleans its names with this one rule."""
  return " ".join(name.split())


def catalog_features(category_names: Sequence[str] | None = None) -> tfds.features.FeaturesDict:
  """The features of one catalog record (see the module docstring).

  Args:
    category_names: the category labels, when known before generation. Builders that learn
      them from the data pass None and set `info.features['category'].names` later.
  """
  category = (
      tfds.features.ClassLabel(names=list(category_names))
      if category_names is not None
      else tfds.features.ClassLabel()
  )
  return tfds.features.FeaturesDict({
      "item_id": tfds.features.Scalar(dtype=np.int64),
      "source_id": tfds.features.Text(),
      "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
      "category": category,
      "interactions": tfds.features.Sequence({
          "user_id": tfds.features.Scalar(dtype=np.int64),
          "split": tfds.features.ClassLabel(names=list(INTERACTION_SPLITS)),
      }),
  })


def catalog_examples(
    *,
    source_ids: Sequence[str],
    jpegs,
    categories: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    splits: np.ndarray,
):
  """Yields `(key, example)` pairs of the catalog split.

  Args:
    source_ids: [N] source id of each item (dense index = position).
    jpegs: indexable by item index, returning the JPEG bytes (a list, or a lazy sequence so
      that a builder need not hold every image twice).
    categories: [N] int category index of each item.
    users, items, splits: [M] the interactions as parallel arrays of dense indices and split
      codes (TRAIN, VALIDATION, TEST).
  """
  order = np.argsort(items, kind="stable")
  bounds = np.searchsorted(items[order], np.arange(len(source_ids) + 1))
  for item in range(len(source_ids)):
    rows = order[bounds[item]:bounds[item + 1]]
    yield item, {
        "item_id": item,
        "source_id": str(source_ids[item]),
        "image": _as_file(jpegs[item]),
        "category": int(categories[item]),
        "interactions": {
            "user_id": users[rows].astype(np.int64),
            "split": splits[rows].astype(np.int64),
        },
    }


class ReleasingList:
  """Hands out each element once, dropping the list's reference to it (each image is held
  once: by the list until written, then by nobody)."""

  def __init__(self, values: list):
    self._values = values

  def __len__(self) -> int:
    return len(self._values)

  def __getitem__(self, index: int):
    value = self._values[index]
    if value is None:
      raise RuntimeError(
          f"the image of item {index} was already written and released; the catalog can be "
          "generated once per build: build again from the source files.")
    self._values[index] = None
    return value


def _as_file(jpeg: bytes):
  import io  # pylint: disable=g-import-not-at-top

  return io.BytesIO(jpeg)


def read_catalog_arrays(dataset: tf.data.Dataset):
  """Reads a catalog split (images not decoded) into NumPy arrays ordered by item id.

  Args:
    dataset: `builder.as_dataset(split='catalog', decoders={'image': SkipDecoding()})`.

  Returns:
    dict with `source_ids` [N] str, `jpegs` [N] object (bytes), `categories` [N] int32,
    `users`, `items`, `splits` [M] int32 (the interactions).

  Raises:
    ValueError: if the item ids are not exactly 0..N-1.
  """
  item_ids, source_ids, jpegs, categories = [], [], [], []
  users, items, splits = [], [], []
  for example in dataset.as_numpy_iterator():
    item = int(example["item_id"])
    item_ids.append(item)
    source_ids.append(example["source_id"].decode("utf-8"))
    jpegs.append(example["image"])
    categories.append(int(example["category"]))
    interactions = example["interactions"]
    users.append(interactions["user_id"])
    splits.append(interactions["split"])
    items.append(np.full(len(interactions["user_id"]), item, np.int64))
  order = np.argsort(np.asarray(item_ids, np.int64), kind="stable")
  if not np.array_equal(np.asarray(item_ids, np.int64)[order], np.arange(len(item_ids))):
    raise ValueError(
        "the catalog split does not hold item ids 0..N-1 exactly once each; the dataset was "
        "not written by this project's builders, or is damaged: rebuild it."
    )
  cat = lambda parts: np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)
  jpeg_array = np.empty(len(jpegs), dtype=object)
  jpeg_array[:] = jpegs
  return {
      "source_ids": np.asarray(source_ids, dtype=object)[order],
      "jpegs": jpeg_array[order],
      "categories": np.asarray(categories, np.int32)[order],
      "users": cat(users),
      "items": cat(items),
      "splits": cat(splits),
  }
