"""`--experiment=recommend`: the CSV against a NumPy oracle, resuming after a kill, the
refusals, and the resumable CSV writer on its own."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import errors
from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf.serving import batch_csv
from dvbpr_tf_datasets.common import feedback_catalog
from experiments import batch_recommend
from experiments import common
from experiments import trained_models
from tests.conftest import REPO

TREE = config_lib.preset("smoke")
K = 5


def _spec(workdir, data_dir) -> common.RunSpec:
  return common.RunSpec(experiment="recommend", dataset=TREE.dataset, preset="smoke",
                        workdir=str(workdir), data_dir=str(data_dir), manual_dir=None, seed=0,
                        tree=config_lib.as_dict(TREE))


def _run(workdir, data_dir, users="all", k=K, dvbpr_workdir=None, **kwargs) -> dict:
  return batch_recommend.run(
      _spec(workdir, data_dir), TREE.dvbpr,
      batch_recommend.BatchRequest(users=users, k=k, dvbpr_workdir=dvbpr_workdir), **kwargs)


def _rows(path) -> list[list[str]]:
  return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def _main(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-m", "experiments.main", "--experiment=recommend",
                         "--preset=smoke", *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=300)


@pytest.fixture(scope="module")
def first_run(tiny_data_dir, tmp_path_factory):
  """One run with no --dvbpr_workdir (DVBPR trained in <workdir>/dvbpr): (work dir, results)."""
  work = tmp_path_factory.mktemp("recommend") / "all"
  return work, _run(work, tiny_data_dir)


def test_csv_matches_numpy_oracle(first_run, tiny_data_dir, tiny_catalog):
  """Every row's item and score is theta_u . Phi_i (theta from the trained model's checkpoint,
  Phi from the export), ranked by score among the user's unseen items, k per user."""
  work, results = first_run
  rows = _rows(work / batch_recommend.CSV_NAME)
  assert rows[0] == ["user", "rank", "item", "score"]
  rows = rows[1:]
  catalog = tiny_catalog
  assert len(rows) == catalog.num_users * K == results["rows"]  # Every user has >= k unseen.

  trained = trained_models.dvbpr(_spec(work, tiny_data_dir), catalog, TREE.dvbpr,
                                 str(work / "dvbpr"))
  theta = trained.user_vectors()
  export = tf.saved_model.load(str(work / "dvbpr" / "export" / "dvbpr"))
  phi = export.item_vectors(tf.range(catalog.num_items, dtype=tf.int64)).numpy()
  oracle = (theta @ phi.T).astype(np.float64)
  train_users, train_items = catalog.interactions("train")
  oracle[train_users, train_items] = -np.inf
  item_of = {str(s): i for i, s in enumerate(catalog.source_ids)}

  for user in range(catalog.num_users):
    mine = [r for r in rows if r[0] == str(user)]
    assert [int(r[1]) for r in mine] == list(range(1, K + 1))
    items = [item_of[r[2]] for r in mine]
    scores = np.array([float(r[3]) for r in mine])
    np.testing.assert_allclose(scores, oracle[user, items], rtol=1e-5, atol=1e-7)
    assert np.all(np.diff(scores) <= 0)  # Best first.
    assert not set(items) & set(train_items[train_users == user])  # Training items excluded.
    kth = np.sort(oracle[user])[::-1][K - 1]
    tolerance = 1e-5 * np.abs(oracle[user][np.isfinite(oracle[user])]).max()
    assert scores.min() >= kth - tolerance  # The top k: nothing unwritten scores above them.
    assert len(set(items)) == K
  # Users in order, rows grouped by user.
  assert [r[0] for r in rows] == [str(u) for u in range(catalog.num_users) for _ in range(K)]


def test_results_config_and_the_trained_model(first_run):
  work, results = first_run
  saved = json.loads((work / "results.json").read_text())
  for key in ("users", "k", "rows", "seconds", "users_per_second", "export", "export_sha256",
              "csv", "experiment", "dataset"):
    assert key in saved, key
  assert saved["users"] == 50 and saved["k"] == K and saved["rows"] == 50 * K
  assert saved["user_ids"] == "dense" and saved["experiment"] == "recommend"
  assert saved["export"] == str(work / "dvbpr" / "export" / "dvbpr")
  assert saved["csv"] == str(work / batch_recommend.CSV_NAME)
  assert saved["users_per_second"] > 0
  assert (work / "dvbpr" / "results.json").exists()  # Trained there first, as design does.
  config = json.loads((work / "config.json").read_text())
  assert config["recommend"]["k"] == K and config["recommend"]["users"] == "all"
  progress = json.loads((work / "recommendations.progress.json").read_text())
  assert progress["finished"] and progress["done"] == 50
  assert progress["length"] == (work / batch_recommend.CSV_NAME).stat().st_size


def test_finished_run_rerun_does_nothing(first_run, tiny_data_dir, capsys):
  work, results = first_run
  paths = [work / batch_recommend.CSV_NAME, work / "recommendations.progress.json",
           work / "results.json", work / "config.json"]
  before = [(p.read_bytes(), p.stat().st_mtime_ns) for p in paths]
  again = _run(work, tiny_data_dir)  # The DVBPR in <workdir>/dvbpr is reused, not retrained.
  assert [(p.read_bytes(), p.stat().st_mtime_ns) for p in paths] == before
  assert again["rows"] == results["rows"]
  assert f"Already done: {work / batch_recommend.CSV_NAME}" in capsys.readouterr().out


def test_resume_after_a_kill_gives_the_same_bytes(first_run, tiny_data_dir, tmp_path,
                                                  monkeypatch):
  """Killed inside the third chunk of 7 users, with part of that chunk in the file: the rerun
  cuts it off, goes on, and ends byte for byte as a run never stopped."""
  dvbpr_workdir = str(first_run[0] / "dvbpr")
  whole = tmp_path / "whole"
  _run(whole, tiny_data_dir, dvbpr_workdir=dvbpr_workdir, chunk_users=7)

  real_append, calls = batch_csv.ResumableCsv.append, []

  def killed_in_third_chunk(self, rows, units, seconds=0.0):
    calls.append(units)
    if len(calls) == 3:
      with open(self.path, "ab") as f:  # Half a chunk written when the kill came.
        f.write(b"21,1,fmnist-1")
      raise KeyboardInterrupt
    return real_append(self, rows, units, seconds)

  stopped = tmp_path / "stopped"
  monkeypatch.setattr(batch_csv.ResumableCsv, "append", killed_in_third_chunk)
  with pytest.raises(KeyboardInterrupt):
    _run(stopped, tiny_data_dir, dvbpr_workdir=dvbpr_workdir, chunk_users=7)
  monkeypatch.undo()
  progress = json.loads((stopped / "recommendations.progress.json").read_text())
  assert progress["done"] == 14 and not progress["finished"]
  csv_path = stopped / batch_recommend.CSV_NAME
  assert csv_path.stat().st_size > progress["length"]
  assert not (stopped / "results.json").exists()

  results = _run(stopped, tiny_data_dir, dvbpr_workdir=dvbpr_workdir, chunk_users=7)
  assert csv_path.read_bytes() == (whole / batch_recommend.CSV_NAME).read_bytes()
  assert results["rows"] == 50 * K
  assert json.loads((stopped / "recommendations.progress.json").read_text())["finished"]


def test_another_request_in_the_same_work_dir_is_refused(first_run, tiny_data_dir):
  work, _ = first_run
  before = (work / batch_recommend.CSV_NAME).read_bytes()
  with pytest.raises(errors.UserError, match=r"another request \(--k: 5 -> 3\); rerun with "
                     r"the same flags to finish it, or delete .*recommendations.csv"):
    _run(work, tiny_data_dir, k=3)
  with pytest.raises(errors.UserError, match=r"--users: all -> 0,7"):
    _run(work, tiny_data_dir, users="0, 7")
  assert (work / batch_recommend.CSV_NAME).read_bytes() == before


def test_another_export_is_refused(first_run, tiny_data_dir, tmp_path):
  dvbpr_workdir = str(first_run[0] / "dvbpr")
  work = tmp_path / "run"
  _run(work, tiny_data_dir, users="3,1", dvbpr_workdir=dvbpr_workdir)
  progress_path = work / "recommendations.progress.json"
  progress = json.loads(progress_path.read_text())
  progress["request"]["export_sha256"] = "0" * 64  # As if the model had been retrained.
  progress_path.write_text(json.dumps(progress))
  with pytest.raises(errors.UserError, match=r"the DVBPR export \(another --dvbpr_workdir, or "
                     r"the model retrained\): 000000000000 -> "):
    _run(work, tiny_data_dir, users="3,1", dvbpr_workdir=dvbpr_workdir)


@pytest.mark.parametrize("users, k, message", [
    ("0,99,x", K, "--users names unknown user ids: 99, x; valid user ids are 0..49"),
    ("all", 0, "--k must be in 1..139 (the catalog's items), got 0"),
    ("all", 140, "--k must be in 1..139 (the catalog's items), got 140"),
])
def test_bad_requests_are_refused_before_anything_is_written(first_run, tiny_data_dir, tmp_path,
                                                             users, k, message):
  work = tmp_path / "run"
  with pytest.raises(errors.UserError, match=message.replace("(", r"\(").replace(")", r"\)")
                     .replace(".", r"\.")):
    _run(work, tiny_data_dir, users=users, k=k, dvbpr_workdir=str(first_run[0] / "dvbpr"))
  assert not work.exists()


def test_a_work_dir_without_an_export_is_refused(first_run, tiny_data_dir, tmp_path):
  with pytest.raises(errors.UserError, match="does not exist: name the work dir of a trained"):
    _run(tmp_path / "run", tiny_data_dir, dvbpr_workdir=str(tmp_path / "none"))
  with pytest.raises(errors.UserError, match=r"holds no DVBPR export .*saved_model.pb is "
                     r"missing\): name the work dir of a trained DVBPR"):
    _run(tmp_path / "run", tiny_data_dir, dvbpr_workdir=str(first_run[0]))
  assert not (tmp_path / "run").exists()
  # Another experiment's work dir is not overwritten; the message names its DVBPR.
  with pytest.raises(errors.UserError, match=r"holds a recommendation run; choose another "
                     r"--workdir for the recommendations \(--dvbpr_workdir="):
    _run(first_run[0] / "dvbpr", tiny_data_dir, dvbpr_workdir=str(first_run[0] / "dvbpr"))


def test_resolve_users_by_source_ids():
  ids = ["ana", 'b, "the" buyer', "carl"]
  everyone = batch_recommend.resolve_users("all", 3, ids)
  assert list(everyone.ids) == [0, 1, 2] and everyone.labels == ids
  assert everyone.kind == "source" and everyone.request == "all"
  some = batch_recommend.resolve_users(" carl ,ana,carl", 3, ids)
  assert list(some.ids) == [2, 0] and some.labels == ["carl", "ana"]
  assert some.request == "carl,ana"
  with pytest.raises(errors.UserError, match=r"unknown user ids: '2'; the user ids are your "
                     r"own, as listed in user_source_ids.txt \(3 users, e.g. 'ana'"):
    batch_recommend.resolve_users("ana,2", 3, ids)
  dense = batch_recommend.resolve_users("4,01", 5)
  assert list(dense.ids) == [4, 1] and dense.labels == ["4", "1"] and dense.kind == "dense"
  with pytest.raises(errors.UserError, match="an empty id"):
    batch_recommend.resolve_users("1,,2", 5)


def test_command_line_with_source_ids_and_error_lines(first_run, tiny_data_dir, tmp_path):
  """A dataset with user_source_ids.txt: --users and the CSV's user column are those ids (one
  with a comma and quotes comes back whole); the rows are the dense run's for those users.
  Errors are one `error:` line, exit 2."""
  data_dir = tmp_path / "tfds"
  shutil.copytree(tiny_data_dir, data_dir)
  copy = catalog_lib.load_catalog(TREE.dataset, data_dir=str(data_dir), build=False)
  names = [f"shopper-{u:02d}" for u in range(copy.num_users)]
  names[7] = 'ana, "the" buyer'
  feedback_catalog.write_user_source_ids(copy.data_path, names)
  dvbpr_workdir = first_run[0] / "dvbpr"
  work = tmp_path / "named"
  done = _main(f"--workdir={work}", f"--data_dir={data_dir}", f"--dvbpr_workdir={dvbpr_workdir}",
               "--users=shopper-03,shopper-01", "--k=3")
  assert done.returncode == 0, done.stderr[-3000:]
  assert "users/s" in done.stderr and "left" in done.stderr  # The progress line.
  rows = _rows(work / batch_recommend.CSV_NAME)[1:]
  dense = _rows(first_run[0] / batch_recommend.CSV_NAME)[1:]
  expected = [[f"shopper-0{u}", *r[1:]] for u in (3, 1) for r in dense
              if r[0] == str(u) and int(r[1]) <= 3]
  assert [r[:3] for r in rows] == [r[:3] for r in expected]
  np.testing.assert_allclose([float(r[3]) for r in rows], [float(r[3]) for r in expected],
                             rtol=1e-5)  # Other batches: the float sums may round otherwise.
  assert json.loads((work / "results.json").read_text())["user_ids"] == "source"
  # Every user: the id with a comma is quoted in the file and read back whole.
  everyone = _run(tmp_path / "all", data_dir, k=1, dvbpr_workdir=str(dvbpr_workdir))
  assert everyone["rows"] == copy.num_users
  rows = _rows(tmp_path / "all" / batch_recommend.CSV_NAME)[1:]
  assert [r[0] for r in rows] == names
  assert '"ana, ""the"" buyer",1,' in (tmp_path / "all" / batch_recommend.CSV_NAME).read_text()

  bad = _main(f"--workdir={tmp_path / 'bad'}", f"--data_dir={data_dir}",
              f"--dvbpr_workdir={dvbpr_workdir}", "--users=shopper-03,7")
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines()[-1].startswith(
      "error: --users names unknown user ids: '7'; the user ids are your own")
  assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()
  zero = _main(f"--workdir={tmp_path / 'bad'}", f"--data_dir={data_dir}", "--k=0")
  assert zero.returncode == 2 and "error: --k must be at least 1, got 0" in zero.stderr


def test_resumable_csv_cuts_a_partial_chunk_and_refuses_another_request(tmp_path):
  path = tmp_path / "out.csv"
  with batch_csv.ResumableCsv(path, ("a", "b"), {"n": 1}) as table:
    assert table.open().done == 0
    table.append([("x,y", 1), ("line\nbreak", 2)], units=2)
  whole = path.read_bytes()
  assert whole == b'a,b\n"x,y",1\n"line\nbreak",2\n'
  with open(path, "ab") as f:
    f.write(b"partial")
  table = batch_csv.ResumableCsv(path, ("a", "b"), {"n": 1})
  progress = table.open()
  assert (progress.done, progress.rows, progress.length) == (2, 2, len(whole))
  table.append([("z", 3)], units=1)
  table.finish()
  assert path.read_bytes() == whole + b"z,3\n"
  with pytest.raises(batch_csv.RequestChanged, match=r"\(n: 1 -> 2\)"):
    batch_csv.ResumableCsv(path, ("a", "b"), {"n": 2}).check()
  path.unlink()  # A record whose CSV is gone is stale: started anew.
  assert batch_csv.ResumableCsv(path, ("a", "b"), {"n": 2}).check() is None
