"""A run's work directory: where everything a run writes goes, written so nothing is half-done.

Layout of `<workdir>/`:

    config.json           the resolved configuration of the run
    results.json          the run's figures (machine-readable)
    checkpoints/          tf.train.CheckpointManager checkpoints (latest kept, and best)
    logs/                 TensorBoard event files (scalars, images, embedding projector)
    export/<model>/       SavedModels
    figures/              PNG figures
    report.html           the page a person opens (reporting/html_report.py)

Every file is written by `files` (atomically: a killed run never leaves a half-written file
that a later run would trust; a write the user can fix raises `errors.WriteError`).

One run at a time: `Workdir.lock()` takes `<workdir>/.lock`, an exclusive `flock` held until
the process exits (or `release()`); the file records the holder's pid and host for the
message a second run gets. The kernel drops a `flock` when its process dies, even by SIGKILL,
so a killed run never leaves the work dir locked: the next run takes the lock over and says
so.
"""

from __future__ import annotations

import atexit
import datetime
import errno
import json
import os
import pathlib
import socket
import threading

from absl import logging

from dvbpr_tf.core import errors
from dvbpr_tf.core import files

try:
  import fcntl  # pylint: disable=g-import-not-at-top
except ImportError:  # Not on POSIX: the lock falls back to checking the holder's pid.
  fcntl = None


class Workdir:
  """Paths inside one run's work directory (see the module docstring)."""

  def __init__(self, root: str | os.PathLike):
    self.root = pathlib.Path(root).expanduser().absolute()

  def make(self) -> "Workdir":
    """Creates the work dir (WriteError when it cannot be) and returns it."""
    files.make_dirs(self.root)
    return self

  @property
  def lock_path(self) -> pathlib.Path:
    return self.root / LOCK_FILE

  def lock(self) -> "WorkdirLock":
    """Takes the work dir's lock for this process (see `WorkdirLock`) and returns it.

    Taking it again in the same process is allowed (each `lock()` wants one `release()`);
    whatever is still held is released when the process exits. Use as a context manager to
    release it at the end of a block.

    Raises:
      WorkdirBusyError: another live run holds it.
      errors.WriteError: the lock file cannot be written.
    """
    return WorkdirLock.acquire(self.root)

  @property
  def config_path(self) -> pathlib.Path:
    return self.root / "config.json"

  @property
  def results_path(self) -> pathlib.Path:
    return self.root / "results.json"

  @property
  def checkpoints(self) -> pathlib.Path:
    return self.root / "checkpoints"

  @property
  def logs(self) -> pathlib.Path:
    return self.root / "logs"

  @property
  def figures(self) -> pathlib.Path:
    return self.root / "figures"

  def export(self, model: str) -> pathlib.Path:
    return self.root / "export" / model

  def write_results(self, results: dict) -> None:
    files.write_json_atomic(self.results_path, results)

  def write_config(self, config: dict) -> None:
    files.write_json_atomic(self.config_path, config)


LOCK_FILE = ".lock"


class WorkdirBusyError(errors.UserError):
  """Another run, still alive, is using the work dir."""


class WorkdirLock:
  """An exclusive lock on one work dir, held by this process (see the module docstring).

  Two runs writing the same checkpoints and results would corrupt each other's files, so the
  second one refuses, naming the first one's pid and host. The lock is an `flock` on
  `<workdir>/.lock`: the kernel releases it when the holder dies, however it dies, so a
  killed run never leaves the work dir locked. Where `flock` is not available (or the file
  system refuses it), the recorded pid is checked instead: a lock whose pid is gone on this
  host is taken over.
  """

  _held: dict[pathlib.Path, "WorkdirLock"] = {}
  _guard = threading.Lock()
  _release_at_exit = False

  def __init__(self, root: pathlib.Path, fd: int, previous: dict | None):
    self.root, self._fd, self._count = root, fd, 1
    self.previous = previous  # The holder this lock was taken over from, if any.

  @property
  def path(self) -> pathlib.Path:
    return self.root / LOCK_FILE

  @classmethod
  def acquire(cls, root: str | os.PathLike,
              after_takeover: str = "this run resumes from its last checkpoint"
              ) -> "WorkdirLock":
    """The lock of the work dir `root` (created if needed), taken for this process.

    `after_takeover` ends the warning logged when the lock is taken over from a holder that
    died: what this process does about the work that holder left.

    Raises:
      WorkdirBusyError: another live run holds it.
      errors.WriteError: the work dir or the lock file cannot be written.
    """
    root = pathlib.Path(root).expanduser().absolute()
    with cls._guard:
      held = cls._held.get(root)
      if held is not None:
        held._count += 1
        return held
      files.make_dirs(root)
      lock = cls._take(root)
      cls._held[root] = lock
      if not cls._release_at_exit:
        atexit.register(cls.release_all)
        cls._release_at_exit = True
    if lock.previous:
      logging.warning(
          "took over the lock of %s from a run that is gone (pid %s on host %s, started %s): "
          "it was killed or crashed; %s", root, lock.previous.get("pid", "?"),
          lock.previous.get("host", "?"), lock.previous.get("since", "?"), after_takeover)
    return lock

  @classmethod
  def _take(cls, root: pathlib.Path) -> "WorkdirLock":
    path = root / LOCK_FILE
    for _ in range(10):  # Retried only if a holder removes the file between open and lock.
      try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
      except OSError as e:
        raise (errors.write_error(e, path) or e) from e
      try:
        previous = _read_holder(fd)
        if not _try_flock(fd, previous):
          raise WorkdirBusyError(
              f"another run (pid {previous.get('pid', '?')} on host "
              f"{previous.get('host', '?')}) is using {root}; wait for it or choose another "
              "--workdir")
        try:
          same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
          same_file = False
        if not same_file:  # The previous holder removed the file as it released it.
          os.close(fd)
          continue
        previous = _read_holder(fd)  # Now that no one can write it.
        _write_holder(fd, path)
        return cls(root, fd, previous or None)
      except BaseException:
        try:
          os.close(fd)
        except OSError:
          pass
        raise
    raise WorkdirBusyError(f"could not take the lock {path}: it keeps changing; is another "
                           "run starting in the same --workdir?")

  def release(self) -> None:
    """Gives up one `lock()`; the last one removes the lock file and drops the lock."""
    with self._guard:
      self._count -= 1
      if self._count > 0 or self._fd < 0:
        return
      self._held.pop(self.root, None)
      try:
        self.path.unlink(missing_ok=True)  # Removed while still locked: see `_take`.
      except OSError:
        pass
      try:
        os.close(self._fd)  # Closing drops the flock.
      except OSError:
        pass
      self._fd = -1

  @classmethod
  def release_all(cls) -> None:
    """Releases every lock this process holds (registered with atexit)."""
    for lock in list(cls._held.values()):
      lock._count = 1
      lock.release()

  def __enter__(self) -> "WorkdirLock":
    return self

  def __exit__(self, *exc) -> None:
    self.release()


def holder_of(root: str | os.PathLike) -> dict:
  """The holder recorded in `root`'s lock file: pid, host, since ({} when there is none)."""
  try:
    fd = os.open(pathlib.Path(root) / LOCK_FILE, os.O_RDONLY)
  except OSError:
    return {}
  try:
    return _read_holder(fd)
  finally:
    os.close(fd)


def _read_holder(fd: int) -> dict:
  """The holder recorded in an open lock file ({} when empty or unreadable)."""
  try:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode("utf-8", "replace")
    holder = json.loads(text) if text.strip() else {}
    return holder if isinstance(holder, dict) else {}
  except (OSError, ValueError):
    return {}


def _write_holder(fd: int, path: pathlib.Path) -> None:
  holder = {"pid": os.getpid(), "host": socket.gethostname(),
            "process_start": _process_start(os.getpid()),
            "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
  try:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(holder) + "\n").encode())
    os.fsync(fd)
  except OSError as e:
    raise (errors.write_error(e, path) or e) from e


def _try_flock(fd: int, holder: dict) -> bool:
  """Locks `fd` exclusively without waiting; False when another process holds it."""
  if fcntl is not None:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      return True
    except BlockingIOError:
      return False
    except OSError as e:
      if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
        raise
  # No flock here: trust the recorded holder while its process lives on this host.
  return not _holder_alive(holder)


def _holder_alive(holder: dict) -> bool:
  pid = holder.get("pid")
  if not isinstance(pid, int) or pid == os.getpid():
    return False
  if holder.get("host") != socket.gethostname():
    return True  # Cannot tell from here: assume it lives.
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass  # Alive, another user's.
  started = holder.get("process_start")
  return started is None or started == _process_start(pid)  # A reused pid is not the holder.


def _process_start(pid: int) -> int | None:
  """The process's start time in clock ticks since boot (Linux), to tell reused pids apart."""
  try:
    with open(f"/proc/{pid}/stat", "rb") as f:
      stat = f.read().decode("ascii", "replace")
    return int(stat.rsplit(")", 1)[1].split()[19])
  except (OSError, ValueError, IndexError):
    return None
