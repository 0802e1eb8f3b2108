"""Pre-trained item features of the visual baselines (VisRank, FM, VBPR), from a named source.

The paper's VisRank, FM and VBPR use the 4096-d features of a CNN pre-trained on ImageNet
(docs/reproduction.md §3, "f_i a pre-trained 4096-d CNN feature"). Those weights are not
available offline, so the source of the features is pluggable, and every table says which
source produced it (`key` and `describe()`):

- `FileFeatures`: features someone else computed, read from a file aligned to the items:
  a `.npy` [num_items, D] in dense item order, a `.npz` with `source_ids` and `features`, or
  the binary format in which the VBPR datasets shipped their features (McAuley et al.).
- `KerasApplicationFeatures`: a `keras.applications` network (VGG16's 4096-d `fc2` by
  default, the paper's setting) with weights the user downloaded; nothing is ever downloaded.
- `CategoryCnnFeatures` (the offline default): a small CNN trained on the catalog's own images
  to predict the item's category; the features are its penultimate layer. Like the paper's
  ImageNet features, they come from a network optimised for a task other than the users'
  taste, which is the contrast the paper draws with DVBPR's end-to-end features.

`load_features(catalog, source)` computes the features once and caches them with the dataset,
in `<catalog.data_path>/features/<key>.npy` and `<key>.json` (the JSON describes the source,
its configuration and a fingerprint of its input files; a cache that does not match the
source is recomputed). `feature_source_from_name` turns a command-line string into a source.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pathlib
import re
import time
from typing import Iterable, Protocol

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from dvbpr_tf.core import cache
from dvbpr_tf.core import checks
from dvbpr_tf.core import errors
from dvbpr_tf.core import files
from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf.data import input_pipeline

VBPR_ID_BYTES = 10  # An Amazon ASIN: 10 ASCII characters.
VBPR_DIM = 4096
CACHE_FOLDER = "features"
_LOG_EVERY_SECONDS = 10.0


class FeatureSourceError(errors.UserError, ValueError):
  """Features that cannot be produced as asked: a bad file, missing items, no categories."""


class FeatureSource(Protocol):
  """What `load_features` needs of a source."""

  @property
  def key(self) -> str:
    """A short name: the cache file's name, printed beside every table."""

  def describe(self) -> str:
    """One sentence saying where the features come from."""

  def fingerprint(self) -> dict:
    """What, besides the configuration, a cached result depends on (input files)."""

  def compute(self, catalog: catalog_lib.Catalog) -> tuple[np.ndarray, dict]:
    """[num_items, D] float32 features and facts worth recording (accuracy, counts)."""


# ---------------------------------------------------------------------------------------------
# Small helpers.


class _Progress:
  """Logs `done/total`, rate and time left at most every `every` seconds."""

  def __init__(self, what: str, total: float, unit: str, every: float = _LOG_EVERY_SECONDS):
    self.what, self.total, self.unit, self.every = what, total, unit, every
    self.started = self.last = time.time()

  def update(self, done: float, extra: str = "", force: bool = False) -> None:
    now = time.time()
    if not force and now - self.last < self.every:
      return
    self.last = now
    rate = done / max(now - self.started, 1e-9)
    left = (self.total - done) / max(rate, 1e-9)
    logging.info("%s: %s/%s %s | %.0f %s/s | %s left%s", self.what, _count(done),
                 _count(self.total), self.unit, rate, self.unit, _duration(left),
                 f" | {extra}" if extra else "")


def _count(value: float) -> str:
  return f"{value:.1f}" if isinstance(value, float) and not value.is_integer() else f"{value:.0f}"


def _duration(seconds: float) -> str:
  seconds = int(max(0, seconds))
  minutes, secs = divmod(seconds, 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _file_fingerprint(path: str) -> dict:
  try:
    stat = os.stat(path)
  except OSError:
    return {"path": os.path.abspath(path), "missing": True}
  return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _safe_key(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "features"


def _config_dict(source) -> dict:
  return {"type": type(source).__name__, **dataclasses.asdict(source)}


def _some(ids: Iterable, n: int = 5) -> str:
  ids = list(ids)
  shown = ", ".join(repr(str(i)) for i in ids[:n])
  return shown + (", ..." if len(ids) > n else "")


def _align_missing(found: np.ndarray, catalog: catalog_lib.Catalog, path: str,
                   allow_missing: bool, file_examples: list[str]) -> int:
  """Raises (or, with `allow_missing`, logs) when catalog items are absent from the file."""
  missing = np.flatnonzero(~found)
  if not len(missing):
    return 0
  missing_ids = catalog.source_ids[missing]
  if not allow_missing:
    raise FeatureSourceError(
        f"{len(missing)} of the catalog's {catalog.num_items} items have no features in "
        f"{path} (for example item ids {_some(missing_ids)}; the file's ids look like "
        f"{_some(file_examples, 3)}). Use a features file made for this dataset "
        f"({catalog.name}), or allow_missing=True to give those items zero features.")
  logging.warning("features %s: %d of %d catalog items missing from the file (e.g. %s); "
                  "their features are zeros", path, len(missing), catalog.num_items,
                  _some(missing_ids))
  return int(len(missing))


# ---------------------------------------------------------------------------------------------
# 1. Features from a file.


@dataclasses.dataclass(frozen=True)
class FileFeatures:
  """Features read from a file aligned to the catalog's items.

  Formats, chosen by the file name's suffix:
  - `.npy`: a float array [num_items, D] in the catalog's dense item order;
  - `.npz`: arrays `source_ids` (strings) and `features` [n, D], matched to the catalog's
    `source_ids` (any order; items of the file not in the catalog are ignored);
  - anything else: the binary format of the VBPR datasets (McAuley et al.,
    `image_features_<category>.b`): a sequence of records, each a 10-byte ASCII item id
    (the ASIN) and `dim` little-endian float32. Read in chunks, keeping only the rows of
    catalog items, so a file of many GB needs only [num_items, dim] of memory.

  Attributes:
    path: the features file.
    allow_missing: give catalog items absent from the file zero features (logged), instead
      of failing.
    dim: the feature size of the binary format (4096 in the VBPR files).
    chunk_records: binary records read at a time.
  """

  path: str
  allow_missing: bool = False
  dim: int = VBPR_DIM
  chunk_records: int = 1024

  def __post_init__(self):
    if not self.path:
      raise errors.ConfigError("FileFeatures needs a path")
    if self.dim < 1 or self.chunk_records < 1:
      raise errors.ConfigError(
          f"dim and chunk_records must be positive (got {self.dim}, {self.chunk_records})")

  @property
  def format(self) -> str:
    suffix = pathlib.Path(self.path).suffix.lower()
    return {".npy": "npy", ".npz": "npz"}.get(suffix, "vbpr_binary")

  @property
  def key(self) -> str:
    return "file-" + _safe_key(pathlib.Path(self.path).stem)

  def describe(self) -> str:
    what = {"npy": "a .npy array in item order", "npz": "a .npz matched by source id",
            "vbpr_binary": f"VBPR binary records (10-byte id + {self.dim} float32)"}
    return f"Features read from {self.path} ({what[self.format]})."

  def fingerprint(self) -> dict:
    return _file_fingerprint(self.path)

  def compute(self, catalog: catalog_lib.Catalog) -> tuple[np.ndarray, dict]:
    if not os.path.isfile(self.path):
      raise FileNotFoundError(f"features file {self.path} not found")
    reader = {"npy": self._read_npy, "npz": self._read_npz,
              "vbpr_binary": self._read_vbpr_binary}[self.format]
    features, info = reader(catalog)
    bad = int(np.size(features) - np.count_nonzero(np.isfinite(features)))
    if bad:
      logging.warning("features %s: %d non-finite values", self.path, bad)
    return features, {"format": self.format, "path": os.path.abspath(self.path),
                      "non_finite_values": bad, **info}

  def _read_npy(self, catalog) -> tuple[np.ndarray, dict]:
    try:
      array = np.load(self.path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
      raise FeatureSourceError(f"{self.path} is not a plain numeric .npy array: {e}") from e
    if array.ndim != 2 or array.shape[0] != catalog.num_items:
      raise FeatureSourceError(
          f"{self.path} has shape {array.shape}; a .npy features file must be "
          f"[num_items, D] = [{catalog.num_items}, D], row i for dense item i of "
          f"{catalog.name}. For features keyed by item id, use a .npz with `source_ids` "
          "and `features`.")
    if not np.issubdtype(array.dtype, np.number):
      raise FeatureSourceError(f"{self.path} holds {array.dtype}, not numbers")
    return np.asarray(array, np.float32), {"missing_items": 0}

  def _read_npz(self, catalog) -> tuple[np.ndarray, dict]:
    try:
      with np.load(self.path, allow_pickle=False) as archive:
        if not {"source_ids", "features"} <= set(archive.files):
          raise FeatureSourceError(
              f"{self.path} holds arrays {sorted(archive.files)}; a .npz features file "
              "needs `source_ids` [n] (strings) and `features` [n, D]")
        ids = archive["source_ids"]
        table = archive["features"]
    except ValueError as e:  # Object arrays need pickle, which is refused.
      raise FeatureSourceError(
          f"{self.path} could not be read without pickle ({e}); save `source_ids` as a "
          "string array (np.asarray(ids, dtype=str)).") from e
    if ids.dtype.kind not in "US" or ids.ndim != 1:
      raise FeatureSourceError(
          f"{self.path}: `source_ids` must be a 1-D string array, not {ids.dtype} {ids.shape}")
    if table.ndim != 2 or table.shape[0] != len(ids) or not np.issubdtype(table.dtype,
                                                                          np.number):
      raise FeatureSourceError(
          f"{self.path}: `features` must be numbers [len(source_ids)={len(ids)}, D], not "
          f"{table.dtype} {table.shape}")
    if ids.dtype.kind == "S":
      ids = np.char.decode(ids, "utf-8")
    row_of = {}
    for row, source_id in enumerate(ids.tolist()):
      row_of.setdefault(source_id, row)  # The first of duplicated ids wins.
    duplicates = len(ids) - len(row_of)
    if duplicates:
      logging.warning("features %s: %d duplicated source ids; the first row of each is used",
                      self.path, duplicates)
    rows = np.array([row_of.get(str(s), -1) for s in catalog.source_ids], np.int64)
    found = rows >= 0
    features = np.zeros([catalog.num_items, table.shape[1]], np.float32)
    features[found] = table[rows[found]]
    missing = _align_missing(found, catalog, self.path, self.allow_missing, ids[:3].tolist())
    return features, {"missing_items": missing, "duplicated_ids": duplicates,
                      "file_items": int(len(ids))}

  def _read_vbpr_binary(self, catalog) -> tuple[np.ndarray, dict]:
    record = np.dtype([("id", f"S{VBPR_ID_BYTES}"), ("features", "<f4", (self.dim,))])
    size = os.path.getsize(self.path)
    if size % record.itemsize:
      raise FeatureSourceError(
          f"{self.path} has {size} bytes, not a multiple of a VBPR record ({VBPR_ID_BYTES}-byte "
          f"id + {self.dim} float32 = {record.itemsize} bytes): not a VBPR features file, or "
          f"its dimension is not {self.dim}.")
    num_records = size // record.itemsize
    item_of = {str(s): i for i, s in enumerate(catalog.source_ids)}
    features = np.zeros([catalog.num_items, self.dim], np.float32)
    found = np.zeros([catalog.num_items], bool)
    examples, duplicates, read = [], 0, 0
    progress = _Progress(f"features {pathlib.Path(self.path).name}", num_records, "records")
    buffer = bytearray(self.chunk_records * record.itemsize)
    with open(self.path, "rb") as f:
      while read < num_records and not found.all():
        n = f.readinto(buffer)
        if n == 0:
          break
        if n % record.itemsize:  # Short read of a regular file: only at its end.
          raise FeatureSourceError(
              f"{self.path}: truncated record at byte {read * record.itemsize + n}")
        chunk = np.frombuffer(buffer, record, count=n // record.itemsize)
        ids = [raw.decode("ascii", errors="replace").strip(" \x00") for raw in chunk["id"]]
        if read == 0 and ids and not all(c.isprintable() for c in ids[0]):
          raise FeatureSourceError(
              f"{self.path}: the first record's id {chunk['id'][0]!r} is not ASCII text: not "
              f"a VBPR features file (10-byte id + {self.dim} float32 per record)")
        examples.extend(ids[:3 - len(examples)])
        for k, source_id in enumerate(ids):
          item = item_of.get(source_id)
          if item is None:
            continue
          if found[item]:
            duplicates += 1
            continue
          features[item] = chunk["features"][k]
          found[item] = True
        read += len(chunk)
        progress.update(read, extra=f"{int(found.sum())}/{catalog.num_items} catalog items")
    if read < num_records:
      logging.info("features %s: every catalog item found after %d of %d records",
                   self.path, read, num_records)
    if duplicates:
      logging.warning("features %s: %d duplicated item ids; the first record of each is "
                      "used", self.path, duplicates)
    missing = _align_missing(found, catalog, self.path, self.allow_missing, examples)
    return features, {"missing_items": missing, "duplicated_ids": duplicates,
                      "file_items": int(num_records), "records_read": int(read)}


# ---------------------------------------------------------------------------------------------
# 2. A keras.applications network with the user's weights.


def _application(name: str):
  fn = getattr(keras.applications, name, None)
  if not callable(fn) or name.startswith("_") or not name[:1].isupper():
    known = sorted(n for n in dir(keras.applications)
                   if n[:1].isupper() and callable(getattr(keras.applications, n)))
    raise errors.ConfigError(
        f"unknown keras application {name!r}; known: {', '.join(known)}")
  return fn, importlib.import_module(fn.__module__)


def _weights_hint(application: str, module) -> str:
  """Where the application's ImageNet weights (with the top) are published."""
  url = getattr(module, "WEIGHTS_PATH", None)
  if isinstance(url, str):
    return url
  for name in ("BASE_WEIGHTS_PATH", "BASE_WEIGHT_PATH"):
    base = getattr(module, name, None)
    if isinstance(base, str):
      return f"the {application} file (with the top) under {base}"
  return "the Keras applications release files"


@dataclasses.dataclass(frozen=True)
class KerasApplicationFeatures:
  """Activations of one layer of a `keras.applications` network with local weights.

  The default, VGG16's `fc2` (4096-d) on 224x224 images, is the kind of feature the paper's
  VisRank, FM and VBPR use. The network is built with `weights=None, include_top=True` (the
  fully connected layers are in the top) and loaded from `weights_path`, a file the user
  downloaded: weights are never downloaded here. Images are decoded as 0..255 RGB, resized
  to `input_size` and passed through the application's own `preprocess_input`.

  Attributes:
    application: the `keras.applications` function (VGG16, VGG19, ResNet50, ...).
    weights_path: the weights file, e.g. `vgg16_weights_tf_dim_ordering_tf_kernels.h5`.
    layer: the layer whose output is the feature (flattened if not a vector).
    input_size: side of the square input image; the top's weights fix it (224 for VGG16).
    batch_size: images per forward pass.
  """

  application: str = "VGG16"
  weights_path: str = ""
  layer: str = "fc2"
  input_size: int = 224
  batch_size: int = 32

  def __post_init__(self):
    _application(self.application)
    if self.input_size < 1 or self.batch_size < 1:
      raise errors.ConfigError(
          f"input_size and batch_size must be positive (got {self.input_size}, "
          f"{self.batch_size})")

  @property
  def key(self) -> str:
    return _safe_key(f"keras-{self.application.lower()}-{self.layer}")

  def describe(self) -> str:
    return (f"Layer {self.layer} of keras.applications.{self.application} with the weights "
            f"{self.weights_path} at {self.input_size}x{self.input_size}.")

  def fingerprint(self) -> dict:
    return _file_fingerprint(self.weights_path)

  def build(self) -> keras.Model:
    """The network from its local weights, cut at `layer`: images 0..255 -> features."""
    fn, module = _application(self.application)
    if not self.weights_path or not os.path.isfile(self.weights_path):
      raise errors.UserError(
          f"weights file {self.weights_path or '(none given)'} for keras.applications."
          f"{self.application} not found. Weights are never downloaded here: download "
          f"{self.application}'s ImageNet weights with the top yourself (Keras applications "
          f"release files: {_weights_hint(self.application, module)}) and pass its path, "
          f"e.g. --features=keras:{self.application}:/path/to/weights.h5")
    model = fn(weights=None, include_top=True,
               input_shape=(self.input_size, self.input_size, 3))
    try:
      model.load_weights(self.weights_path)
    except (ValueError, OSError, KeyError) as e:
      raise errors.UserError(
          f"could not load {self.weights_path} into keras.applications.{self.application} "
          f"(include_top=True, {self.input_size}x{self.input_size}): {e}. The file must hold "
          "this application's weights with the top, at the input size they were made "
          "for.") from e
    try:
      output = model.get_layer(self.layer).output
    except ValueError as e:
      names = [layer.name for layer in model.layers]
      raise errors.ConfigError(
          f"{self.application} has no layer {self.layer!r}; its last layers: "
          f"{', '.join(names[-6:])}") from e
    if len(output.shape) > 2:
      output = keras.layers.Flatten()(output)
    preprocess = module.preprocess_input
    images = keras.Input((self.input_size, self.input_size, 3), name="pixels")
    cut = keras.Model(model.inputs, output)
    return keras.Model(images, cut(keras.layers.Lambda(preprocess)(images)),
                       name=f"{self.application}_{self.layer}")

  def compute(self, catalog: catalog_lib.Catalog) -> tuple[np.ndarray, dict]:
    model = self.build()
    table = input_pipeline.ImageTable(catalog.jpegs, self.input_size)

    @tf.function(reduce_retracing=True)
    def extract(scaled):
      pixels = tf.round(scaled * 127.5 + 127.5)  # item_dataset's [-1, 1] back to 0..255.
      return model(pixels, training=False)

    progress = _Progress(f"features {self.key}", catalog.num_items, "items")
    parts, done = [], 0
    for batch in input_pipeline.item_dataset(table, self.batch_size):
      parts.append(extract(batch["image"]).numpy().astype(np.float32))
      done += len(parts[-1])
      progress.update(done)
    progress.update(done, force=True)
    features = np.concatenate(parts) if parts else np.zeros([0, 0], np.float32)
    return features, {"application": self.application, "layer": self.layer,
                      "weights_path": os.path.abspath(self.weights_path),
                      "input_size": self.input_size}


# ---------------------------------------------------------------------------------------------
# 3. A CNN trained on the catalog's own images to predict the category (the default).


@dataclasses.dataclass(frozen=True)
class CategoryCnnFeatures:
  """The penultimate layer of a small CNN trained to predict each item's category.

  Network, on images in [-1, 1] at `image_size`: a 3x3 stride-2 convolution with `width`
  filters, then three blocks of a 3x3 convolution and a 2x2 max-pool with 2 `width`,
  4 `width`, 4 `width` filters (ReLU, SAME padding; 64x64 -> 4x4); flatten; dense
  `feature_dim` with ReLU (the features); dropout; dense to the categories (softmax
  cross-entropy). Adam, seeded by `seed`. A random `holdout_fraction` of the items is held
  out of training to measure accuracy; the features are then computed for every item.

  Attributes:
    image_size: side of the images the network sees.
    width: filters of the first convolution.
    feature_dim: D, the size of the features.
    epochs: passes over the training items.
    batch_size: items per step.
    learning_rate: Adam's.
    dropout: drop rate before the classifier.
    holdout_fraction: items held out to report accuracy (0: train on all).
    seed: initialisation, split and shuffling seed.
  """

  image_size: int = 64
  width: int = 16
  feature_dim: int = 256
  epochs: int = 6
  batch_size: int = 64
  learning_rate: float = 1e-3
  dropout: float = 0.3
  holdout_fraction: float = 0.1
  seed: int = 0

  def __post_init__(self):
    for name in ("image_size", "width", "feature_dim", "epochs", "batch_size"):
      checks.integer(name, getattr(self, name), 1)
    checks.number("holdout_fraction", self.holdout_fraction, minimum=0, below=1)
    checks.number("dropout", self.dropout, minimum=0, below=1)
    checks.number("learning_rate", self.learning_rate, above=0)
    checks.seed("seed", self.seed)

  @property
  def key(self) -> str:
    return "category_cnn"

  def describe(self) -> str:
    return (f"Penultimate layer ({self.feature_dim}-d) of a small CNN trained on the "
            f"catalog's own {self.image_size}x{self.image_size} images to predict the item "
            "category (not the users' taste), the offline stand-in for ImageNet features.")

  def fingerprint(self) -> dict:
    return {}

  def build(self, num_categories: int) -> tuple[keras.Model, keras.Model]:
    """(classifier: images -> logits, extractor: images -> (features, logits))."""
    size = self.image_size
    images = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(self.width, 3, strides=2, padding="same", activation="relu",
                            name="conv1")(images)
    for n, multiple in enumerate((2, 4, 4), 2):
      x = keras.layers.Conv2D(self.width * multiple, 3, padding="same", activation="relu",
                              name=f"conv{n}")(x)
      if x.shape[1] > 1:
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"pool{n}")(x)
    x = keras.layers.Flatten()(x)
    features = keras.layers.Dense(self.feature_dim, activation="relu", name="features")(x)
    logits = keras.layers.Dense(num_categories, name="logits")(
        keras.layers.Dropout(self.dropout)(features))
    return (keras.Model(images, logits, name="category_cnn"),
            keras.Model(images, [features, logits], name="category_cnn_features"))

  def compute(self, catalog: catalog_lib.Catalog) -> tuple[np.ndarray, dict]:
    trained = train_category_cnn(catalog, self)
    return trained.features, trained.facts


@dataclasses.dataclass(frozen=True)
class TrainedCategoryCnn:
  """What training a category CNN gives: the classifier (images in [-1, 1] -> logits), every
  item's penultimate features [num_items, feature_dim], and the facts of the training
  (accuracies, sizes, seconds, history)."""

  classifier: keras.Model
  features: np.ndarray
  facts: dict


def train_category_cnn(catalog: catalog_lib.Catalog,
                       config: CategoryCnnFeatures) -> TrainedCategoryCnn:
  """Trains `config`'s category CNN on the catalog's images to predict their categories
  (seeded; a held-out share of the items measures its accuracy); for the `category_cnn`
  feature source and for the quality metric's classifier."""
  categories = np.asarray(catalog.item_category, np.int64)
  used = np.unique(categories)
  if catalog.num_categories < 2 or len(used) < 2:
    raise FeatureSourceError(
        f"{catalog.name} has {len(used)} item categor{'y' if len(used) == 1 else 'ies'}: "
        "the category_cnn feature source learns to predict the category, so it needs at "
        "least two. Use another source: --features=file:<path> (features computed "
        "elsewhere) or --features=keras:<Application>:<weights file>.")
  keras.utils.set_random_seed(config.seed)
  rng = np.random.default_rng(config.seed)
  order = rng.permutation(catalog.num_items)
  num_heldout = int(round(config.holdout_fraction * catalog.num_items))
  heldout, train = np.sort(order[:num_heldout]), np.sort(order[num_heldout:])
  batch_size = min(config.batch_size, len(train))

  table = input_pipeline.ImageTable(catalog.jpegs, config.image_size)
  classifier, extractor = config.build(catalog.num_categories)
  optimizer = keras.optimizers.Adam(config.learning_rate)
  optimizer.build(classifier.trainable_variables)
  labels = tf.constant(categories)

  @tf.function
  def train_step(items):
    images = input_pipeline.scale_images(table.lookup(items))
    target = tf.gather(labels, items)
    with tf.GradientTape() as tape:
      logits = classifier(images, training=True)
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(target, logits))
    variables = classifier.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1), target), tf.float32))
    return loss, correct

  @tf.function(reduce_retracing=True)
  def predict(images):
    return extractor(images, training=False)

  def accuracy(items) -> float | None:
    if not len(items):
      return None
    dataset = input_pipeline.item_dataset(table, 512, items)
    hits = sum(int(np.sum(np.argmax(predict(b["image"])[1].numpy(), -1)
                          == categories[b["item"].numpy()])) for b in dataset)
    return hits / len(items)

  batches = tf.data.Dataset.from_tensor_slices(train).shuffle(
      len(train), seed=config.seed, reshuffle_each_iteration=True).batch(
          batch_size, drop_remainder=True).prefetch(2)
  steps_per_epoch = len(train) // batch_size
  chance = float(np.max(np.bincount(categories[train]))) / len(train)
  logging.info("category CNN: %d training items, %d held out, %d categories (majority "
               "class %.3f), %d epochs of %d steps", len(train), len(heldout),
               catalog.num_categories, chance, config.epochs, steps_per_epoch)
  started = time.time()
  history = []
  for epoch in range(1, config.epochs + 1):
    epoch_start = time.time()
    losses, correct = [], 0.0
    for items in batches:
      loss, hits = train_step(items)
      losses.append(loss)
      correct += float(hits)
    seconds = time.time() - epoch_start
    record = {"epoch": epoch, "loss": float(np.mean([float(v) for v in losses])),
              "train_accuracy_running": correct / (steps_per_epoch * batch_size),
              "heldout_accuracy": accuracy(heldout),
              "items_per_second": steps_per_epoch * batch_size / max(seconds, 1e-9)}
    history.append(record)
    left = (config.epochs - epoch) * (time.time() - started) / epoch
    logging.info("category CNN epoch %d/%d: loss %.4f, accuracy %.3f (running), held-out "
                 "%s | %.0f items/s | %s left", epoch, config.epochs, record["loss"],
                 record["train_accuracy_running"],
                 "n/a" if record["heldout_accuracy"] is None
                 else f"{record['heldout_accuracy']:.3f}",
                 record["items_per_second"], _duration(left))
  train_seconds = time.time() - started

  parts, predicted = [], []
  for batch in input_pipeline.item_dataset(table, 512):
    features, logits = predict(batch["image"])
    parts.append(features.numpy())
    predicted.append(np.argmax(logits.numpy(), -1))
  features = np.concatenate(parts).astype(np.float32)
  hits = np.concatenate(predicted) == categories
  result = {
      "train_accuracy": float(hits[train].mean()),
      "heldout_accuracy": float(hits[heldout].mean()) if len(heldout) else None,
      "majority_class_accuracy": chance,
      "num_train": int(len(train)), "num_heldout": int(len(heldout)),
      "num_categories": int(catalog.num_categories),
      "train_seconds": train_seconds, "history": history,
  }
  logging.info("category CNN: train accuracy %.3f, held-out accuracy %s, %.1fs of training",
               result["train_accuracy"],
               "n/a" if result["heldout_accuracy"] is None
               else f"{result['heldout_accuracy']:.3f}", train_seconds)
  return TrainedCategoryCnn(classifier=classifier, features=features, facts=result)


# ---------------------------------------------------------------------------------------------
# Names and the cache.


SOURCE_FORMS = ("category_cnn", "file:<path>", "keras:<Application>:<weights_path>[:layer]")


def feature_source_from_name(name: str | None, **kwargs) -> FeatureSource:
  """A source from a command-line string; `kwargs` go to the source's constructor.

  - `category_cnn` (or empty): `CategoryCnnFeatures`;
  - `file:<path>`: `FileFeatures(path)`;
  - `keras:<Application>:<weights_path>[:layer]`: `KerasApplicationFeatures` (the layer is
    the part after the last colon when it has neither `/` nor `.`, else the default `fc2`).
  """
  name = (name or "category_cnn").strip()
  try:
    if name == "category_cnn":
      return CategoryCnnFeatures(**kwargs)
    if name.startswith("file:") and name[len("file:"):]:
      return FileFeatures(name[len("file:"):], **kwargs)
    if name.startswith("keras:"):
      application, _, rest = name[len("keras:"):].partition(":")
      if application and rest:
        head, sep, tail = rest.rpartition(":")
        if sep and head and tail and not re.search(r"[/\\.]", tail):
          kwargs.setdefault("layer", tail)
          rest = head
        return KerasApplicationFeatures(application, rest, **kwargs)
  except TypeError as e:  # Unknown keyword for that source.
    raise errors.ConfigError(f"feature source {name!r}: {e}") from e
  raise errors.ConfigError(
      f"unknown feature source {name!r}; use one of: {', '.join(SOURCE_FORMS)}")


def default_cache_dir(catalog: catalog_lib.Catalog) -> pathlib.Path:
  """`<the built dataset's folder>/features/`."""
  return pathlib.Path(catalog.data_path) / CACHE_FOLDER


def _identity(catalog: catalog_lib.Catalog, source: FeatureSource) -> dict:
  return {"catalog": catalog.name, "num_items": int(catalog.num_items),
          "config": _config_dict(source), "fingerprint": source.fingerprint()}


def _read_cache(npy: pathlib.Path, meta: pathlib.Path, identity: dict):
  """The cached (features, info) when the stamp matches `identity` and the array its shape,
  else None."""
  info = cache.read_stamp(meta, identity, "features")
  if info is None or not npy.is_file():
    return None
  try:
    features = np.load(npy, allow_pickle=False)
  except (OSError, ValueError) as e:
    logging.warning("features cache %s unreadable (%s); recomputing", npy, e)
    return None
  if features.shape != (identity["num_items"], info.get("dim")):
    logging.warning("features cache %s has shape %s, expected (%d, %s); recomputing", npy,
                    features.shape, identity["num_items"], info.get("dim"))
    return None
  return features.astype(np.float32, copy=False), info


def load_features(catalog: catalog_lib.Catalog, source: FeatureSource,
                  cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, dict]:
  """The source's features of every catalog item, computed once and cached.

  Args:
    catalog: the items.
    source: a `FileFeatures`, `KerasApplicationFeatures` or `CategoryCnnFeatures`.
    cache_dir: where `<key>.npy` and `<key>.json` are kept (default: `<catalog.data_path>/
      features/`, beside the built dataset). When it cannot be written, the features are
      computed without caching (a warning says so).

  Returns:
    features: float32 [num_items, D], row i for dense item i.
    info: `source` (the key), `description`, `dim`, `seconds` (of the computation), `cached`
      (whether read from the cache), `cache_path`, and the source's own facts (for
      `CategoryCnnFeatures`: `train_accuracy`, `heldout_accuracy`, ...).
  """
  cache_dir = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir(catalog)
  npy, meta = cache_dir / f"{source.key}.npy", cache_dir / f"{source.key}.json"
  identity = _identity(catalog, source)
  cached = _read_cache(npy, meta, identity)
  if cached is not None:
    features, info = cached
    logging.info("features %s: %s read from %s", source.key, features.shape, npy)
    return features, {**info, "cached": True, "cache_path": str(npy)}

  logging.info("features %s: computing for %d items of %s (%s)", source.key,
               catalog.num_items, catalog.name, source.describe())
  started = time.time()
  features, facts = source.compute(catalog)
  features = np.ascontiguousarray(features, np.float32)
  if features.ndim != 2 or features.shape[0] != catalog.num_items:
    raise AssertionError(f"source {source.key} returned {features.shape}, expected "
                         f"({catalog.num_items}, D)")
  info = {"source": source.key, "description": source.describe(),
          "dim": int(features.shape[1]), "seconds": time.time() - started,
          **identity, **facts}
  logging.info("features %s: %s in %.1fs", source.key, features.shape, info["seconds"])
  stored = cache.store(meta, info, f"features {source.key}",
                       lambda: files.write_npy_atomic(npy, features))
  return features, {**info, "cached": False, "cache_path": str(npy) if stored else None}


__all__ = [
    "CategoryCnnFeatures", "FeatureSource", "FeatureSourceError", "FileFeatures",
    "KerasApplicationFeatures", "default_cache_dir", "feature_source_from_name",
    "load_features",
]
