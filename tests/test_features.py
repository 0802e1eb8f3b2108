"""Feature sources: file alignment (.npy, .npz, VBPR binary), keras.applications with local
weights, the category CNN, the cache, and source names."""

import dataclasses

import keras
import numpy as np
import pytest

from dvbpr_tf.core import errors
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.features import sources as features


def write_vbpr_features(path, ids, rows):
  """The VBPR datasets' binary format: per record a 10-byte ASCII id, then float32 values."""
  with open(path, "wb") as f:
    for source_id, row in zip(ids, rows):
      f.write(source_id.encode("ascii").ljust(features.VBPR_ID_BYTES))
      f.write(np.asarray(row, "<f4").tobytes())


@pytest.fixture(name="asin_catalog")
def fixture_asin_catalog(tiny_catalog, tmp_path):
  """The tiny catalog with Amazon-style 10-character item ids and its own data folder."""
  ids = np.array([f"B{i:09d}" for i in range(tiny_catalog.num_items)], dtype=object)
  return dataclasses.replace(tiny_catalog, source_ids=ids, data_path=str(tmp_path / "data"))


def _random_rows(n, dim, seed=0):
  return np.random.default_rng(seed).normal(size=[n, dim]).astype(np.float32)


def test_npy_rows_are_items(asin_catalog, tmp_path):
  expected = _random_rows(asin_catalog.num_items, 7)
  np.save(tmp_path / "f.npy", expected.astype(np.float64))
  got, info = features.FileFeatures(str(tmp_path / "f.npy")).compute(asin_catalog)
  assert got.dtype == np.float32
  np.testing.assert_array_equal(got, expected)
  assert info["format"] == "npy" and info["missing_items"] == 0

  np.save(tmp_path / "short.npy", expected[:-1])
  with pytest.raises(features.FeatureSourceError, match=rf"\[{asin_catalog.num_items}, D\]"):
    features.FileFeatures(str(tmp_path / "short.npy")).compute(asin_catalog)


def test_npz_aligned_by_source_id(asin_catalog, tmp_path):
  n = asin_catalog.num_items
  expected = _random_rows(n, 5)
  order = np.random.default_rng(1).permutation(n)
  ids = np.concatenate([asin_catalog.source_ids[order].astype(str), ["X000000001"]])
  rows = np.concatenate([expected[order], np.full([1, 5], 99.0, np.float32)])
  np.savez(tmp_path / "f.npz", source_ids=ids, features=rows)
  got, info = features.FileFeatures(str(tmp_path / "f.npz")).compute(asin_catalog)
  np.testing.assert_array_equal(got, expected)
  assert info["file_items"] == n + 1 and info["missing_items"] == 0

  # Two catalog items absent: an error naming how many, or zeros when allowed.
  np.savez(tmp_path / "part.npz", source_ids=ids[2:], features=rows[2:])
  with pytest.raises(features.FeatureSourceError, match=f"^2 of the catalog's {n} items"):
    features.FileFeatures(str(tmp_path / "part.npz")).compute(asin_catalog)
  got, info = features.FileFeatures(str(tmp_path / "part.npz"),
                                    allow_missing=True).compute(asin_catalog)
  assert info["missing_items"] == 2
  np.testing.assert_array_equal(got[order[:2]], 0.0)
  np.testing.assert_array_equal(got[order[2:]], expected[order[2:]])

  np.savez(tmp_path / "bad.npz", ids=ids, features=rows)
  with pytest.raises(features.FeatureSourceError, match="needs `source_ids`"):
    features.FileFeatures(str(tmp_path / "bad.npz")).compute(asin_catalog)


def test_vbpr_binary_read_in_catalog_order(asin_catalog, tmp_path):
  n, dim = asin_catalog.num_items, 6
  expected = _random_rows(n, dim, seed=2)
  order = np.random.default_rng(3).permutation(n)
  # Records in file order: unrelated items, then the catalog's items shuffled, one of them
  # twice (the first record wins).
  ids = ["Z000000001", "Z000000002"] + list(asin_catalog.source_ids[order]) + [
      asin_catalog.source_ids[order[0]]]
  rows = np.concatenate([np.full([2, dim], -5.0), expected[order], np.full([1, dim], 7.0)])
  path = tmp_path / "image_features_tiny.b"
  write_vbpr_features(path, ids, rows)
  assert path.stat().st_size == len(ids) * (10 + 4 * dim)

  source = features.FileFeatures(str(path), dim=dim, chunk_records=16)
  assert source.format == "vbpr_binary" and source.key == "file-image_features_tiny"
  got, info = source.compute(asin_catalog)
  np.testing.assert_array_equal(got, expected)
  assert info["missing_items"] == 0
  assert info["records_read"] <= len(ids)  # It stops once every catalog item is found.

  # A catalog item missing from the file.
  write_vbpr_features(path, ids[:-2], rows[:-2])  # Drops the last item of `order` (and dup).
  with pytest.raises(features.FeatureSourceError) as raised:
    features.FileFeatures(str(path), dim=dim).compute(asin_catalog)
  message = str(raised.value)
  assert message.startswith(f"1 of the catalog's {n} items")
  assert repr(asin_catalog.source_ids[order[-1]]) in message and "'Z000000001'" in message
  got, info = features.FileFeatures(str(path), dim=dim, allow_missing=True).compute(
      asin_catalog)
  assert info["missing_items"] == 1 and not got[order[-1]].any()

  # The wrong dimension cannot divide the file into records.
  with pytest.raises(features.FeatureSourceError, match="not a multiple"):
    features.FileFeatures(str(path), dim=dim + 1).compute(asin_catalog)


def test_vbpr_binary_default_dim_is_4096(asin_catalog, tmp_path):
  ids = list(asin_catalog.source_ids[:3])
  rows = _random_rows(3, features.VBPR_DIM)
  write_vbpr_features(tmp_path / "f.b", ids, rows)
  small = dataclasses.replace(asin_catalog, num_items=3, source_ids=asin_catalog.source_ids[:3])
  got, _ = features.FileFeatures(str(tmp_path / "f.b")).compute(small)
  np.testing.assert_array_equal(got, rows)


def test_missing_file(asin_catalog, tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.npy"):
    features.FileFeatures(str(tmp_path / "nope.npy")).compute(asin_catalog)


def test_keras_application_matches_the_layer(tiny_catalog, tmp_path):
  size = 32  # The smallest VGG16 input: fast, and fc2 is still 4096-d.
  model = keras.applications.VGG16(weights=None, include_top=True,
                                   input_shape=(size, size, 3))
  weights = tmp_path / "vgg16.weights.h5"
  model.save_weights(weights)
  source = features.KerasApplicationFeatures("VGG16", str(weights), "fc2", input_size=size,
                                             batch_size=64)
  got, info = features.load_features(tiny_catalog, source, cache_dir=tmp_path / "cache")

  pixels = input_pipeline.ImageTable(tiny_catalog.jpegs, size).pixels.numpy()
  fc2 = keras.Model(model.inputs, model.get_layer("fc2").output)
  expected = fc2.predict(keras.applications.vgg16.preprocess_input(
      pixels.astype(np.float32)), batch_size=64, verbose=0)
  assert got.shape == (tiny_catalog.num_items, 4096) and info["dim"] == 4096
  assert np.abs(expected).max() > 0
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
  assert source.key == "keras-vgg16-fc2" and info["source"] == "keras-vgg16-fc2"

  with pytest.raises(errors.ConfigError, match="no layer 'fc9'"):
    dataclasses.replace(source, layer="fc9").build()


def test_keras_missing_weights_is_never_downloaded(tmp_path):
  path = str(tmp_path / "vgg16_weights.h5")
  with pytest.raises(errors.UserError) as raised:
    features.KerasApplicationFeatures("VGG16", path).build()
  message = str(raised.value)
  assert path in message and "never downloaded" in message
  assert "vgg16_weights_tf_dim_ordering_tf_kernels.h5" in message
  with pytest.raises(errors.ConfigError, match="unknown keras application"):
    features.KerasApplicationFeatures("VGG17", path)


SMALL_CNN = dict(image_size=32, width=8, feature_dim=32, epochs=20, batch_size=16,
                 learning_rate=3e-3)


def test_category_cnn_and_cache(tiny_catalog, tmp_path, monkeypatch):
  source = features.CategoryCnnFeatures(**SMALL_CNN)
  got, info = features.load_features(tiny_catalog, source, cache_dir=tmp_path)
  assert got.shape == (tiny_catalog.num_items, 32) and got.dtype == np.float32
  assert np.isfinite(got).all() and got.std() > 0
  # Well above the majority class (10 classes, about 0.13); seeds 0-3 give 0.47-0.54.
  assert info["train_accuracy"] > info["majority_class_accuracy"] + 0.2, info
  assert info["num_heldout"] == round(0.1 * tiny_catalog.num_items)
  assert 0 <= info["heldout_accuracy"] <= 1
  assert not info["cached"] and info["source"] == "category_cnn"
  assert (tmp_path / "category_cnn.npy").is_file() and (tmp_path / "category_cnn.json").is_file()

  # The second call reads the cache and does not recompute.
  def must_not_run(self, catalog):
    raise AssertionError("recomputed")
  monkeypatch.setattr(features.CategoryCnnFeatures, "compute", must_not_run)
  again, info2 = features.load_features(tiny_catalog, source, cache_dir=tmp_path)
  np.testing.assert_array_equal(again, got)
  assert info2["cached"] and info2["train_accuracy"] == info["train_accuracy"]

  # Another configuration under the same key is recomputed, not served from the cache.
  monkeypatch.setattr(features.CategoryCnnFeatures, "compute",
                      lambda self, catalog: (np.ones([catalog.num_items, 3]), {}))
  other, info3 = features.load_features(
      tiny_catalog, dataclasses.replace(source, epochs=1), cache_dir=tmp_path)
  assert other.shape == (tiny_catalog.num_items, 3) and not info3["cached"]


def test_category_cnn_needs_categories(tiny_catalog):
  one = dataclasses.replace(tiny_catalog, category_names=("none",),
                            item_category=np.zeros(tiny_catalog.num_items, np.int32))
  with pytest.raises(features.FeatureSourceError, match="needs at least two"):
    features.CategoryCnnFeatures(**SMALL_CNN).compute(one)


def test_default_cache_dir_and_unwritable_fallback(asin_catalog, tmp_path):
  rows = _random_rows(asin_catalog.num_items, 4)
  np.save(tmp_path / "f.npy", rows)
  source = features.FileFeatures(str(tmp_path / "f.npy"))
  got, info = features.load_features(asin_catalog, source)
  cache = tmp_path / "data" / "features"
  assert info["cache_path"] == str(cache / "file-f.npy")
  assert (cache / "file-f.json").is_file()
  np.testing.assert_array_equal(np.load(cache / "file-f.npy"), rows)
  assert not list(cache.glob(".*tmp"))  # No temporary left behind.
  _, info = features.load_features(asin_catalog, source)
  assert info["cached"]

  # A changed features file invalidates the cache (its size and time are recorded).
  np.save(tmp_path / "f.npy", rows[:, :2])
  got, info = features.load_features(asin_catalog, source)
  assert not info["cached"] and got.shape == (asin_catalog.num_items, 2)

  # A cache folder that cannot be created: computed anyway, nothing cached.
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  got, info = features.load_features(asin_catalog, source, cache_dir=blocker / "features")
  assert info["cache_path"] is None and got.shape == (asin_catalog.num_items, 2)


def test_feature_source_from_name():
  assert features.feature_source_from_name(None) == features.CategoryCnnFeatures()
  assert features.feature_source_from_name("category_cnn", epochs=2).epochs == 2
  assert features.feature_source_from_name("file:/d/x.b") == features.FileFeatures("/d/x.b")
  assert features.feature_source_from_name(
      "file:/d/x.b", allow_missing=True).allow_missing
  source = features.feature_source_from_name("keras:VGG16:/w/vgg16.h5")
  assert source == features.KerasApplicationFeatures("VGG16", "/w/vgg16.h5", "fc2")
  source = features.feature_source_from_name("keras:VGG19:/w/vgg19.h5:fc1")
  assert (source.application, source.weights_path, source.layer) == (
      "VGG19", "/w/vgg19.h5", "fc1")
  for bad in ("imagenet", "keras:VGG16", "file:"):
    with pytest.raises(errors.ConfigError, match="unknown feature source"):
      features.feature_source_from_name(bad)
  with pytest.raises(errors.ConfigError, match="unexpected keyword"):
    features.feature_source_from_name("category_cnn", nonsense=1)
  for source in (features.CategoryCnnFeatures(), features.FileFeatures("a/b.npz"),
                 features.KerasApplicationFeatures()):
    assert source.key and source.describe().endswith(".")
