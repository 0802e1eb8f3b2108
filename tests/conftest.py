"""Shared fixtures: a tiny fashion_mnist_shoppers catalog built from the builder's dummy data."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # pylint: disable=g-import-not-at-top
import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

REPO = pathlib.Path(__file__).resolve().parents[1]
SHOPPERS_DUMMY_DATA = REPO / "datasets" / "fashion_mnist_shoppers" / "dummy_data"

tfds.disable_progress_bar()


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> pathlib.Path:
  """A TFDS data dir holding fashion_mnist_shoppers/tiny built from dummy_data/."""
  from dvbpr_tf.data import catalog  # pylint: disable=g-import-not-at-top
  data_dir = tmp_path_factory.mktemp("tfds")
  catalog.load_catalog("fashion_mnist_shoppers/tiny", data_dir=str(data_dir),
                       manual_dir=str(SHOPPERS_DUMMY_DATA))
  return data_dir


@pytest.fixture(scope="session")
def tiny_catalog(tiny_data_dir):
  from dvbpr_tf.data import catalog  # pylint: disable=g-import-not-at-top
  return catalog.load_catalog("fashion_mnist_shoppers/tiny", data_dir=str(tiny_data_dir),
                              build=False)
