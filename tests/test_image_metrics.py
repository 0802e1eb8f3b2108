"""Table IV's image metrics: the classifier score against SciPy, diversity against a
brute-force SSIM loop, the InceptionV3 wrapper with local weights, and the category-classifier
scorer (training, cache, reload)."""

import dataclasses
import itertools
import math

import keras
import numpy as np
import pytest
from scipy import special
from scipy import stats
from skimage import metrics as skimage_metrics
import tensorflow as tf

from dvbpr_tf.core import errors
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.evaluation import image_metrics
from dvbpr_tf.features import sources as features


def scipy_classifier_score(logits):
  """The oracle: exp(mean_x KL(p(y|x) || p(y))) with SciPy's softmax and KL (entropy)."""
  p = special.softmax(np.asarray(logits, np.float64), axis=-1)
  marginal = p.mean(axis=0)
  return math.exp(np.mean([stats.entropy(row, marginal) for row in p]))


# ---------------------------------------------------------------------------------------------
# classifier_score_from_logits and its split variant.


def test_uniform_predictions_score_one():
  # p(y|x) = 1/C for every x, so p(y) = p(y|x) and every KL is 0: exp(0) = 1.
  assert image_metrics.classifier_score_from_logits(np.zeros([6, 4])) == pytest.approx(1.0)
  # The same prediction for every image, whatever it is, also gives 1.
  same = np.tile([[3.0, -1.0, 0.5]], [5, 1])
  assert image_metrics.classifier_score_from_logits(same) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("confidence", [30.0, 1e4])
def test_confident_and_evenly_spread_scores_num_classes(confidence):
  # Each image one-hot in class i % C, 3 images per class: p(y) = 1/C, KL = log C, score C.
  # At 1e4 the other probabilities underflow to exactly 0: still no NaN.
  num_classes = 5
  logits = confidence * np.eye(num_classes)[np.arange(3 * num_classes) % num_classes]
  score = image_metrics.classifier_score_from_logits(logits)
  assert score == pytest.approx(num_classes, rel=1e-9)
  # Confident but all in one class: back to 1.
  assert image_metrics.classifier_score_from_logits(
      confidence * np.eye(num_classes)[np.zeros(6, int)]) == pytest.approx(1.0)


def test_hand_worked_two_images():
  # p(y|x1) = (3/4, 1/4), p(y|x2) = (1/4, 3/4): p(y) = (1/2, 1/2);
  # KL = 3/4 log(3/2) + 1/4 log(1/2) for both, so the score is (3/2)^(3/4) (1/2)^(1/4).
  logits = np.log([[0.75, 0.25], [0.25, 0.75]])
  expected = 1.5**0.75 * 0.5**0.25  # 1.1397535...
  assert image_metrics.classifier_score_from_logits(logits) == pytest.approx(expected, 1e-12)


def test_matches_scipy_on_random_logits():
  rng = np.random.default_rng(0)
  for n, c, scale in [(1, 3, 1.0), (7, 10, 2.0), (50, 4, 5.0), (20, 1000, 3.0)]:
    logits = scale * rng.normal(size=[n, c])
    got = image_metrics.classifier_score_from_logits(logits)
    assert got == pytest.approx(scipy_classifier_score(logits), rel=1e-10)
    assert 1.0 - 1e-12 <= got <= c
    # Logits are defined up to a constant per row (softmax's invariance).
    shifted = logits + rng.normal(size=[n, 1]) * 100
    assert image_metrics.classifier_score_from_logits(shifted) == pytest.approx(got, 1e-9)
    # float32 inputs and TF tensors are accepted.
    assert image_metrics.classifier_score_from_logits(
        tf.constant(logits, tf.float32)) == pytest.approx(got, rel=1e-5)


def test_split_variant():
  rng = np.random.default_rng(1)
  logits = 3.0 * rng.normal(size=[23, 6])
  # The IS convention: part i is rows [i N // splits, (i + 1) N // splits); population std.
  parts = [scipy_classifier_score(logits[i * 23 // 4:(i + 1) * 23 // 4]) for i in range(4)]
  mean, std = image_metrics.classifier_score_split(logits, splits=4)
  assert mean == pytest.approx(np.mean(parts), rel=1e-10)
  assert std == pytest.approx(np.std(parts), rel=1e-10) and std > 0
  whole = image_metrics.classifier_score_split(logits, splits=1)
  assert whole == pytest.approx((scipy_classifier_score(logits), 0.0), rel=1e-10)
  with pytest.raises(ValueError, match="splits"):
    image_metrics.classifier_score_split(logits, splits=24)
  with pytest.raises(ValueError, match="splits"):
    image_metrics.classifier_score_split(logits, splits=0)
  with pytest.raises(ValueError, match=r"\[N, C\]"):
    image_metrics.classifier_score_from_logits(np.zeros([0, 3]))


# ---------------------------------------------------------------------------------------------
# diversity.


def brute_force_diversity(images_uint8):
  pairs = itertools.combinations(range(len(images_uint8)), 2)
  return 1.0 - np.mean([skimage_metrics.structural_similarity(
      images_uint8[i], images_uint8[j], channel_axis=-1, data_range=255) for i, j in pairs])


def test_diversity_of_identical_images_is_zero():
  image = np.random.default_rng(2).integers(0, 256, [1, 16, 16, 3], dtype=np.uint8)
  assert image_metrics.diversity(np.repeat(image, 3, 0)) == pytest.approx(0.0, abs=1e-12)
  floats = np.repeat(image, 4, 0) / 127.5 - 1.0
  assert image_metrics.diversity(floats) == pytest.approx(0.0, abs=1e-12)


def test_diversity_matches_a_loop_over_pairs():
  rng = np.random.default_rng(3)
  images = rng.integers(0, 256, [5, 20, 24, 3], dtype=np.uint8)
  expected = brute_force_diversity(images)
  got = image_metrics.diversity(images)
  assert got > 0.5  # Independent noise images are far from similar.
  assert got == pytest.approx(expected, rel=1e-10)
  # The same images as floats in [-1, 1] (the generator's scale) give the same diversity.
  assert image_metrics.diversity(images / 127.5 - 1.0) == pytest.approx(expected, rel=1e-6)
  # Smooth images that share structure are less diverse than noise.
  base = np.linspace(0, 200, 20 * 24 * 3).reshape([1, 20, 24, 3])
  near = np.clip(base + rng.normal(0, 5, [4, 20, 24, 3]), 0, 255).astype(np.uint8)
  assert 0 < image_metrics.diversity(near) < got
  assert image_metrics.diversity(near) == pytest.approx(brute_force_diversity(near), 1e-10)


def test_diversity_needs_two_images_and_checks_input():
  one = np.zeros([1, 8, 8, 3], np.uint8)
  assert math.isnan(image_metrics.diversity(one))
  assert math.isnan(image_metrics.diversity(one[:0]))
  with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
    image_metrics.diversity(np.zeros([2, 8, 8], np.uint8))
  with pytest.raises(ValueError, match="outside the expected"):
    image_metrics.diversity(np.full([2, 8, 8, 3], 200.0))  # Floats on the 0..255 scale.
  # ... unless the scale is said.
  assert image_metrics.diversity(np.full([2, 8, 8, 3], 200.0),
                                 value_range=(0, 255)) == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# The InceptionV3 wrapper.


def test_inception_missing_weights_is_never_downloaded(tmp_path):
  path = str(tmp_path / "inception_v3.h5")
  with pytest.raises(errors.UserError) as raised:
    image_metrics.InceptionScorer(path)
  message = str(raised.value)
  assert path in message and "never downloaded" in message
  assert "inception_v3_weights_tf_dim_ordering_tf_kernels.h5" in message
  with pytest.raises(errors.UserError, match="not found"):
    image_metrics.quality_scorer_from_name(f"inception:{path}", None)


def test_inception_logits_match_the_models_softmax(tmp_path):
  model = keras.applications.InceptionV3(weights=None)  # Softmax top, random weights.
  weights = tmp_path / "inception.weights.h5"
  model.save_weights(weights)
  scorer = image_metrics.InceptionScorer(str(weights), batch_size=2)
  assert scorer.name == "inception_score" and scorer.num_classes == 1000

  images = np.random.default_rng(4).integers(0, 256, [2, 64, 64, 3], dtype=np.uint8)
  logits = scorer.logits(images)
  assert logits.shape == (2, 1000) and logits.dtype == np.float32

  inputs = keras.applications.inception_v3.preprocess_input(
      tf.image.resize(images.astype(np.float32), [299, 299], method="bilinear").numpy())
  probabilities = model.predict(inputs, verbose=0)
  np.testing.assert_allclose(special.softmax(logits.astype(np.float64), axis=-1),
                             probabilities, rtol=1e-4, atol=1e-9)
  # The logits themselves: the pooled features times the top's kernel plus its bias.
  pooled = keras.Model(model.inputs, model.get_layer("avg_pool").output).predict(
      inputs, verbose=0)
  kernel, bias = model.get_layer("predictions").get_weights()
  np.testing.assert_allclose(logits, pooled @ kernel + bias, rtol=1e-4, atol=1e-5)
  assert logits.std() > 0
  # The same images as floats in [-1, 1].
  np.testing.assert_allclose(scorer.logits(images / 127.5 - 1.0), logits, rtol=1e-4,
                             atol=1e-5)

  junk = tmp_path / "junk.h5"
  junk.write_bytes(b"not an HDF5 file")
  with pytest.raises(errors.UserError, match="could not load"):
    image_metrics.InceptionScorer(str(junk))


# ---------------------------------------------------------------------------------------------
# The category classifier (the offline default).

# Seeds 0-3 reach held-out accuracies 0.31, 0.33, 0.24, 0.26 on 42 held-out items (10
# categories, majority class about 0.14), in about 2 s each.
SMALL_CLASSIFIER = features.CategoryCnnFeatures(
    image_size=32, width=8, feature_dim=32, epochs=20, batch_size=16, learning_rate=3e-3,
    holdout_fraction=0.3, seed=0)


@pytest.fixture(name="catalog", scope="module")
def fixture_catalog(tiny_catalog, tmp_path_factory):
  """The tiny catalog with a data folder of its own (the default cache goes there)."""
  return dataclasses.replace(tiny_catalog, data_path=str(tmp_path_factory.mktemp("data")))


@pytest.fixture(name="scorer", scope="module")
def fixture_scorer(catalog):
  return image_metrics.CategoryClassifierScorer(catalog, SMALL_CLASSIFIER)


def test_category_classifier_trains_and_is_named(scorer, catalog):
  info = scorer.info
  assert not info["cached"]
  assert info["num_heldout"] == round(0.3 * catalog.num_items)
  chance = max(info["majority_class_accuracy"], 1 / catalog.num_categories)
  assert scorer.heldout_accuracy == info["heldout_accuracy"]
  assert scorer.heldout_accuracy > chance + 0.05, info
  assert scorer.name == ("classifier_score (category CNN trained on "
                         "fashion_mnist_shoppers/tiny real images; not the Inception Score)")
  for text in (scorer.name, scorer.describe(), info["metric"], info["description"]):
    assert "not the Inception Score" in text and "inception_score" not in text
  assert f"{scorer.heldout_accuracy:.3f}" in scorer.describe()
  # Cached beside the features cache: <data_path>/features/.
  cache = features.default_cache_dir(catalog)
  assert (cache / "category_classifier.weights.h5").is_file()
  assert (cache / "category_classifier.json").is_file()
  assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # No temporary files.


def real_images(catalog, size=64):
  return input_pipeline.ImageTable(catalog.jpegs, size).pixels.numpy()


def test_category_classifier_score_prefers_varied_real_images(scorer, catalog):
  pixels = real_images(catalog)  # 64x64, resized to the classifier's 32x32.
  per_class = np.min(np.bincount(catalog.item_category))
  balanced = np.concatenate([np.flatnonzero(catalog.item_category == k)[:per_class]
                             for k in range(catalog.num_categories)])
  logits = scorer.logits(pixels[balanced])
  assert logits.shape == (len(balanced), catalog.num_categories)
  varied = image_metrics.classifier_score_from_logits(logits)
  copies = image_metrics.classifier_score_from_logits(
      scorer.logits(np.repeat(pixels[balanced[:1]], len(balanced), 0)))
  assert copies == pytest.approx(1.0, abs=1e-5)
  assert varied > 1.5, varied  # Seeds 0-3: 1.7-2.2.
  assert scorer.score(pixels[balanced]) == pytest.approx((varied, 0.0), rel=1e-6)
  # [-1, 1] floats of the same images: the same logits; batch size does not matter.
  np.testing.assert_allclose(scorer.logits(pixels[balanced] / 127.5 - 1.0), logits,
                             rtol=1e-4, atol=1e-4)
  # At the classifier's own size, the images go in as they were trained on.
  small = real_images(catalog, 32)[:5]
  expected = scorer.model((small.astype(np.float32) - 127.5) / 127.5, training=False)
  np.testing.assert_allclose(scorer.logits(small), expected, rtol=1e-5, atol=1e-5)


def test_category_classifier_cache_reloads_without_training(scorer, catalog, monkeypatch):
  def must_not_train(catalog, config):
    raise AssertionError("retrained")
  monkeypatch.setattr(image_metrics, "train_category_classifier", must_not_train)
  again = image_metrics.quality_scorer_from_name("classifier", catalog,
                                                 config=SMALL_CLASSIFIER)
  assert isinstance(again, image_metrics.CategoryClassifierScorer)
  assert again.info["cached"] and again.heldout_accuracy == scorer.heldout_accuracy
  pixels = real_images(catalog, 32)[:20]
  np.testing.assert_allclose(again.logits(pixels), scorer.logits(pixels), rtol=1e-6,
                             atol=1e-6)
  assert again.name == scorer.name

  # Another configuration is trained, not served from the cache; so is retrain=True.
  trained = []

  def fake_train(catalog, config):
    trained.append(config)
    return config.build(catalog.num_categories)[0], {"heldout_accuracy": 0.5,
                                                     "majority_class_accuracy": 0.1}
  monkeypatch.setattr(image_metrics, "train_category_classifier", fake_train)
  other = image_metrics.quality_scorer_from_name(
      None, catalog, config=SMALL_CLASSIFIER, epochs=1, cache_dir=catalog.data_path + "/x")
  assert trained[-1].epochs == 1 and trained[-1].width == 8 and not other.info["cached"]
  image_metrics.CategoryClassifierScorer(catalog, SMALL_CLASSIFIER,
                                         cache_dir=catalog.data_path + "/x", retrain=True)
  assert len(trained) == 2


def test_quality_scorer_names_and_errors(catalog):
  with pytest.raises(errors.ConfigError, match="unknown quality metric"):
    image_metrics.quality_scorer_from_name("inception_score", catalog)
  with pytest.raises(errors.ConfigError, match="unknown quality metric"):
    image_metrics.quality_scorer_from_name("inception:", catalog)
  with pytest.raises(errors.ConfigError, match="nonsense"):
    image_metrics.quality_scorer_from_name("classifier", catalog, nonsense=1)
  with pytest.raises(errors.ConfigError, match="catalog"):
    image_metrics.quality_scorer_from_name("classifier", None)
  one = dataclasses.replace(catalog, category_names=("none",),
                            item_category=np.zeros(catalog.num_items, np.int32))
  with pytest.raises(errors.UserError, match="needs at least two"):
    image_metrics.CategoryClassifierScorer(one, SMALL_CLASSIFIER, retrain=True)


def test_classifier_features_give_a_frechet_distance_that_separates_sets(scorer, catalog):
  from dvbpr_tf.evaluation import gan_metrics  # pylint: disable=g-import-not-at-top
  pixels = real_images(catalog)
  features = scorer.features(pixels)
  assert features.shape == (len(pixels), scorer.config.feature_dim)
  np.testing.assert_allclose(scorer.features(pixels[:7]), features[:7], rtol=1e-5, atol=1e-5)
  rng = np.random.default_rng(0)
  order = rng.permutation(len(pixels))
  half = len(pixels) // 2
  halves = gan_metrics.frechet_distance_of(features[order[:half]], features[order[half:]])
  noise = rng.integers(0, 256, (half, 64, 64, 3), dtype=np.uint8)
  against_noise = gan_metrics.frechet_distance_of(scorer.features(noise), features)
  assert against_noise > 5 * halves, (against_noise, halves)


class _FixedScorer:
  """A category classifier stand-in: the logits and features are the images' mean colour."""

  classifies_categories = True
  name = "fixed"

  def logits(self, images):
    return np.asarray(images, np.float32).mean(axis=(1, 2))  # 3 "categories": R, G, B.

  def features(self, images):
    return self.logits(images) / 255.0


def _solid(colour, n):
  return np.broadcast_to(np.asarray(colour, np.uint8), (n, 8, 8, 3)).copy()


def test_source_tally_category_accuracy_and_frechet_against_numpy():
  from dvbpr_tf.evaluation import gan_metrics  # pylint: disable=g-import-not-at-top
  tally = image_metrics.SourceTally()
  red, green = _solid((200, 10, 10), 3), _solid((10, 200, 10), 3)
  red[1, 0, 0] = (0, 0, 0)  # Keeps the diversity finite, changes no class.
  tally.add([1.0, 2.0, 3.0], red, category=0)    # All three classified red: right.
  tally.add([0.0, 0.0, 0.0], green, category=2)  # Green, asked for blue: wrong.
  scorer = _FixedScorer()
  real = np.random.default_rng(0).uniform(0, 1, (50, 3))
  summary = tally.summary(scorer, real_features=real)
  assert summary["category_accuracy"] == pytest.approx(0.5)
  assert summary["category_accuracy_by_category"] == {0: 1.0, 2: 0.0}
  pooled = scorer.features(np.concatenate([red, green]))
  assert summary["frechet_classifier"] == pytest.approx(
      gan_metrics.frechet_distance_of(pooled, real))
  assert summary["preference_mean"] == pytest.approx(1.0)
  unknown = image_metrics.SourceTally()
  unknown.add([1.0, 1.0, 1.0], red)  # No category given: no accuracy.
  assert "category_accuracy" not in unknown.summary(scorer)
  class NotCategories(_FixedScorer):
    classifies_categories = False
  assert "category_accuracy" not in tally.summary(NotCategories(), real_features=real)
