"""The paper-scale grid benchmark (benchmarks/paper_grid_bench.py) and its synthetic catalog,
at their tiny size."""

import numpy as np
import pytest

from benchmarks import paper_grid_bench
from benchmarks import synthetic
from dvbpr_tf.data import catalog as catalog_lib


def test_long_tailed_split_has_the_sizes_the_tail_and_every_item():
  users, items, splits = synthetic.long_tailed_split(2000, 3000, 16000, seed=1)
  assert len(users) == 16000
  per_user = np.bincount(users, minlength=2000)
  assert per_user.min() >= 3 and per_user.max() > 5 * np.median(per_user)  # Heavy users.
  assert np.all(np.bincount(splits, minlength=3)[1:] == 2000)  # One validation, one test each.
  counts = np.bincount(items, minlength=3000)
  assert counts.min() >= 1  # Every item bought.
  top = np.sort(counts)[::-1]
  assert top[:30].sum() > 0.1 * counts.sum()  # The top 1% of items: over 10% of the sales.
  last = np.flatnonzero(np.r_[users[1:] != users[:-1], True])
  assert np.all(splits[last] == catalog_lib.TEST) and np.all(splits[last - 1] == catalog_lib.VALIDATION)


def test_item_features_are_non_negative_and_shaped():
  features = synthetic.item_features(50, 12, seed=0, rank=4)
  assert features.shape == (50, 12) and features.dtype == np.float32
  assert features.min() >= 0.0 and 0.2 < (features > 0).mean() < 0.8


def test_tiny_grid_runs_every_method_probes_the_feature_models_and_counts_visrank(tmp_path):
  config = paper_grid_bench.SIZES["tiny"]
  document = paper_grid_bench.run(config, tmp_path)
  assert set(document["methods"]) == set(paper_grid_bench.METHODS)
  for name in ("rand", "poprank", "bpr_mf", "warp"):
    record = document["methods"][name]
    assert 0.0 <= record["auc_test"] <= 1.0 and record["seconds"] > 0, name
  for name in ("bpr_mf", "warp"):
    assert document["methods"][name]["points"] == 2
    assert document["methods"][name]["num_users_valid_selection"] == 20
    assert document["methods"][name]["train_pairs_per_second"] > 0  # Kept for the winner.
  pairs = 600 - 2 * 60  # Every user holds out a validation and a test item.
  extrapolated = 0.0
  for name in paper_grid_bench.FEATURE_MODELS:  # Timed on a few steps, not grid-searched.
    record = document["methods"][name]
    rates = record["train_pairs_per_second_by_K"]
    assert set(rates) == set(config.dims) and min(rates.values()) > 0, name
    expected = sum(len(config.regs) * config.epochs * pairs / rate for rate in rates.values())
    assert record["extrapolated_grid_training_seconds"] == pytest.approx(expected), name
    extrapolated += expected
  assert document["total_with_extrapolated_seconds"] == pytest.approx(
      document["total_seconds"] + extrapolated)
  visrank = document["visrank"]
  assert visrank["multiply_adds"] == visrank["distance_rows"] * 120 * 16
  text = paper_grid_bench.markdown(document)
  assert "VisRank, one exact evaluation" in text and "fm, timed on 6 steps per K" in text
