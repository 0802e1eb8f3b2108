"""Generated-image metrics of Table IV: quality (a classifier score) and diversity (1 - SSIM).

The paper (docs/reproduction.md §6, Table IV) scores the top-3 images returned for a user and a
category by three numbers: the preference score (eq. 6, in `design`), the image quality as
the Inception Score, and the diversity as one minus the mean SSIM over pairs of the images.

The metric maths is kept apart from the network that feeds it, as TF-GAN's
`classifier_metrics.py` / `inception_metrics.py`:

- `classifier_score_from_logits`: the Inception Score's formula for any classifier's logits,

      score = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x)        (Salimans et al. 2016)

  between 1 (every image gets the same prediction, or all predictions are uniform) and C, the
  number of classes (each image confidently in one class, the classes evenly used);
  `classifier_score_split` is the usual convention of the mean and standard deviation over
  `splits` contiguous parts of the set.
- `diversity`: 1 - the mean SSIM (scikit-image `structural_similarity`) over all unordered
  pairs of a set of images.

Two classifiers feed the quality metric, each a thin wrapper with `logits(images)`:

- `InceptionScorer`: `keras.applications.InceptionV3` with ImageNet weights from a local file
  the user names (never downloaded): the Inception Score proper. Keras's InceptionV3 has 1000
  classes, so its scores are close to, but not identical with, those of the 2015 TensorFlow
  graph (1008 outputs) the paper's era used.
- `CategoryClassifierScorer` (the offline default): the small category CNN of
  `features.CategoryCnnFeatures`, trained on the dataset's real images, its weights cached
  beside the features cache. Its score is called a *classifier score*, never the Inception
  Score: its value depends on the dataset's number of categories and on how well the small
  network classifies them, and it cannot be compared with the paper's numbers.

Images are [N, H, W, 3], either uint8 (0..255) or float in [-1, 1] (the generator's tanh
output and the input pipeline's scaling).
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import os
import pathlib
import time
from typing import Protocol

from absl import logging
import keras
import numpy as np
from skimage import metrics as skimage_metrics
import tensorflow as tf

from dvbpr_tf.core import cache
from dvbpr_tf.core import checks
from dvbpr_tf.core import errors
from dvbpr_tf.core import files
from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.evaluation import gan_metrics
from dvbpr_tf.features import sources as features_lib

INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
INCEPTION_SIZE = 299
CLASSIFIER_KEY = "category_classifier"
SCORER_FORMS = ("classifier", "inception:<weights_path>")


# ---------------------------------------------------------------------------------------------
# The metrics: pure functions of arrays.


def _log_softmax(logits: np.ndarray) -> np.ndarray:
  shifted = logits - np.max(logits, axis=-1, keepdims=True)
  return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _as_logits(logits) -> np.ndarray:
  logits = np.asarray(logits, np.float64)
  if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 1:
    raise ValueError(f"logits must be [N, C] with N, C >= 1, got shape {logits.shape}")
  return logits


def classifier_score_from_logits(logits) -> float:
  """The classifier score (the Inception Score's formula) of a set of images.

      score = exp( 1/N sum_x KL( p(y|x) || p(y) ) ),   p(y) = 1/N sum_x p(y|x)

  with p(y|x) = softmax(logits[x]). Computed in float64 from log-softmax, so confident
  predictions (probabilities that underflow to 0) give no NaN.

  Args:
    logits: [N, C] pre-softmax outputs of any classifier, one row per image.

  Returns:
    The score, in [1, C]: 1 when every image gets the same predicted distribution, C when
    each image is confidently one class and the classes are evenly used.
  """
  log_p = _log_softmax(_as_logits(logits))                             # log p(y|x)  [N, C]
  # log p(y) = log (1/N sum_x p(y|x)) = logsumexp_x log p(y|x) - log N, stably.
  top = np.max(log_p, axis=0)
  log_marginal = top + np.log(np.mean(np.exp(log_p - top), axis=0))  # [C]
  kl = np.sum(np.exp(log_p) * (log_p - log_marginal), axis=-1)        # [N]
  return float(np.exp(np.mean(kl)))


def classifier_score_split(logits, splits: int = 10) -> tuple[float, float]:
  """Mean and standard deviation of the classifier score over `splits` parts of the set.

  The Inception Score convention (Salimans et al.'s code, TF-GAN): the images are cut into
  `splits` contiguous parts, part i being rows [i N // splits, (i + 1) N // splits), the score
  is computed on each, and the mean and the (population, ddof=0) standard deviation returned.
  Shuffle the rows first if their order carries meaning.
  """
  logits = _as_logits(logits)
  n = logits.shape[0]
  if splits < 1 or splits > n:
    raise ValueError(f"splits must be in [1, N] = [1, {n}], got {splits}")
  scores = [classifier_score_from_logits(logits[i * n // splits:(i + 1) * n // splits])
            for i in range(splits)]
  return float(np.mean(scores)), float(np.std(scores))


def _check_images(images, what: str) -> np.ndarray:
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"{what}: images must be [N, H, W, 3], got shape {images.shape}")
  if not (images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating)):
    raise ValueError(f"{what}: images must be uint8 (0..255) or float in [-1, 1], got "
                     f"{images.dtype}")
  return images


def to_pixels(images, value_range: tuple[float, float] | None = None) -> np.ndarray:
  """Images as float32 on the 0..255 scale.

  Args:
    images: [N, H, W, 3] uint8, or float.
    value_range: the (low, high) of the input's scale; default (0, 255) for uint8 and
      (-1, 1), the generator's and the input pipeline's, for floats. Values outside it raise.
  """
  images = _check_images(images, "to_pixels")
  if value_range is None:
    value_range = (0.0, 255.0) if images.dtype == np.uint8 else (-1.0, 1.0)
  low, high = map(float, value_range)
  if not high > low:
    raise ValueError(f"value_range must have high > low, got {value_range}")
  values = images.astype(np.float64)
  if values.size:
    slack = 1e-3 * (high - low)
    if not np.isfinite(values).all():
      raise ValueError("images hold non-finite values")
    if values.min() < low - slack or values.max() > high + slack:
      raise ValueError(
          f"image values span [{values.min():.4g}, {values.max():.4g}], outside the expected "
          f"[{low:g}, {high:g}]; pass uint8 0..255, float in [-1, 1], or say value_range")
  return np.clip((values - low) * (255.0 / (high - low)), 0.0, 255.0).astype(np.float32)


def diversity(images, value_range: tuple[float, float] | None = None) -> float:
  """1 - the mean SSIM over all unordered pairs of the images (Table IV's diversity).

      diversity = 1 - 2 / (n (n - 1)) sum_{i < j} SSIM(x_i, x_j)

  SSIM is scikit-image's `structural_similarity` with its defaults (7x7 uniform window,
  K1 = 0.01, K2 = 0.03), over the colour channels (`channel_axis=-1`, the mean of the
  per-channel SSIMs), on the 0..255 pixel scale (`data_range=255`): float images in [-1, 1]
  are mapped to it first, so a uint8 image and its [-1, 1] float version score the same.

  Args:
    images: [n, H, W, 3] uint8, or float in [-1, 1] (see `value_range`); H, W >= 7.
    value_range: the input's (low, high), as in `to_pixels`.

  Returns:
    0 for identical images, larger for more varied ones (at most 2, as SSIM >= -1); NaN
    when n < 2 (no pair).
  """
  pixels = to_pixels(images, value_range).astype(np.float64)
  if len(pixels) < 2:
    return float("nan")
  ssims = [skimage_metrics.structural_similarity(pixels[i], pixels[j], channel_axis=-1,
                                                 data_range=255.0)
           for i, j in itertools.combinations(range(len(pixels)), 2)]
  return float(1.0 - np.mean(ssims))


# ---------------------------------------------------------------------------------------------
# The classifiers that feed the quality metric.


class SourceTally:
  """The top-k images one source returns over the trials of Table IV (or of one eta of the
  eta sweep, Figure 3): each trial's mean preference and diversity, and the images pooled
  (with the category each was asked for) for the quality score, the category accuracy and
  the Fréchet distance to the real images."""

  def __init__(self):
    self.preference: list[float] = []
    self.diversity: list[float] = []
    self.pooled: list[np.ndarray] = []
    self.categories: list[np.ndarray] = []

  def add(self, preferences, images, category: int | None = None) -> None:
    """One trial: the returned images' preference scores (eq. 6), the uint8 images and the
    category they should show (None: unknown)."""
    self.preference.append(float(np.mean(preferences)))
    self.diversity.append(diversity(images))
    self.pooled.append(images)
    self.categories.append(np.full(len(images), -1 if category is None else int(category)))

  def summary(self, scorer: "QualityScorer", real_features: np.ndarray | None = None) -> dict:
    """Preference and diversity mean +- std over the trials; quality from `scorer` over all
    pooled images, mean +- std over up to 10 splits. When the scorer is the dataset's
    category classifier (`classifies_categories`): `category_accuracy`, the share of pooled
    images it assigns to the category they were asked for, and `category_accuracy_by_category`
    ({category index: that share among the images asked for it}); with `real_features` (its
    features of the real images), `frechet_classifier`, the Fréchet distance between the
    pooled images' features and those."""
    images = np.concatenate(self.pooled)
    logits = scorer.logits(images)
    quality_mean, quality_std = classifier_score_split(
        logits, splits=max(1, min(10, len(images) // 3)))
    preference, spread = np.asarray(self.preference), np.asarray(self.diversity)
    out = {"preference_mean": float(preference.mean()),
           "preference_std": float(preference.std()),
           "quality_mean": float(quality_mean), "quality_std": float(quality_std),
           "diversity_mean": float(np.nanmean(spread)),
           "diversity_std": float(np.nanstd(spread))}
    if getattr(scorer, "classifies_categories", False):
      categories = np.concatenate(self.categories)
      known = categories >= 0
      if known.any():
        hits = logits[known].argmax(axis=1) == categories[known]
        out["category_accuracy"] = float(hits.mean())
        out["category_accuracy_by_category"] = {
            int(c): float(hits[categories[known] == c].mean())
            for c in np.unique(categories[known])}
      if real_features is not None and len(images) >= 2:
        out["frechet_classifier"] = gan_metrics.frechet_distance_of(
            scorer.features(images), real_features)
    return out


def category_classifier(catalog: catalog_lib.Catalog) -> "CategoryClassifierScorer | None":
  """The dataset's category classifier (trained once, cached beside the dataset), or None
  for a catalog of a single category, where no classifier can be trained."""
  return CategoryClassifierScorer(catalog) if catalog.num_categories >= 2 else None


def category_checks(scorer, images, category: int, names) -> list[dict] | None:
  """Does each image still show `category`? Per image, the classifier's probability of it
  and the name (from `names`) of the category it picks; None without a scorer or images."""
  if scorer is None or not len(images):
    return None
  probabilities = np.exp(_log_softmax(scorer.logits(np.stack(images)).astype(np.float64)))
  return [{"category_probability": float(p[category]),
           "classified_as": str(names[int(p.argmax())])} for p in probabilities]


def real_features(scorer, catalog: catalog_lib.Catalog, image_size: int) -> np.ndarray | None:
  """The category classifier's features of every real catalog image decoded at
  `image_size` (the size the designs have), for `SourceTally.summary`; None for a scorer
  whose classes are not the catalog's categories."""
  if not getattr(scorer, "classifies_categories", False):
    return None
  table = input_pipeline.ImageTable(catalog.jpegs, image_size, cache_decoded="always")
  return scorer.features(table.pixels.numpy())


class QualityScorer(Protocol):
  """A classifier turned into a quality metric."""

  name: str  # Printed beside every number the scorer produced.

  def logits(self, images) -> np.ndarray:
    """[N, C] float32 pre-softmax logits of [N, H, W, 3] uint8 or [-1, 1] images."""

  def describe(self) -> str:
    """One sentence: which classifier, its weights, how images are prepared."""


class _LogitsScorer:
  """Batching and the score, shared by the scorers; subclasses define `_forward`."""

  name: str
  batch_size: int

  def _forward(self, pixels: tf.Tensor) -> tf.Tensor:  # float32 0..255 -> logits.
    raise NotImplementedError

  def logits(self, images) -> np.ndarray:
    """[N, C] float32 pre-softmax logits of [N, H, W, 3] uint8 or [-1, 1] float images."""
    pixels = to_pixels(images)
    parts = [self._forward(tf.constant(pixels[start:start + self.batch_size])).numpy()
             for start in range(0, len(pixels), self.batch_size)]
    if not parts:
      raise ValueError("no images to score")
    return np.concatenate(parts).astype(np.float32)

  def score(self, images, splits: int = 1) -> tuple[float, float]:
    """(mean, std) of `classifier_score_split` on the images' logits (std 0 for 1 split)."""
    return classifier_score_split(self.logits(images), splits)


class InceptionScorer(_LogitsScorer):
  """InceptionV3 with ImageNet weights from a local file: the Inception Score's classifier.

  The network is `keras.applications.InceptionV3(weights=None, classifier_activation=None)`,
  so its last Dense layer returns the logits, loaded from `weights_path` (the Keras release
  file `inception_v3_weights_tf_dim_ordering_tf_kernels.h5`, or a Keras `.weights.h5` of the
  same network). Images are resized to 299x299 (bilinear, as TF-GAN's Inception wrapper) and
  passed through `keras.applications.inception_v3.preprocess_input`.

  Args:
    weights_path: the weights file; weights are never downloaded here.
    batch_size: images per forward pass.
  """

  name = "inception_score"

  def __init__(self, weights_path: str | os.PathLike, batch_size: int = 32):
    checks.integer("batch_size", batch_size, 1)
    self.weights_path = str(weights_path or "")
    self.batch_size = batch_size
    if not self.weights_path or not os.path.isfile(self.weights_path):
      module = importlib.import_module(keras.applications.InceptionV3.__module__)
      url = getattr(module, "WEIGHTS_PATH", "the Keras applications release files")
      raise errors.UserError(
          f"Inception weights file {self.weights_path or '(none given)'} not found. Weights "
          f"are never downloaded here: download the Keras release file "
          f"{INCEPTION_WEIGHTS_FILE} (InceptionV3, ImageNet, with the top) yourself from "
          f"{url} and name its path, as the quality metric inception:<path to "
          f"{INCEPTION_WEIGHTS_FILE}>; without it, the offline default quality metric is "
          "the category classifier score ('classifier'), which is not the Inception Score.")
    model = keras.applications.InceptionV3(weights=None, include_top=True,
                                           classifier_activation=None)
    try:
      model.load_weights(self.weights_path)
    except (ValueError, OSError, KeyError) as e:
      raise errors.UserError(
          f"could not load {self.weights_path} into keras.applications.InceptionV3 "
          f"(include_top=True, 299x299, 1000 classes): {e}. Use the Keras release file "
          f"{INCEPTION_WEIGHTS_FILE}.") from e
    self.model = model
    self.num_classes = int(model.output.shape[-1])
    preprocess = keras.applications.inception_v3.preprocess_input

    @tf.function(reduce_retracing=True)
    def forward(pixels):
      size = [INCEPTION_SIZE, INCEPTION_SIZE]
      resized = tf.image.resize(pixels, size, method="bilinear")
      return model(preprocess(resized), training=False)

    self._forward = forward

  def describe(self) -> str:
    return (f"Inception Score: keras.applications.InceptionV3 with the ImageNet weights "
            f"{os.path.abspath(self.weights_path)} ({self.num_classes} classes), images "
            "resized to 299x299 (bilinear) and passed through inception_v3.preprocess_input.")

  @property
  def info(self) -> dict:
    return {"metric": self.name, "description": self.describe(),
            "weights_path": os.path.abspath(self.weights_path),
            "num_classes": self.num_classes}


def _check_categories(catalog: catalog_lib.Catalog) -> None:
  used = np.unique(np.asarray(catalog.item_category))
  if catalog.num_categories < 2 or len(used) < 2:
    raise errors.UserError(
        f"{catalog.name} has {len(used)} item categor{'y' if len(used) == 1 else 'ies'}: the "
        "classifier-score quality metric trains a category classifier, so it needs at least "
        f"two. Use the Inception Score instead: {SCORER_FORMS[1]} (InceptionV3 weights you "
        f"downloaded, {INCEPTION_WEIGHTS_FILE}).")


def train_category_classifier(
    catalog: catalog_lib.Catalog,
    config: features_lib.CategoryCnnFeatures) -> tuple[keras.Model, dict]:
  """The category CNN of `config` trained on the catalog's real images.

  The same training as the `category_cnn` feature source (`features.train_category_cnn`:
  network, split, seed, loop and logs), keeping its classifier.

  Returns:
    model: uint8-scaled-to-[-1, 1] images at `config.image_size` -> [N, num_categories] logits.
    facts: `train_accuracy`, `heldout_accuracy` (None when `holdout_fraction` is 0),
      `majority_class_accuracy`, `num_train`, `num_heldout`, `num_categories`,
      `train_seconds`, `history`.
  """
  _check_categories(catalog)
  trained = features_lib.train_category_cnn(catalog, config)
  return trained.classifier, trained.facts


def _identity(catalog: catalog_lib.Catalog, config: features_lib.CategoryCnnFeatures) -> dict:
  return {"catalog": catalog.name, "num_items": int(catalog.num_items),
          "num_categories": int(catalog.num_categories),
          "config": {"type": type(config).__name__, **dataclasses.asdict(config)}}


class CategoryClassifierScorer(_LogitsScorer):
  """The offline quality metric: a category CNN trained on the dataset's real images.

  The network, training and held-out split are `features.CategoryCnnFeatures`' (its
  configuration is `config`). The trained weights are cached in `cache_dir` (default
  `<catalog.data_path>/features/`, beside the features cache) as
  `category_classifier.weights.h5`, with `category_classifier.json` recording the catalog,
  the configuration and the accuracies; a later construction with the same catalog and
  configuration loads them instead of training. Both files are written atomically, the JSON
  last, so a killed run never leaves a cache that a later run would trust.

  Images of any size are resized to `config.image_size` (bilinear, antialiased, as the input
  pipeline's decoding) and scaled to [-1, 1] as in training.

  Args:
    catalog: the dataset whose real images (and categories) train the classifier.
    config: the network and its training (default `CategoryCnnFeatures()`).
    cache_dir: where the weights are kept; when it cannot be written, the classifier is used
      without caching (a warning says so).
    retrain: train even when a matching cache exists (and replace it).
    batch_size: images per forward pass when scoring.
  """

  def __init__(self, catalog: catalog_lib.Catalog,
               config: features_lib.CategoryCnnFeatures | None = None,
               cache_dir: str | os.PathLike | None = None, retrain: bool = False,
               batch_size: int = 256):
    checks.integer("batch_size", batch_size, 1)
    self.config = config or features_lib.CategoryCnnFeatures()
    self.dataset = catalog.name
    self.batch_size = batch_size
    self.name = (f"classifier_score (category CNN trained on {catalog.name} real images; "
                 "not the Inception Score)")
    self.cache_dir = (pathlib.Path(cache_dir) if cache_dir is not None
                      else features_lib.default_cache_dir(catalog))
    self.weights_path = self.cache_dir / f"{CLASSIFIER_KEY}.weights.h5"
    self.meta_path = self.cache_dir / f"{CLASSIFIER_KEY}.json"
    identity = _identity(catalog, self.config)
    loaded = None if retrain else self._load(identity, catalog.num_categories)
    if loaded is not None:
      self.model, facts = loaded
      self.info = {**facts, "cached": True, "cache_path": str(self.weights_path)}
    else:
      self.model, self.info = self._train_and_cache(catalog, identity)
    self.num_classes = int(catalog.num_categories)
    self.classifies_categories = True  # Its classes are the catalog's categories.
    self.info.update(metric=self.name, description=self.describe())

    model = self.model

    @tf.function(reduce_retracing=True, autograph=False)  # No Python control flow.
    def classify(pixels):
      return model((pixels - 127.5) / 127.5, training=False)  # input_pipeline.scale_images

    self._classify = classify
    penultimate = keras.Model(model.inputs, model.get_layer("features").output)

    @tf.function(reduce_retracing=True, autograph=False)
    def embed(pixels):
      return penultimate((pixels - 127.5) / 127.5, training=False)

    self._embed = embed

  def features(self, images) -> np.ndarray:
    """[N, feature_dim] float32 penultimate-layer features of [N, H, W, 3] uint8 or [-1, 1]
    images (resized as for `logits`): the space of the classifier Fréchet distance
    (`gan_metrics.frechet_distance_of`; not FID, which uses Inception)."""
    pixels = to_pixels(images)
    size = self.config.image_size
    parts = []
    for start in range(0, len(pixels), self.batch_size):
      batch = tf.constant(pixels[start:start + self.batch_size])
      if batch.shape[1] != size or batch.shape[2] != size:
        batch = tf.image.resize(batch, [size, size], method="bilinear", antialias=True)
      parts.append(self._embed(batch).numpy())
    if not parts:
      raise ValueError("no images to embed")
    return np.concatenate(parts).astype(np.float32)

  def _forward(self, pixels: tf.Tensor) -> tf.Tensor:
    size = self.config.image_size
    if pixels.shape[1] != size or pixels.shape[2] != size:
      pixels = tf.image.resize(pixels, [size, size], method="bilinear", antialias=True)
    return self._classify(pixels)

  @property
  def heldout_accuracy(self) -> float | None:
    """Accuracy on the items held out of training (None when none were held out)."""
    return self.info.get("heldout_accuracy")

  def describe(self) -> str:
    accuracy = self.heldout_accuracy
    return (f"Classifier score: the Inception Score's formula exp(E_x KL(p(y|x) || p(y))) "
            f"with a small category CNN trained on {self.dataset}'s real "
            f"{self.config.image_size}x{self.config.image_size} images in place of Inception "
            f"({self.info.get('num_categories')} categories; held-out accuracy "
            f"{'n/a' if accuracy is None else f'{accuracy:.3f}'} on "
            f"{self.info.get('num_heldout')} items, majority class "
            f"{self.info.get('majority_class_accuracy', float('nan')):.3f}). It is not the "
            "Inception Score and not comparable with the paper's.")

  def _load(self, identity: dict, num_categories: int):
    """(model, facts) from the cache when it exists and matches `identity`, else None."""
    facts = cache.read_stamp(self.meta_path, identity, "category classifier")
    if facts is None or not self.weights_path.is_file():
      return None
    try:
      model, _ = self.config.build(num_categories)
      model.load_weights(self.weights_path)
    except (OSError, ValueError, KeyError) as e:
      logging.warning("category classifier cache %s unreadable (%s); retraining",
                      self.weights_path, e)
      return None
    logging.info("category classifier for %s read from %s (held-out accuracy %s)",
                 identity["catalog"], self.weights_path, facts.get("heldout_accuracy"))
    return model, facts

  def _train_and_cache(self, catalog: catalog_lib.Catalog, identity: dict):
    logging.info("category classifier: training on %d real images of %s for the quality "
                 "metric", catalog.num_items, catalog.name)
    started = time.time()
    model, facts = train_category_classifier(catalog, self.config)
    facts = {**identity, **facts, "seconds": time.time() - started}
    def write_weights():
      with files.atomic_path(self.weights_path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)

    stored = cache.store(self.meta_path, facts, "category classifier", write_weights)
    return model, {**facts, "cached": False,
                   "cache_path": str(self.weights_path) if stored else None}


def quality_scorer_from_name(name: str | None, catalog: catalog_lib.Catalog | None = None,
                             **kwargs) -> QualityScorer:
  """A quality scorer from a command-line string.

  - `classifier` (or empty, the default): `CategoryClassifierScorer(catalog, **kwargs)`;
    keyword arguments that are `CategoryCnnFeatures` fields (`epochs=...`) configure its
    network, the others (`cache_dir`, `retrain`, `batch_size`, `config`) the scorer;
  - `inception:<weights_path>`: `InceptionScorer(weights_path, **kwargs)`.
  """
  name = (name or "classifier").strip()
  try:
    if name == "classifier":
      if catalog is None:
        raise errors.ConfigError("the classifier quality metric needs the dataset's catalog")
      fields = {f.name for f in dataclasses.fields(features_lib.CategoryCnnFeatures)}
      network = {k: kwargs.pop(k) for k in list(kwargs) if k in fields}
      if network:
        base = kwargs.pop("config", None) or features_lib.CategoryCnnFeatures()
        kwargs["config"] = dataclasses.replace(base, **network)
      return CategoryClassifierScorer(catalog, **kwargs)
    if name.startswith("inception:") and name[len("inception:"):]:
      return InceptionScorer(name[len("inception:"):], **kwargs)
  except TypeError as e:  # Unknown keyword for that scorer.
    raise errors.ConfigError(f"quality metric {name!r}: {e}") from e
  raise errors.ConfigError(
      f"unknown quality metric {name!r}; use one of: {', '.join(SCORER_FORMS)}")


__all__ = [
    "CategoryClassifierScorer", "INCEPTION_WEIGHTS_FILE", "InceptionScorer", "QualityScorer",
    "SourceTally", "category_checks", "category_classifier", "classifier_score_from_logits",
    "classifier_score_split", "diversity", "quality_scorer_from_name", "real_features",
    "to_pixels", "train_category_classifier",
]
