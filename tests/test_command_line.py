"""The command line end to end: the smoke run, and one-line errors for bad flags."""

import concurrent.futures
import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests import report_checks
from tests.conftest import REPO, SHOPPERS_DUMMY_DATA

NAMES = ("t_shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
         "bag", "ankle_boot")  # The tiny data's categories.


def _main(*args, timeout=300):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-m", "experiments.main", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def test_recommendation_run_results_resume_and_refusal(tiny_data_dir, demo_run):
  """The DVBPR part of the smoke demo is a `--experiment=recommendation` run in its own work
  dir: its outputs, then the same command there resumes it, and another configuration is
  refused."""
  work = demo_run[0] / "dvbpr"
  results = json.loads((work / "results.json").read_text())
  for key in ("experiment", "dataset", "preset", "config", "dataset_statistics", "auc_valid",
              "auc_test", "auc_test_cold", "auc_test_sampled100", "auc_valid_cold",
              "auc_valid_sampled100", "best_epoch", "wall_time_seconds",
              "train_pairs_per_second", "oracle_auc_test", "oracle_auc_test_cold",
              "learnable_auc_test", "learnable_auc_test_cold"):
    assert key in results, key
  assert results["experiment"] == "recommendation"
  assert results["dataset"] == "fashion_mnist_shoppers/tiny"
  assert 0.0 <= results["auc_test"] <= 1.0
  assert (work / "config.json").exists()
  assert (work / "export" / "dvbpr" / "saved_model.pb").exists()
  projector = work / "logs" / "projector"
  for name in ("sprite.png", "metadata.tsv", "projector_config.pbtxt"):
    assert (projector / name).exists(), name
  found = report_checks.check_report(work, min_numbers=10, min_images=1)
  assert found["images"] == ["figures/learning_curve.png"]
  assert found["numbers"]["auc_test"] == results["auc_test"]

  # The same command again resumes the finished run: same figures, no retraining.
  again = _main("--experiment=recommendation", "--preset=smoke", f"--workdir={work}",
                f"--data_dir={tiny_data_dir}", f"--manual_dir={SHOPPERS_DUMMY_DATA}")
  assert again.returncode == 0, again.stderr[-3000:]
  assert "DVBPR exact AUC (test)" in again.stdout
  rerun = json.loads((work / "results.json").read_text())
  assert rerun["auc_test"] == results["auc_test"]
  assert rerun["steps"] == results["steps"]
  # Another configuration in the same work dir is refused, and nothing is touched.
  other = _main("--experiment=recommendation", "--preset=smoke", f"--workdir={work}",
                f"--data_dir={tiny_data_dir}", "--embedding_dim=12")
  assert other.returncode != 0
  assert "holds a run with another configuration" in other.stderr
  assert json.loads((work / "results.json").read_text()) == rerun


@pytest.mark.parametrize("flags, message", [
    (["--dataset=no_such_data"], "unknown dataset 'no_such_data'"),
    (["--embedding_dim=0"], "--embedding_dim (dvbpr.tower.embedding_dim) must be at least 1"),
    (["--batch_size=-4"], "must be at least 1, got -4"),
    (["--params_override=gan.learning_rate=0"], "gan.learning_rate must be a finite number > 0"),
    (["--params_override=dvbpr.tower.size=3"], "TowerConfig has no field 'size'"),
])
def test_bad_flags_give_one_line_and_write_nothing(tmp_path, flags, message):
  work = tmp_path / "run"
  done = _main("--experiment=recommendation", "--preset=smoke", f"--workdir={work}",
               f"--data_dir={tmp_path / 'data'}", *flags, timeout=120)
  assert done.returncode != 0
  assert message in done.stderr
  assert "Traceback" not in done.stderr
  assert not work.exists()


@pytest.mark.parametrize("flags, message", [
    (["--experiment=demo", "--learning_rate=1e-3"],
     "--learning_rate would change dvbpr.optimizer.learning_rate and gan.learning_rate with "
     "--experiment=demo; say which, e.g. --params_override=dvbpr.optimizer.learning_rate="),
    (["--experiment=table3", "--epochs=3"], "--epochs would change baselines.epochs and "
                                            "dvbpr.train.epochs"),
    (["--experiment=gan", "--dropout=0.1"], "--dropout has no effect with --experiment=gan"),
])
def test_a_shortcut_never_changes_two_models(tmp_path, flags, message):
  work = tmp_path / "run"
  done = _main(*flags, "--preset=smoke", f"--workdir={work}",
               f"--data_dir={tmp_path / 'data'}", timeout=120)
  assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
  assert not work.exists()


def test_table3_smoke_run_and_resume(tiny_data_dir, tmp_path):
  work = tmp_path / "table3"
  flags = ["--experiment=table3", "--preset=smoke", f"--workdir={work}",
           f"--data_dir={tiny_data_dir}", f"--manual_dir={SHOPPERS_DUMMY_DATA}",
           "--params_override=baselines.beyond_paper=true"]
  done = _main(*flags)
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads((work / "results.json").read_text())
  for method in ("rand", "poprank", "warp", "bpr_mf", "visrank", "fm", "vbpr", "dvbpr"):
    for key in ("auc_valid", "auc_test", "auc_test_cold", "auc_test_sampled100", "oracle"):
      assert key in results[method], (method, key)
  assert results["bpr_mf"]["params"] == {"K": 10, "reg": 0.01}
  assert results["features"]["source"] == "category_cnn"
  table = (work / "table3.md").read_text()
  assert "| All Items |" in table and "| Cold Items |" in table and "oracle" in table
  assert (work / "table3.csv").read_text().startswith("metric,setting,rand,rand_low,rand_high")
  # Top-K beside the AUC, each with its users' interval; the paired tests against DVBPR.
  for method in ("rand", "poprank", "warp", "bpr_mf", "visrank", "fm", "vbpr", "dvbpr"):
    low, high = results[method]["ci95"]["auc_test"]
    assert low <= results[method]["auc_test"] <= high, method
    assert 0.0 <= results[method]["ndcg20_test_cold_all_items"] <= 1.0
  assert set(results["paired_tests"]["auc_test"]) == {
      "rand", "poprank", "warp", "bpr_mf", "visrank", "fm", "vbpr", "ease", "item_knn"}
  assert "## Top-K on the full ranking (test)" in table and "## Paired tests" in table
  # Beyond the paper's columns: EASE and ItemKNN, each at its best validation grid value.
  assert "(i) EASE" in table and "(j) ItemKNN (content)" in table
  assert set(results["ease"]["params"]) == {"penalty"}
  assert len(results["item_knn"]["grid"]) == 4
  assert "ease" in results["paired_tests"]["auc_test"]
  found = report_checks.check_report(work, min_numbers=8 * 4)
  assert found["numbers"]["vbpr.auc_test_cold"] == results["vbpr"]["auc_test_cold"]
  # A rerun keeps the methods already done instead of training them again.
  again = _main(*flags)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "already done" in again.stderr
  assert json.loads((work / "results.json").read_text())["vbpr"] == results["vbpr"]


def test_single_baseline_run(tiny_data_dir, tmp_path):
  work = tmp_path / "bpr"
  done = _main("--experiment=recommendation", "--model=bpr_mf", "--preset=smoke",
               f"--workdir={work}", f"--data_dir={tiny_data_dir}", "--reg=0.1",
               "--embedding_dim=8")
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads((work / "results.json").read_text())
  assert results["model"] == "bpr_mf" and results["params"] == {"K": 8, "reg": 0.1}
  assert 0.0 <= results["auc_test"] <= 1.0
  report_checks.check_report(work, min_numbers=6)


def test_gan_run_outputs(demo_run):
  """The GAN part of the smoke demo is a `--experiment=gan` run in its own work dir."""
  work = demo_run[0] / "gan"
  results = json.loads((work / "results.json").read_text())
  assert results["model"] == "gan"
  assert set(results["final_losses"]) == {"d_loss", "g_loss", "d_real", "d_fake"}
  assert results["images_per_second"] > 0
  for name in ("samples.png", "nearest_neighbours.png"):
    assert (work / "figures" / name).stat().st_size > 0
  assert (work / "export" / "gan" / "saved_model.pb").exists()
  found = report_checks.check_report(work, min_numbers=8, min_images=2)
  assert found["numbers"]["images_per_second"] == results["images_per_second"]


def test_design_and_tailoring_smoke_runs(tiny_data_dir, tmp_path, demo_run):
  """Design, tailoring, Table IV and the eta sweep over the demo run's trained models
  (--dvbpr_workdir, --gan_workdir); the default of training them in sub-dirs is what the
  demo itself does."""
  models = demo_run[0]
  common = ["--preset=smoke", f"--data_dir={tiny_data_dir}", "--user=3",
            f"--dvbpr_workdir={models / 'dvbpr'}", f"--gan_workdir={models / 'gan'}"]
  commands = {"design": ["--experiment=design", "--category=bag"],
              "tailoring": ["--experiment=tailoring", "--item=5"],
              "table4": ["--experiment=table4", "--trials=2", "--params_override="
                         "design.synthesis.start=retrieved,"
                         "design.synthesis.start_inversion_steps=5"],
              "eta_sweep": ["--experiment=eta_sweep", "--trials=1",
                            "--params_override=design.etas=0;1;10,"
                            "design.synthesis.start=retrieved,"
                            "design.synthesis.start_inversion_steps=5"]}
  # Two at a time, each in its own work dir (they only read the trained models).
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    runs = dict(zip(commands, pool.map(
        lambda name: _main(*commands[name], *common, f"--workdir={tmp_path / name}"),
        commands)))

  work, done = tmp_path / "design", runs["design"]

  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads((work / "results.json").read_text())
  assert len(results["retrieved"]) == 3 and len(results["generated"]) == 3
  for row in results["retrieved"] + results["generated"]:  # Does each still show a bag?
    assert 0 <= row["category_probability"] <= 1 and row["classified_as"] in NAMES
  assert (work / "figures" / "design_user3_bag.png").exists()
  assert not (work / "dvbpr").exists() and not (work / "gan").exists()  # Reused, not trained.
  report_checks.check_report(work, min_numbers=6, min_images=1)

  work, done = tmp_path / "tailoring", runs["tailoring"]
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads((work / "results.json").read_text())
  assert [it["step"] for it in results["iterations"]] == [0, 10, 20, 30, 40, 50]
  assert all(0 <= it["category_probability"] <= 1 for it in results["iterations"])
  report_checks.check_report(work, min_numbers=14, min_images=1)

  work, done = tmp_path / "table4", runs["table4"]
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads((work / "results.json").read_text())
  # The paper's four sources, and the synthesis from delta's codes asked for by the override.
  for source in ("random_real", "random_generated", "retrieval", "synthesis",
                 "tailored_retrieval"):
    for key in ("preference_mean", "preference_std", "quality_mean", "quality_std",
                "diversity_mean", "diversity_std"):
      assert key in results[source], (source, key)
    assert 0 <= results[source]["category_accuracy"] <= 1
    assert results[source]["frechet_classifier"] >= 0
  assert "not the Inception Score" in results["quality_metric"]
  assert "| delta-hat from delta's codes |" in (work / "table4.md").read_text()
  assert (work / "table4.csv").read_text().count("\ntailored_retrieval,") == 1
  report_checks.check_report(work, min_numbers=30)

  work, done = tmp_path / "eta_sweep", runs["eta_sweep"]
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads((work / "results.json").read_text())
  assert [c["eta"] for c in results["curves"]] == [0.0, 1.0, 10.0]
  assert all(0 <= c["category_accuracy"] <= 1 for c in results["curves"])
  assert set(results["trend"]) == {"preference", "quality", "diversity"}
  assert (work / "eta_sweep.csv").exists() and (work / "figures" / "eta_sweep.png").exists()
  report_checks.check_report(work, min_numbers=9, min_images=1)


@pytest.fixture(scope="module")
def demo_run(tiny_data_dir, tmp_path_factory):
  """The smoke demo, run once: (its work dir, the finished process)."""
  work = tmp_path_factory.mktemp("demo") / "demo"
  done = _main("--experiment=demo", "--preset=smoke", f"--workdir={work}",
               f"--data_dir={tiny_data_dir}")
  assert done.returncode == 0, done.stderr[-3000:]
  return work, done


def test_demo_smoke_run(demo_run):
  work, done = demo_run
  results = json.loads((work / "results.json").read_text())
  assert results["experiment"] == "demo"
  for part in ("design", "tailoring"):  # Each in its own run folder, with its own report.
    assert (work / part / "figures").exists() and results[part]["figure"].endswith(".png")
    report_checks.check_report(work / part, min_numbers=6, min_images=1)
  assert (work / "dvbpr" / "export" / "dvbpr" / "saved_model.pb").exists()
  assert (work / "gan" / "export" / "gan" / "saved_model.pb").exists()
  assert "Open the report" in done.stdout and "random" in done.stdout
  found = report_checks.check_report(work, min_numbers=20, min_images=5)
  inside = lambda path: pathlib.Path(path).relative_to(work).as_posix()
  assert sorted(found["images"]) == sorted([
      "dvbpr/figures/learning_curve.png", "gan/figures/samples.png",
      "gan/figures/nearest_neighbours.png", inside(results["design"]["figure"]),
      inside(results["tailoring"]["figure"])])
  assert found["numbers"]["dvbpr.auc_test"] == results["dvbpr"]["auc_test"]
  assert found["numbers"]["gan.images_per_second"] == results["gan"]["images_per_second"]
  assert "dataset_statistics.num_users" in found["numbers"]
