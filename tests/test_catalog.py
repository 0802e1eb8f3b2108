"""The tiny embedded dataset: split, statistics, determinism, names."""

import json

import numpy as np
import pytest

from dvbpr_tf import catalog as catalog_lib
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
              "observations_per_item_mean", "cold_item_share", "dropped",
              "oracle_auc_test", "oracle_auc_test_cold"):
    assert key in stats, key
  assert stats["num_items"] == tiny_catalog.num_items
  assert stats["num_interactions"] == len(tiny_catalog.users)
  assert stats["num_train"] == int(np.sum(tiny_catalog.splits == records.TRAIN))
  assert 0.5 < stats["oracle_auc_test"] <= 1.0


def test_oracle_auc_is_the_planted_models_exact_auc(tiny_catalog):
  """Recomputes the oracle from planted_model.npz with the project's AUC."""
  from dvbpr_tf import metrics  # pylint: disable=g-import-not-at-top
  from dvbpr_tf_datasets.fashion_mnist_shoppers import simulation  # pylint: disable=g-import-not-at-top
  planted = np.load(f"{tiny_catalog.data_path}/planted_model.npz")
  score_rows = lambda u: (simulation.preference(planted["ideal"][u], planted["style"],
                                                float(planted["taste_strength"]))
                          + planted["log_popularity"][None, :])
  result = metrics.auc_all_and_cold(score_rows, tiny_catalog.heldout("test"),
                                    tiny_catalog.train_counts)
  assert result["auc"] == pytest.approx(tiny_catalog.statistics["oracle_auc_test"])
  assert result["auc_cold"] == pytest.approx(tiny_catalog.statistics["oracle_auc_test_cold"])


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
