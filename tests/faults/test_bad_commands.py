"""Mistyped commands, a run that diverges, an unwritable work dir, a model trained on other data.

Every command runs as a real subprocess, a few at a time. Each must end with one
`error: ...` line that names the flag (or file) and what is allowed, a non-zero exit, no
traceback, and nothing written: the work dir does not exist afterwards, or holds exactly
what it held before.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import shutil

import pytest

from tests.conftest import REPO
from tests.faults import runs

pytestmark = pytest.mark.slow  # Real subprocesses of the command line.

CATALOG_DUMMY_DATA = REPO / "datasets" / "fashion_catalog" / "dummy_data"

# name -> (flags after --preset=smoke, exit code, the error line's expected text)
FLAG_CASES = {
    "unknown_experiment": (["--experiment=nope"], 1,
                           "flag --experiment=nope: value should be one of <dataset|"
                           "recommendation|table3|gan|design|tailoring|table4|eta_sweep|demo|"
                           "recommend|add_items>"),
    "unknown_preset": (["--experiment=recommendation", "--preset=huge"], 1,
                       "flag --preset=huge: value should be one of <smoke|demo|paper|authors>"),
    "unknown_model": (["--experiment=recommendation", "--model=svd"], 1,
                      "flag --model=svd: value should be one of <dvbpr|rand|poprank|"),
    "negative_batch": (["--experiment=recommendation", "--batch_size=-4"], 2,
                       "error: --batch_size (dvbpr.pipeline.batch_size) must be at least 1, got -4"),
    "k_zero": (["--experiment=recommendation", "--embedding_dim=0"], 2,
               "error: --embedding_dim (dvbpr.tower.embedding_dim) must be at least 1, got 0"),
    "epochs_zero": (["--experiment=gan", "--epochs=0"], 2,
                    "error: --epochs (gan.epochs) must be at least 1, got 0"),
    "negative_checkpoint_interval": (["--experiment=recommendation",
                                      "--checkpoint_every_steps=-3"], 2,
                                     "error: --checkpoint_every_steps "
                                     "(dvbpr.train.checkpoint_every_steps) must be at "
                                     "least 0 (0: at epoch ends only), got -3"),
    "dropout_one": (["--experiment=recommendation", "--dropout=1"], 2,
                    "error: --dropout (dvbpr.tower.dropout) must be in [0, 1), got 1.0"),
    "zero_learning_rate": (["--experiment=gan", "--learning_rate=0"], 2,
                           "error: --learning_rate (gan.learning_rate) must be a finite number > 0, "
                           "got 0.0"),
    "bad_cache_mode": (["--experiment=recommendation", "--cache_decoded=sometimes"], 2,
                       "error: --cache_decoded (dvbpr.pipeline.cache_decoded) must be one of "
                       "auto, always, never, got sometimes"),
    "seed_past_int64": (["--experiment=recommendation", "--seed=18446744073709551616"], 2,
                        "error: --seed (dvbpr.seed) must be at most 2147483647, got "
                        "18446744073709551616"),
    "bad_pixel_limit": (["--experiment=dataset", "--max_image_pixels=0"], 2,
                        "error: --max_image_pixels must be at least 1, got 0"),
    "negative_user": (["--experiment=design", "--user=-1", "--category=bag"], 2,
                      "error: --user must be at least 0, got -1"),
    # These need the dataset (a TensorFlow import and a catalog read) to know the range.
    "unknown_dataset": (["--experiment=recommendation", "--dataset=no_such_data"], 2,
                        "error: unknown dataset 'no_such_data'; known: fashion_mnist_shoppers, "
                        "amazon_fashion,"),
    "unknown_user": (["--experiment=design", "--user=999", "--category=bag"], 2,
                     "error: --user must be a user id in 0..49, got 999"),
    "unknown_item": (["--experiment=tailoring", "--user=0", "--item=100000"], 2,
                     "error: --item must be an item id in 0..138, got 100000"),
    "missing_image": (["--experiment=tailoring", "--user=0", "--image=/no/such.png",
                       "--category=bag"], 2, "error: cannot read --image /no/such.png"),
    "item_and_image": (["--experiment=tailoring", "--user=0"], 2,
                       "error: give exactly one of --item (a catalog item id) or --image"),
    "unknown_category": (["--experiment=design", "--user=3", "--category=hats"], 2,
                         "error: unknown --category 'hats'; categories: t_shirt_top, trouser, "
                         "pullover, dress, coat, sandal, shirt, sneaker, bag, ankle_boot (or "
                         "0..9)"),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, tiny_data_dir, references):
  """Runs every command of this module (a few at a time); {name: (Run, work dir, before)}."""
  references.start()  # Trains in the background meanwhile; used by the last cases.
  root = tmp_path_factory.mktemp("commands")
  commands, works, before = {}, {}, {}
  for name, (flags, _, _) in FLAG_CASES.items():
    works[name] = root / name
    commands[name] = ["--preset=smoke", *flags, f"--data_dir={tiny_data_dir}",
                      f"--workdir={works[name]}"]

  a_file = root / "a_file"
  a_file.write_text("not a folder\n")
  works["workdir_under_a_file"] = a_file / "run"
  commands["workdir_under_a_file"] = [
      "--experiment=recommendation", "--preset=smoke", f"--data_dir={tiny_data_dir}",
      f"--workdir={works['workdir_under_a_file']}"]

  works["diverges"] = root / "diverges"
  commands["diverges"] = [
      "--experiment=recommendation", "--preset=smoke", f"--data_dir={tiny_data_dir}",
      f"--workdir={works['diverges']}", "--learning_rate=1e30", "--epochs=20",
      "--steps_per_loop=1", "--checkpoint_every_steps=1"]
  # Each of the last two builds the catalog in its own data dir (no race between them).
  def catalog_flags(name):
    return ["--dataset=fashion_catalog/default", f"--data_dir={root / ('tfds_' + name)}",
            f"--manual_dir={CATALOG_DUMMY_DATA}"]

  with concurrent.futures.ThreadPoolExecutor(runs.CONCURRENCY) as pool:
    futures = {name: pool.submit(runs.run, *flags) for name, flags in commands.items()}

    # A DVBPR trained on fashion_mnist_shoppers/tiny (50 users), recorded as trained on a
    # fashion_catalog that was since rebuilt from other files (11 users): the state a user
    # reaches by adding data to their catalog and rebuilding it.
    rebuilt = root / "trained_before_rebuild"
    shutil.copytree(references.dvbpr(), rebuilt)
    config = json.loads((rebuilt / "config.json").read_text())
    config["run"]["dataset"] = config["dataset_sizes"]["name"] = "fashion_catalog/default"
    (rebuilt / "config.json").write_text(json.dumps(config))
    before["resume_on_rebuilt_dataset"] = runs.snapshot(rebuilt)
    works["resume_on_rebuilt_dataset"] = rebuilt
    works["design_with_model_of_rebuilt_dataset"] = root / "design"
    later = {
        "resume_on_rebuilt_dataset": [*runs.DVBPR_FLAGS, *catalog_flags("resume"),
                                      f"--workdir={rebuilt}"],
        "design_with_model_of_rebuilt_dataset": [
            "--experiment=design", "--preset=smoke", *catalog_flags("design"),
            f"--workdir={root / 'design'}", f"--dvbpr_workdir={rebuilt}",
            f"--gan_workdir={references.gan()}", "--user=0", "--category=0"],
    }
    futures.update({name: pool.submit(runs.run, *flags) for name, flags in later.items()})
    return {name: (future.result(), works.get(name), before.get(name, {}))
            for name, future in futures.items()}


def _check_refused(run: runs.Run, work: pathlib.Path, before: dict, code: int = 2) -> str:
  """The one error line; asserts the exit code, no traceback, nothing written."""
  assert run.process.returncode == code, run.stderr[-3000:]
  assert "Traceback" not in run.stderr, run.stderr[-3000:]
  assert runs.snapshot(work) == before
  if code == 2:
    [line] = runs.error_lines(run.stderr)
    return line
  [line] = [l for l in run.stderr.splitlines() if "Flags parsing error" in l]
  return line


@pytest.mark.parametrize("name", list(FLAG_CASES))
def test_bad_flag_gives_one_line_naming_flag_and_allowed_values(outcomes, name):
  run, work, before = outcomes[name]
  _, code, expected = FLAG_CASES[name]
  line = _check_refused(run, work, before, code)
  assert expected in line
  assert not work.exists()


def test_workdir_that_cannot_be_created(outcomes):
  """As root, permissions do not stop a write; a file in the path stops anyone."""
  run, work, before = outcomes["workdir_under_a_file"]
  line = _check_refused(run, work, before)
  assert line == (f"error: cannot write {work}: Not a directory; a part of the path is a "
                  "file, not a folder: choose another --workdir")
  assert work.parent.read_text() == "not a folder\n"


def test_workdir_in_a_symlink_loop_and_a_data_dir_that_is_a_file(tmp_path, tiny_data_dir):
  """Each gets one line naming the flag to change (a data dir is not a --workdir)."""
  (tmp_path / "a").symlink_to(tmp_path / "b")
  (tmp_path / "b").symlink_to(tmp_path / "a")
  loop = runs.run("--experiment=recommendation", "--preset=smoke",
                  f"--data_dir={tiny_data_dir}", f"--workdir={tmp_path / 'a' / 'run'}")
  line = _check_refused(loop, tmp_path / "a" / "run", {})
  assert line == (f"error: cannot write {tmp_path / 'a' / 'run'}: Too many levels of symbolic "
                  "links; a symbolic link in the path leads back into itself: choose another "
                  "--workdir")
  data_file = tmp_path / "data_file"
  data_file.write_text("not a folder\n")
  work = tmp_path / "run"
  as_file = runs.run("--experiment=recommendation", "--preset=smoke",
                     f"--data_dir={data_file}", f"--workdir={work}")
  line = _check_refused(as_file, work, {})
  assert line.startswith(f"error: cannot write {data_file}/")
  assert line.endswith("a part of the path is a file, not a folder: choose another --data_dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission bits")
def test_workdir_in_a_read_only_folder(tmp_path, tiny_data_dir):
  locked = tmp_path / "locked"
  locked.mkdir(mode=0o500)
  run = runs.run("--experiment=recommendation", "--preset=smoke",
                 f"--data_dir={tiny_data_dir}", f"--workdir={locked / 'run'}")
  line = _check_refused(run, locked / "run", {})
  assert line.startswith(f"error: cannot write {locked / 'run'}: Permission denied")


def test_divergence_names_the_step_and_keeps_the_last_good_checkpoint(outcomes):
  run, work, _ = outcomes["diverges"]
  assert run.process.returncode == 2 and "Traceback" not in run.stderr
  [line] = runs.error_lines(run.stderr)
  assert "the training loss became nan in the 1 steps ending at step 2;" in line
  assert f"the last good checkpoint ({work}/checkpoints/latest/ckpt-1) is kept" in line
  state = (work / "checkpoints" / "latest" / "checkpoint").read_text()
  assert state.startswith('model_checkpoint_path: "ckpt-1"')
  assert (work / "checkpoints" / "latest" / "ckpt-1.index").exists()
  assert not (work / "results.json").exists()
  steps = {step for _, step in runs.tensorboard_points(work / "logs" / "train")}
  assert steps == {1}  # The diverged step was never logged.


def test_resuming_on_a_rebuilt_dataset_of_other_sizes_is_refused(outcomes):
  run, work, before = outcomes["resume_on_rebuilt_dataset"]
  line = _check_refused(run, work, before)
  assert line == (
      f"error: the work dir {work} holds checkpoints trained on fashion_catalog/default with "
      "other sizes than the dataset fashion_catalog/default has now (users 50 -> 11, items "
      "139 -> 28, categories 10 -> 4): it was trained on other data (the dataset was "
      "rebuilt from other files, or is another one); train anew in another work dir")


def test_design_with_a_model_of_a_rebuilt_dataset_is_refused(outcomes):
  run, work, _ = outcomes["design_with_model_of_rebuilt_dataset"]
  line = _check_refused(run, work, {})
  assert "holds checkpoints trained on fashion_catalog/default with other sizes" in line
