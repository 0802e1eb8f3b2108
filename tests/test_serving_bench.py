"""benchmarks/serving_bench.py at its tiny size: the held-out users' fold-in figures, the
agreement with trained users, the latencies and the export's size, in the JSON and the table."""

import json

import numpy as np

from benchmarks import serving_bench


def test_hide_users_removes_only_their_training_interactions(tiny_catalog):
  partial, hidden = serving_bench.hide_users(tiny_catalog, 0.2, seed=0)
  test_users = np.unique(tiny_catalog.interactions("test")[0])
  assert len(hidden) == round(0.2 * len(test_users)) and np.isin(hidden, test_users).all()
  users, _ = partial.interactions("train")
  assert not np.isin(users, hidden).any()
  for split in ("validation", "test"):
    np.testing.assert_array_equal(partial.interactions(split)[0],
                                  tiny_catalog.interactions(split)[0])
  kept = ~np.isin(tiny_catalog.interactions("train")[0], hidden)
  assert len(users) == kept.sum()


def test_spearman_against_hand_worked_ranks():
  assert serving_bench.spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0])) == 1.0
  assert serving_bench.spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == -1.0
  # Ranks (0, 2, 1) against (0, 1, 2): 1 - 6 * 2 / (3 * 8) = 0.5.
  np.testing.assert_allclose(
      serving_bench.spearman(np.array([0.0, 5.0, 1.0]), np.array([0.0, 1.0, 2.0])), 0.5)


def test_tiny_run_writes_every_figure(tiny_data_dir, tmp_path):
  output = tmp_path / "serving.json"
  document = serving_bench.run(serving_bench.SIZES["tiny"], str(tiny_data_dir), str(output))
  assert json.loads(output.read_text())["fold_in"] == json.loads(json.dumps(document["fold_in"]))
  quality = document["fold_in"]
  for key in ("auc_test_hidden_folded_in", "auc_test_hidden_initial_theta", "auc_test_trained",
              "spearman_median", "spearman_p10"):
    assert np.isfinite(quality[key]), key
  assert quality["hidden_users"] > 0 and quality["spearman_users"] > 0
  for label in ("demo", "amazon_fashion_size"):
    latency = document["latency"][label]
    assert latency["size_bytes"] > 0
    for name in ("recommend_1_user", "recommend_256_users", "recommend_for_items_5_liked",
                 "similar_items_1_item"):
      assert 0 < latency[name]["p50_ms"] <= latency[name]["p99_ms"]
  assert "folded in from their training items" in output.with_suffix(".md").read_text()
