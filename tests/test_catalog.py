"""The tiny embedded dataset: split, statistics, determinism, names."""

import json
import pathlib

import numpy as np
import pytest

from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf_datasets.common import records
from tests.conftest import SHOPPERS_DUMMY_DATA


def test_split_is_the_papers_leave_one_out(tiny_catalog):
  c = tiny_catalog
  for split in ("validation", "test"):
    users, _ = c.interactions(split)
    np.testing.assert_array_equal(np.sort(users), np.arange(c.num_users))
  train = set(zip(*c.interactions("train")))
  for split in ("validation", "test"):
    assert not train & set(zip(*c.interactions(split)))
  assert not set(zip(*c.interactions("validation"))) & set(zip(*c.interactions("test")))
  assert np.all(np.bincount(c.users) >= 5)


def test_statistics_are_recorded_next_to_the_data(tiny_catalog):
  stats = json.loads((__import__("pathlib").Path(tiny_catalog.data_path)
                      / "metadata.json").read_text())["statistics"]
  for key in ("num_users", "num_items", "num_interactions", "num_train",
              "observations_per_item_mean", "cold_item_share", "dropped"):
    assert key in stats, key
  assert stats["num_items"] == tiny_catalog.num_items
  assert stats["num_interactions"] == len(tiny_catalog.users)
  assert stats["num_train"] == int(np.sum(tiny_catalog.splits == records.TRAIN))


def test_oracle_auc_is_the_planted_models_exact_auc(tiny_catalog):
  """The planted model's AUC (evaluation/planted.py, cached beside the records) against a
  brute-force loop over users on planted_model.npz."""
  from dvbpr_tf.evaluation import planted as planted_lib  # pylint: disable=g-import-not-at-top
  from dvbpr_tf_datasets.fashion_mnist_shoppers import simulation  # pylint: disable=g-import-not-at-top
  figures = planted_lib.planted_statistics(tiny_catalog)
  planted = np.load(f"{tiny_catalog.data_path}/planted_model.npz")
  c = tiny_catalog
  train_counts = np.bincount(c.items[c.splits == records.TRAIN], minlength=c.num_items)
  all_aucs, cold_aucs = [], []
  for user, item in zip(*c.interactions("test")):
    v = (simulation.preference(planted["ideal"][[user]], planted["style"],
                               float(planted["taste_strength"]))[0] + planted["log_popularity"])
    negatives = np.setdiff1d(np.arange(c.num_items), c.items[c.users == user])
    all_aucs.append(np.mean(v[item] > v[negatives]))
    if train_counts[item] < 5:
      cold = negatives[train_counts[negatives] < 5]
      cold_aucs.append(np.mean(v[item] > v[cold]))
  assert figures["oracle_auc_test"] == pytest.approx(np.mean(all_aucs), abs=1e-12)
  assert figures["oracle_auc_test_cold"] == pytest.approx(np.mean(cold_aucs), abs=1e-12)
  assert figures["num_users_cold_test"] == len(cold_aucs)
  assert 0.5 < figures["oracle_auc_test"] <= 1.0
  # Cached: the second call reads planted_auc.json instead of computing.
  assert (pathlib.Path(c.data_path) / planted_lib.CACHE_FILE).is_file()
  assert planted_lib.planted_statistics(tiny_catalog) == figures


def test_style_is_a_function_of_the_stored_pixels(tiny_catalog):
  """The planted style is recomputed from the decoded JPEGs (not from ids)."""
  import io  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from dvbpr_tf_datasets.fashion_mnist_shoppers import simulation  # pylint: disable=g-import-not-at-top
  planted = np.load(f"{tiny_catalog.data_path}/planted_model.npz")
  pixels = np.stack([np.asarray(Image.open(io.BytesIO(j)).convert("RGB"))
                     for j in tiny_catalog.jpegs])
  raw = simulation.raw_style(pixels)
  # Standardisation used all rendered images (also those nobody picked): compare up to an
  # affine map per coordinate.
  for k in range(raw.shape[1]):
    assert abs(np.corrcoef(raw[:, k], planted["style"][:, k])[0, 1]) > 0.999


def test_tiny_config_is_deterministic(tiny_catalog, tmp_path):
  again = catalog_lib.load_catalog("fashion_mnist_shoppers/tiny", data_dir=str(tmp_path),
                                   manual_dir=str(SHOPPERS_DUMMY_DATA))
  for field in ("users", "items", "splits", "item_category"):
    np.testing.assert_array_equal(getattr(again, field), getattr(tiny_catalog, field))
  assert list(again.jpegs) == list(tiny_catalog.jpegs)


def test_dataset_names():
  assert catalog_lib.resolve_dataset("fashion_mnist_shoppers") == (
      "fashion_mnist_shoppers", "demo")
  assert catalog_lib.resolve_dataset("amazon_fashion") == ("dvbpr_authors", "amazon_fashion")
  assert catalog_lib.resolve_dataset("fashion_mnist_shoppers/tiny") == (
      "fashion_mnist_shoppers", "tiny")
  with pytest.raises(catalog_lib.DatasetNotFoundError, match="unknown dataset 'nope'"):
    catalog_lib.resolve_dataset("nope")
  with pytest.raises(catalog_lib.DatasetNotFoundError, match="no config 'huge'"):
    catalog_lib.get_builder("fashion_mnist_shoppers/huge", data_dir=None)


def test_missing_build_is_reported(tmp_path):
  with pytest.raises(FileNotFoundError, match="not built"):
    catalog_lib.load_catalog("fashion_mnist_shoppers/tiny", data_dir=str(tmp_path), build=False)


def test_missing_source_files_name_the_places_looked(tmp_path, monkeypatch):
  from dvbpr_tf_datasets.fashion_mnist_shoppers import fashion_mnist_shoppers_dataset_builder as b  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(b, "DEBIAN_DIR", str(tmp_path / "no_debian"))
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  def offline(*args, **kwargs):
    raise ConnectionError("no network in tests")

  monkeypatch.setattr(tfds.download.DownloadManager, "download", offline)
  empty = tmp_path / "manual"
  empty.mkdir()
  with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
    catalog_lib.load_catalog("fashion_mnist_shoppers/tiny", data_dir=str(tmp_path / "d"),
                             manual_dir=str(empty))


def test_learnable_ceiling_sits_between_random_and_the_oracle(tiny_catalog):
  from dvbpr_tf.evaluation import planted as planted_lib  # pylint: disable=g-import-not-at-top
  figures = planted_lib.planted_statistics(tiny_catalog)
  assert figures["learnable_reg"] in planted_lib.LEARNABLE_REGS
  for key in ("test", "test_cold", "valid"):
    assert 0.5 < figures[f"learnable_auc_{key}"] < figures[f"oracle_auc_{key}"] + 0.02, key


def test_bpr_on_fixed_features_recovers_a_planted_taste():
  from dvbpr_tf.evaluation import planted as planted_lib  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  features = rng.normal(size=(300, 4)) * [1.0, 3.0, 0.5, 2.0]
  truth = rng.normal(size=(20, 4))
  users, items = [], []
  for u in range(20):  # Each user picks the 15 items it values most.
    best = np.argsort(-(features @ truth[u]))[:15]
    users += [u] * 15
    items += best.tolist()
  theta = planted_lib.fit_bpr_on_features(features, np.array(users), np.array(items), 20,
                                          reg=0.01)
  cosine = np.sum(theta * truth, 1) / (np.linalg.norm(theta, axis=1)
                                       * np.linalg.norm(truth, axis=1))
  assert np.median(cosine) > 0.9, cosine
