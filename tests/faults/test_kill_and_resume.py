"""Training runs killed with SIGKILL and rerun: same final numbers, nothing logged twice.

Two interrupted runs go on side by side (the DVBPR one and the GAN one, each in its own work
dir) while the uninterrupted references train (conftest.py). Each interrupted run is the
same command, killed and rerun until it ends:

DVBPR (recommendation)
  1. killed mid-epoch by an outside SIGKILL: stopped (SIGSTOP) at the first progress line
     of steps 10-14, while a second run of the same command in the same work dir is refused
     by the lock, then killed;
  2. killed inside a checkpoint write: the checkpoint's files written, the `checkpoint`
     state file not yet updated (fault_injection `checkpoint_state`);
  3. killed while the SavedModel is written to its staging folder (fault_injection
     `export`);
  4. rerun to the end.
GAN
  1. killed mid-epoch by an outside SIGKILL at the first progress line of steps 4-5;
  2. run with a 1 MiB file size limit: the first checkpoint write fails (EFBIG, as a full
     disk would), the run stops with a one-line error;
  3. killed by an outside SIGKILL the moment a checkpoint's temporary files appear (a
     watcher polls the checkpoint folders every 0.5 ms; not at an epoch end);
  4. rerun to the end.
"""

from __future__ import annotations

import json
import pathlib
import re
import resource
import signal
import socket
import threading

import numpy as np
import pytest

from tests.faults import runs

pytestmark = pytest.mark.slow  # Real subprocesses of the command line.

METRICS = ("auc_valid", "auc_valid_cold", "auc_valid_sampled100", "auc_test", "auc_test_cold",
           "auc_test_sampled100")


def _latest_step(work: pathlib.Path) -> int:
  state = (work / "checkpoints" / "latest" / "checkpoint").read_text().splitlines()[0]
  return int(state.split("ckpt-")[1].rstrip('"'))


def _dvbpr_flow(references: runs.References, work: pathlib.Path) -> dict:
  flags = references.flags("dvbpr", work)
  seen: dict = {}

  first = runs.Run(*flags)
  seen["stopped_at"] = int(first.wait_for(r"step (1[0-4])/48").group(1))
  first.signal(signal.SIGSTOP)  # Alive and holding the lock, mid-epoch.
  before = runs.snapshot(work)
  seen["second"] = runs.run(*flags)
  seen["second_wrote_nothing"] = runs.snapshot(work) == before
  seen["first_pid"] = first.pid
  seen["first_code"] = first.kill()

  steps_before = _latest_step(work)
  seen["checkpoint_state"] = runs.run(*flags, fault=("checkpoint_state", 1))
  seen["checkpoint_state_files"] = sorted(  # At an epoch end the best one is saved first.
      p.name for p in (work / "checkpoints").glob("*/ckpt-*"))
  seen["checkpoint_state_steps"] = (steps_before, _latest_step(work))

  seen["export"] = runs.run(*flags, fault=("export", 1))
  seen["export_left"] = sorted(p.name for p in (work / "export").iterdir())
  seen["final"] = runs.run(*flags)
  return seen


def _gan_flow(references: runs.References, work: pathlib.Path) -> dict:
  flags = references.flags("gan", work)
  seen: dict = {}

  first = runs.Run(*flags)
  seen["killed_at"] = int(first.wait_for(r"step ([45])/24").group(1))
  seen["first_code"] = first.kill()

  def small_files():
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

  before = runs.snapshot(work)
  seen["disk"] = runs.run(*flags, preexec_fn=small_files)
  after = runs.snapshot(work)
  seen["disk_changed_files"] = sorted(k for k in before if after.get(k) != before[k])

  old = {str(work / p) for p in runs.leftovers(work)}
  third = runs.Run(*flags)
  third.wait_for("resumed from")

  def temporary(path: str) -> bool:  # A new checkpoint temporary, not of an epoch end.
    match = re.search(r"ckpt-(\d+)_temp", path)
    return bool(match) and int(match.group(1)) % 12 != 0 and not any(
        path.startswith(o) for o in old)

  found = runs.watch(work / "checkpoints", temporary, third)
  seen["write_kill_code"] = third.kill() if third.process.poll() is None else third.wait()
  seen["write_kill_saw"] = found
  seen["write_kill_left"] = sorted(p for p in runs.leftovers(work) if str(work / p) not in old)
  number = int(re.search(r"ckpt-(\d+)_temp", found[0]).group(1)) if found else 0
  seen["write_kill_window"] = (number - 3, number)
  seen["final"] = runs.run(*flags)
  return seen


@pytest.fixture(scope="module")
def flows(references, tmp_path_factory):
  references.start()
  root = tmp_path_factory.mktemp("interrupted")
  results, failures = {}, {}

  def go(name, flow):
    try:
      results[name] = flow(references, root / name)
    except BaseException as e:  # pylint: disable=broad-except
      failures[name] = e

  threads = [threading.Thread(target=go, args=(name, flow))
             for name, flow in (("dvbpr", _dvbpr_flow), ("gan", _gan_flow))]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  for name, error in failures.items():
    raise AssertionError(f"the {name} flow failed: {error}") from error
  return {name: dict(seen, work=root / name) for name, seen in results.items()}


def test_a_second_run_in_the_same_workdir_is_refused(flows):
  seen = flows["dvbpr"]
  second = seen["second"]
  assert second.process.returncode == 2
  assert runs.error_lines(second.stderr) == [
      f"error: another run (pid {seen['first_pid']} on host {socket.gethostname()}) is "
      f"using {seen['work']}; wait for it or choose another --workdir"]
  assert "Traceback" not in second.stderr
  assert seen["second_wrote_nothing"]


def test_a_killed_runs_lock_is_taken_over(flows):
  seen = flows["dvbpr"]
  assert seen["first_code"] == -signal.SIGKILL
  rerun = seen["checkpoint_state"].stderr
  assert f"took over the lock of {seen['work']} from a run that is gone (pid " \
         f"{seen['first_pid']}" in rerun
  assert not (seen["work"] / ".lock").exists()  # Released by the run that finished.


def test_dvbpr_killed_mid_epoch_and_in_checkpoint_writes_ends_as_if_never_killed(
    flows, references):
  seen = flows["dvbpr"]
  assert 10 <= seen["stopped_at"] < 24  # Mid-epoch 1.
  for step in ("checkpoint_state", "export"):
    assert seen[step].process.returncode == -signal.SIGKILL, seen[step].stderr[-2000:]
    assert f"fault_injection: SIGKILL at {step}" in seen[step].stderr
  # The checkpoint killed before its state was recorded is ignored: the state still names
  # the one before, and the rerun resumes from it.
  before, after = seen["checkpoint_state_steps"]
  assert after == before
  assert f"ckpt-{before + 3}.index" in seen["checkpoint_state_files"]

  final = seen["final"]
  assert final.process.returncode == 0, final.stderr[-3000:]
  expected = json.loads((references.dvbpr() / "results.json").read_text())
  got = json.loads((seen["work"] / "results.json").read_text())
  for key in METRICS:
    np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=1e-6, err_msg=key)
  assert (got["steps"], got["best_epoch"]) == (expected["steps"], expected["best_epoch"])
  assert got["steps"] == runs.DVBPR_STEPS


class _Killed(BaseException):
  """Stands for SIGKILL in-process: nothing after the raise runs, nothing catches it."""


def test_an_epoch_evaluation_survives_a_kill_between_checkpoint_and_history(
    tiny_catalog, tmp_path, monkeypatch):
  """In-process: the run stops at the point fault_injection's `history` kills at (its
  subprocess form is `python -m tests.faults.fault_injection history <n> ...`)."""
  from dvbpr_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from dvbpr_tf.core import files  # pylint: disable=g-import-not-at-top
  from dvbpr_tf.core import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  from dvbpr_tf.training import dvbpr_task  # pylint: disable=g-import-not-at-top
  from dvbpr_tf.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top

  def train():
    task = dvbpr_task.DvbprTask(tiny_catalog, config_lib.preset("smoke").dvbpr)
    loop = trainer_lib.LoopConfig(epochs=2, steps_per_epoch=4, steps_per_loop=2)
    return trainer_lib.Trainer(task, loop, workdir_lib.Workdir(tmp_path)).run()

  write_json = files.write_json_atomic

  def killed_at_history(path, value):
    if str(path).endswith("history.json"):
      raise _Killed()
    return write_json(path, value)

  monkeypatch.setattr(files, "write_json_atomic", killed_at_history)
  with pytest.raises(_Killed):
    train()  # Killed at the end of epoch 1 (step 4), its checkpoint saved.
  monkeypatch.setattr(files, "write_json_atomic", write_json)
  summary = train()
  assert summary["steps"] == 8
  assert [h["epoch"] for h in summary["history"]] == [1, 2]


def test_a_killed_export_leaves_no_model_that_a_later_run_trusts(flows):
  seen = flows["dvbpr"]
  assert "dvbpr" not in seen["export_left"]  # Only the staging folder, never renamed.
  assert any(name.startswith(".dvbpr.") for name in seen["export_left"])
  assert (seen["work"] / "export" / "dvbpr" / "saved_model.pb").exists()  # After the rerun.


def test_gan_killed_mid_epoch_and_during_a_checkpoint_write_ends_as_if_never_killed(
    flows, references):
  seen = flows["gan"]
  assert seen["first_code"] == -signal.SIGKILL and 4 <= seen["killed_at"] < 12
  assert seen["write_kill_code"] == -signal.SIGKILL
  assert seen["write_kill_saw"], "the watcher saw no checkpoint temporary file"
  # Whether the kill landed inside the write (its temporaries left behind) or just after it:
  print(f"GAN kill during a checkpoint write: saw {seen['write_kill_saw']}, left "
        f"{seen['write_kill_left']}")
  final = seen["final"]
  assert final.process.returncode == 0, final.stderr[-3000:]
  runs.assert_same_gan_results(seen["work"], references.gan())


def test_a_full_disk_stops_with_one_line_and_corrupts_nothing(flows):
  seen = flows["gan"]
  disk = seen["disk"]
  assert disk.process.returncode == 2
  [line] = runs.error_lines(disk.stderr)
  assert line.startswith("error: cannot write ") and "File too large" in line
  assert "ulimit" in line and "Traceback" not in disk.stderr
  # Files already there are unchanged but for config.json, rewritten identically, and the
  # rerun resumed from the checkpoint the killed run left (checked above).
  assert seen["disk_changed_files"] == [".lock"]  # The killed run's, taken over.


@pytest.mark.parametrize("kind, window", [("dvbpr", None), ("gan", "write_kill_window")])
def test_tensorboard_logs_no_step_twice(flows, references, kind, window):
  """Scalars are written after the checkpoint of their steps: a resumed run never logs a
  step again. A kill after a checkpoint and before its scalars are written would lose the
  scalars of the steps since the checkpoint before: only the GAN's outside kill can land
  there; nothing else may be missing."""
  work = flows[kind]["work"]
  got = runs.tensorboard_points(work / "logs" / "train")
  assert sorted(point for point, count in got.items() if count > 1) == []
  expected = runs.tensorboard_points(getattr(references, kind)() / "logs" / "train")
  assert sorted(set(got) - set(expected)) == []
  first, last = flows[kind][window] if window else (0, 0)
  lost = sorted(set(expected) - set(got))
  assert [p for p in lost if not first < p[1] <= last] == [], lost


def test_export_refuses_user_ids_out_of_range(references):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  work = references.dvbpr()
  model = tf.saved_model.load(str(work / "export" / "dvbpr"))
  num_users = json.loads((work / "config.json").read_text())["dataset_sizes"]["num_users"]
  image = tf.zeros([1, 32, 32, 3], tf.uint8)
  assert model.recommend(tf.constant([num_users - 1], tf.int64),
                         tf.constant(3))["item_ids"].shape == (1, 3)
  for call in (lambda: model.recommend(tf.constant([num_users], tf.int64), tf.constant(3)),
               lambda: model.recommend(tf.constant([-1], tf.int64), tf.constant(3)),
               lambda: model.score(tf.constant([num_users], tf.int64), image),
               lambda: model.score(tf.constant([-7], tf.int64), image)):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=f"user id out of range: valid user ids are 0..{num_users - 1}"):
      call()
