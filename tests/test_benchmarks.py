"""The benchmarks at their tiny size: they run, their JSON is complete, their ratios are finite
and positive, and the fast exact AUC equals the reference. Goals are not asserted (timings on a
shared machine are noise)."""

import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import common
from benchmarks import evaluation_bench
from benchmarks import input_pipeline_bench
from benchmarks import run as run_lib
from benchmarks import synthetic

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def document(tmp_path_factory):
  results = run_lib.run_benchmarks([], "tiny")
  report = run_lib.report(results, "tiny", common.machine_info(), "test", 0.0)
  path = run_lib.write_json(report, tmp_path_factory.mktemp("bench") / "tiny.json")
  return json.loads(path.read_text())


def _finite_positive(value) -> bool:
  return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_every_benchmark_ran_with_finite_positive_ratios(document):
  assert [b["name"] for b in document["benchmarks"]] == list(run_lib.BENCHMARKS)
  for benchmark in document["benchmarks"]:
    assert benchmark["comparisons"], benchmark["name"]
    assert isinstance(benchmark["config"], dict) and benchmark["title"]
    for row in benchmark["comparisons"]:
      assert _finite_positive(row["ratio"]), row
      for side in ("a", "b"):
        rate = row[side]
        assert isinstance(rate["label"], str) and rate["label"]
        assert isinstance(rate["unit"], str) and rate["unit"].endswith("/s")
        assert rate["repeats"] and all(_finite_positive(r) for r in rate["repeats"])
        assert rate["median"] == pytest.approx(float(np.median(rate["repeats"])))
      # The ratio is the median of the paired per-repeat ratios, recomputed here.
      paired = [x / y for x, y in zip(row["a"]["repeats"], row["b"]["repeats"])]
      assert row["ratio"] == pytest.approx(float(np.median(paired)))
      if row["goal_ratio"] is None:
        assert row["met"] is None and row["goal"] == ""
      else:
        assert _finite_positive(row["goal_ratio"]) and isinstance(row["met"], bool)
        if row["met"]:  # A goal said to be met is met by the recorded ratio.
          assert row["ratio"] >= row["goal_ratio"], row


def test_the_goals_are_the_benchmarks_targets(document):
  goals = {row["name"]: row["goal_ratio"] for b in document["benchmarks"]
           for row in b["comparisons"]}
  assert goals["input_pipeline"] == 3.0
  assert goals["training_feed"] == 0.9
  assert goals["evaluation"] == 0.8


def test_machine_facts_are_recorded(document):
  machine = document["machine"]
  assert machine["cpu_count"] == os.cpu_count()
  for key in ("platform", "tensorflow", "cpu_model", "date"):
    assert machine[key]


def test_fast_exact_auc_equals_the_reference_on_the_tiny_case(document):
  evaluation = next(b for b in document["benchmarks"] if b["name"] == "evaluation")
  agreement = evaluation["details"]["agreement_on_subset"]
  assert agreement["identical"]
  assert agreement["users_differing"] == 0
  assert agreement["embeddings"] == agreement["numpy"]
  assert evaluation["details"]["auc"]["num_users"] == evaluation["config"]["num_users"]


def test_authors_auc_loop_matches_its_definition():
  # 1 user, 4 items, all sampled (num_samples = num_items): train {0}, test 1 (score 2).
  # Items 2 (score 1) and 3 (score 3) remain: one of two below -> 0.5.
  theta = np.array([[1.0]])
  phi = np.array([[5.0], [2.0], [1.0], [3.0]])
  auc = evaluation_bench.authors_sampled_auc(theta, phi, {0: [{"productid": 0}]},
                                             {0: [{"productid": 1}]}, 4, num_samples=4)
  assert auc == 0.5


def test_authors_loader_batches():
  jpegs = synthetic.product_jpegs(12, 40)
  user_items = [[0, 1, 2], [3, 4]]
  with input_pipeline_bench.AuthorsLoader(jpegs, user_items, image_size=24, batch_size=5,
                                          queue_capacity=10) as loader:
    batch = loader.next_batch()
  assert batch["pos_image"].shape == (5, 24, 24, 3) and batch["pos_image"].dtype == np.uint8
  assert batch["neg_image"].shape == (5, 24, 24, 3)
  for u, i, j in zip(batch["user"], batch["pos"], batch["neg"]):
    assert i in user_items[u] and j not in user_items[u]


def test_interleaving_alternates_the_order_and_ratios_pair_repeats():
  calls = []
  rates = common.interleaved([lambda: calls.append("a") or 2.0,
                              lambda: calls.append("b") or 4.0], repeats=3)
  assert calls == ["a", "b", "b", "a", "a", "b"]
  assert rates == [[2.0] * 3, [4.0] * 3]
  a = common.Rate("a", "x/s", (1.0, 10.0, 3.0))
  b = common.Rate("b", "x/s", (2.0, 10.0, 1.0))
  assert common.paired_ratio(a, b) == 1.0  # median of 0.5, 1, 3
  row = common.compare("r", a, b, minimum=1.0)
  assert row.met and row.goal_ratio == 1.0
  assert not common.compare("r", a, b, minimum=1.5).met
  assert not common.compare("r", a, b, minimum=1.0, extra_condition=False).met
  assert common.compare("r", a, b, minimum=None).met is None


def test_unknown_benchmark_is_refused():
  with pytest.raises(ValueError, match="unknown benchmark"):
    run_lib.resolve(["nope"])


def test_command_line_prints_the_table_and_writes_json(tmp_path):
  output = tmp_path / "design.json"
  completed = subprocess.run(
      [sys.executable, "-m", "benchmarks.run", "--size=tiny", "--only=design",
       f"--output={output}"],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=True)
  assert "design" in completed.stdout and "ratio" in completed.stdout
  written = json.loads(output.read_text())
  assert written["size"] == "tiny" and [b["name"] for b in written["benchmarks"]] == ["design"]
  assert "--only=design" in written["command"]
