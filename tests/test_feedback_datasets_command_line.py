"""The command line on hm_fashion and fashion_catalog, built from their dummy manual dirs."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

HM_DUMMY_DATA = REPO / "datasets" / "hm_fashion" / "dummy_data"
CATALOG_DUMMY_DATA = REPO / "datasets" / "fashion_catalog" / "dummy_data"


def _main(*args, timeout=300):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-m", "experiments.main", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("tfds")


def test_dataset_command_prints_the_statistics(data_dir, tmp_path):
  done = _main("--experiment=dataset", "--dataset=fashion_catalog", f"--data_dir={data_dir}",
               f"--manual_dir={CATALOG_DUMMY_DATA}", f"--workdir={tmp_path / 'run'}")
  assert done.returncode == 0, done.stderr[-3000:]
  assert "Dataset statistics: fashion_catalog/default" in done.stdout
  assert '"undecodable_images": 2' in done.stdout and "cold_item_share" in done.stdout
  assert "items_without_image = 1" in done.stderr  # The warning names the item.
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert results["dataset"] == "fashion_catalog/default"


def test_recommendation_smoke_run_on_hm_fashion(data_dir, tmp_path):
  work = tmp_path / "run"
  done = _main("--experiment=recommendation", "--dataset=hm_fashion", "--preset=smoke",
               f"--data_dir={data_dir}", f"--manual_dir={HM_DUMMY_DATA}", f"--workdir={work}")
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads((work / "results.json").read_text())
  assert results["dataset"] == "hm_fashion/sample_1pct"
  assert 0.0 <= results["auc_test"] <= 1.0
  assert results["dataset_statistics"]["num_users"] == 10
  assert (work / "export" / "dvbpr" / "saved_model.pb").exists()


def test_table3_smoke_run_on_fashion_catalog_with_the_time_split(data_dir, tmp_path):
  """Also the grid's selection on a subset of validation users (then every user for the
  winner)."""
  work = tmp_path / "table3"
  done = _main("--experiment=table3", "--dataset=fashion_catalog/time", "--preset=smoke",
               f"--data_dir={data_dir}", f"--manual_dir={CATALOG_DUMMY_DATA}",
               f"--workdir={work}", "--params_override=baselines.selection_users=5")
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads((work / "results.json").read_text())
  for method in ("rand", "poprank", "warp", "bpr_mf", "visrank", "fm", "vbpr", "dvbpr"):
    assert 0.0 <= results[method]["auc_test"] <= 1.0, method
  for method in ("warp", "bpr_mf", "fm", "vbpr"):
    assert results[method]["num_users_valid_selection"] == 5, method
    assert results[method]["grid"][0]["auc_test"] is None, method  # Only the winner's.
  table = (work / "table3.md").read_text()
  assert "| All Items |" in table and "Split: time-aware (each user's latest" in table
  assert results["split"].startswith("time-aware")


def test_missing_manual_files_give_one_line(tmp_path):
  (tmp_path / "manual").mkdir()
  (tmp_path / "manual" / "articles.csv").write_text("article_id,product_group_name\n")
  done = _main("--experiment=dataset", "--dataset=hm_fashion", f"--data_dir={tmp_path / 'd'}",
               f"--manual_dir={tmp_path / 'manual'}", f"--workdir={tmp_path / 'run'}",
               timeout=120)
  assert done.returncode != 0
  assert "transactions_train.csv" in done.stderr
  assert "Traceback" not in done.stderr
