"""The work dir's lock and atomic writes, against real processes and real file-system errors.

The lock: a live holder (another process) refuses a second one with its pid and host; a
holder killed with SIGKILL never leaves the work dir locked; the same process may take the
lock again; where `flock` is missing, the recorded pid decides (a dead or reused pid is taken
over); a dataset build waits for another process building the same dataset. Writes: a file that cannot be written raises `WriteError` naming the path and the
reason, keeps what was there and leaves no temporary file; TensorFlow's file-system errors are
recognised by their reason.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from dvbpr_tf.core import errors
from dvbpr_tf.core import files
from dvbpr_tf.core import workdir as workdir_lib
from tests.faults import runs

HOLD = """
import sys, time
from dvbpr_tf.core import workdir
workdir.Workdir(sys.argv[1]).lock()
print("locked", flush=True)
time.sleep(120)
"""


def _holder(path) -> subprocess.Popen:
  process = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], cwd=runs.REPO,
                             env=runs.ENV, stdout=subprocess.PIPE, text=True)
  assert process.stdout.readline().strip() == "locked"
  return process


def test_a_live_holder_refuses_and_a_killed_one_is_taken_over(tmp_path, caplog):
  holder = _holder(tmp_path / "run")
  try:
    with pytest.raises(workdir_lib.WorkdirBusyError) as info:
      workdir_lib.Workdir(tmp_path / "run").lock()
    assert str(info.value) == (
        f"another run (pid {holder.pid} on host {socket.gethostname()}) is using "
        f"{tmp_path / 'run'}; wait for it or choose another --workdir")
    assert isinstance(info.value, errors.UserError)
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  assert (tmp_path / "run" / ".lock").exists()  # What the killed holder left.
  with workdir_lib.Workdir(tmp_path / "run").lock() as lock:
    assert lock.previous["pid"] == holder.pid
    assert json.loads((tmp_path / "run" / ".lock").read_text())["pid"] == os.getpid()
  assert f"from a run that is gone (pid {holder.pid} on host" in caplog.text
  assert not (tmp_path / "run" / ".lock").exists()  # Released: removed.


def test_a_dataset_build_waits_for_another_process_building_it_then_reads_that_build(
    tmp_path, monkeypatch, caplog):
  """Two builds of one dataset into one fresh data dir: the second waits for the first's lock
  (of the config folder) instead of racing it to the final folder; here the "first" is a
  process holding that lock while this one builds it for it once the lock is free."""
  import threading  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  from dvbpr_tf.data import catalog as catalog_lib  # pylint: disable=g-import-not-at-top
  from tests.conftest import SHOPPERS_DUMMY_DATA  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(catalog_lib, "BUILD_LOCK_POLL_SECONDS", 0.05)
  config_folder = tmp_path / "fashion_mnist_shoppers" / "tiny"
  holder = _holder(config_folder)
  loaded = {}

  def load():
    loaded["catalog"] = catalog_lib.load_catalog(
        "fashion_mnist_shoppers/tiny", data_dir=str(tmp_path),
        manual_dir=str(SHOPPERS_DUMMY_DATA))
    loaded["at"] = time.monotonic()

  thread = threading.Thread(target=load)
  thread.start()
  try:
    deadline = time.monotonic() + 60
    while "is building the dataset" not in caplog.text and time.monotonic() < deadline:
      time.sleep(0.05)
    assert (f"another process (pid {holder.pid} on host {socket.gethostname()}, since "
            in caplog.text)
    assert f"is building the dataset 'fashion_mnist_shoppers/tiny' in {config_folder}: " \
           "waiting for it to finish" in caplog.text
    assert thread.is_alive() and not list(config_folder.glob("*.*.*"))  # Nothing built yet.
  finally:
    released = time.monotonic()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  thread.join(120)
  assert loaded["at"] > released and loaded["catalog"].num_items > 0
  assert not (config_folder / ".lock").exists()  # Released after the build.
  assert "its unfinished build is never read; building again" in caplog.text


def test_the_same_process_may_take_it_again(tmp_path):
  work = workdir_lib.Workdir(tmp_path)
  first, second = work.lock(), work.lock()
  assert first is second
  second.release()
  assert (tmp_path / ".lock").exists()
  first.release()
  assert not (tmp_path / ".lock").exists()


def test_without_flock_the_recorded_pid_decides(tmp_path, monkeypatch):
  monkeypatch.setattr(workdir_lib, "fcntl", None)
  host = socket.gethostname()
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    cases = (({"pid": dead.pid, "host": host}, None),
             ({"pid": live.pid, "host": host, "process_start": -1}, None),  # A reused pid.
             ({"pid": live.pid, "host": host}, workdir_lib.WorkdirBusyError),
             ({"pid": 1, "host": "another-host"}, workdir_lib.WorkdirBusyError))
    for n, (holder, refusal) in enumerate(cases):
      root = tmp_path / str(n)
      root.mkdir()
      (root / ".lock").write_text(json.dumps(holder))
      if refusal is None:
        with workdir_lib.Workdir(root).lock() as lock:
          assert lock.previous == holder
      else:
        with pytest.raises(refusal):
          workdir_lib.Workdir(root).lock()
  finally:
    live.kill()
    live.wait()


def test_a_failed_write_names_the_path_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
  target = tmp_path / "results.json"
  files.write_json_atomic(target, {"auc": 0.7})
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  with pytest.raises(errors.WriteError) as info:
    files.write_json_atomic(a_file / "results.json", {"auc": 0.8})
  assert str(info.value) == (f"cannot write {a_file}: it is a file, not a folder; choose "
                             "another --workdir")
  with pytest.raises(errors.WriteError) as info:
    files.write_json_atomic(a_file / "sub" / "results.json", {"auc": 0.8})
  assert str(info.value) == (f"cannot write {a_file / 'sub'}: Not a directory; a part of the "
                             "path is a file, not a folder: choose another --workdir")
  (tmp_path / "taken").mkdir()  # A folder where the file is to go: the rename fails.
  with pytest.raises(errors.WriteError, match="Is a directory"):
    files.write_bytes_atomic(tmp_path / "taken", b"data")
  assert json.loads(target.read_text()) == {"auc": 0.7}
  assert runs.leftovers(tmp_path) == []
  with pytest.raises(errors.WriteError, match="Not a directory"):
    workdir_lib.Workdir(a_file / "run").make()


@pytest.mark.parametrize("error, path, reason, expected", [
    ("ResourceExhaustedError", "/w/checkpoints/latest/ckpt-3_temp/part-0.data",
     "No space left on device", "cannot write /w/checkpoints/latest/ckpt-3_temp/part-0.data: "
     "No space left on device; free some disk space, then rerun the same command"),
    ("FailedPreconditionError", "/w/logs/train/events", "Read-only file system",
     "cannot write /w/logs/train/events: Read-only file system; choose a --workdir on a "
     "writable file system"),
    ("PermissionDeniedError", "/w/export/.dvbpr/model", "Permission denied",
     "cannot write (or read) /w/export/.dvbpr/model: Permission denied; choose a --workdir "
     "you may write to"),
])
def test_tensorflow_file_system_errors_become_one_line(error, path, reason, expected):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  raised = getattr(tf.errors, error)(
      None, None, f"{{{{function_node __wrapped__SaveV2}}}} {path}; {reason} [Op:SaveV2]")
  assert str(errors.write_failure(raised)).startswith(expected)
  assert errors.write_failure(tf.errors.InvalidArgumentError(None, None, "shape")) is None
  assert errors.write_failure(ValueError("No space left on device")) is None


def test_a_write_failure_wrapped_by_a_library_is_found_through_its_causes():
  """TFDS re-raises a full disk's OpError as `RuntimeError(...) from e`; an error raised while
  an OSError was being handled, without `from`, is a bug and not taken for a write failure."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  full = tf.errors.OutOfRangeError(None, None, "/data/x.tfrecord; File too large")
  try:
    try:
      raise full
    except tf.errors.OutOfRangeError as e:
      raise RuntimeError(f"OutOfRangeError: Failed to finalize: {e}") from e
  except RuntimeError as wrapped:
    found = errors.write_failure(wrapped, flag_for=lambda path: "--data_dir")
  assert str(found) == ("cannot write /data/x.tfrecord: File too large; raise the file size "
                        "limit (ulimit -f) or choose a --data_dir on another file system, "
                        "then rerun the same command")
  try:
    try:
      raise OSError(28, "No space left on device", "/data/y")
    except OSError:
      raise RuntimeError("a bug while handling it")  # pylint: disable=raise-missing-from
  except RuntimeError as bug:
    assert errors.write_failure(bug) is None
