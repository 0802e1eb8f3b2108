"""Errors a user can cause: each says what was wrong and what to do.

The command line (`experiments/main.py`) prints these as one line and exits non-zero, without
a traceback; anything else is a bug and keeps its traceback.

A failed write (no permission, a full disk, a read-only file system, a path through a file)
is the user's to fix too: `WriteError` says which path and why. The project's own writes
(`core/files.py`) raise it directly; TensorFlow's writes (checkpoints, event files, SavedModels)
raise `tf.errors.OpError`s, which `write_failure` recognises by their operating-system
reason.
"""

from __future__ import annotations

import errno
import os
import re
from typing import Callable

from dvbpr_tf_datasets.common.errors import DatasetError  # Re-exported: bad source data.


class UserError(Exception):
  """A request that cannot be carried out as given (unknown name, value out of range, ...)."""


class ConfigError(UserError, ValueError):
  """A configuration value out of its allowed range.

  Attributes:
    field: the dotted name of the field (`dvbpr.tower.embedding_dim`), when known.
    requirement: what was wrong, without the name (`must be at least 1, got 0`).
  """

  def __init__(self, message: str, field: str | None = None,
               requirement: str | None = None):
    super().__init__(message)
    self.field, self.requirement = field, requirement


def invalid(field: str, requirement: str) -> ConfigError:
  """The ConfigError of `field` (a name or dotted path) and what it must be."""
  return ConfigError(f"{field} {requirement}", field=field, requirement=requirement)


class WriteError(UserError):
  """A file or folder could not be written: the path and the system's reason."""


# The reasons a write fails that the user can fix, and what to do about each.
_SPACE = "free some disk space, then rerun the same command (it resumes from the last checkpoint)"
_WRITE_HINTS = {
    errno.ENOSPC: _SPACE,
    errno.EDQUOT: _SPACE,
    errno.EFBIG: "raise the file size limit (ulimit -f) or choose a --workdir on another "
                 "file system, then rerun the same command",
    errno.EROFS: "choose a --workdir on a writable file system",
    errno.EACCES: "choose a --workdir you may write to, or fix its permissions",
    errno.EPERM: "choose a --workdir you may write to, or fix its permissions",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another --workdir",
    errno.EISDIR: "a folder stands where a file is to be written: choose another --workdir",
    errno.ELOOP: "a symbolic link in the path leads back into itself: choose another --workdir",
}
# Reasons that only a write can have (a read never runs out of space); with the others
# (permissions, a file in the path) a TensorFlow message does not say whether it was writing.
_WRITE_ONLY = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def write_error(error: OSError, path: str | os.PathLike) -> WriteError | None:
  """`error`, raised while writing `path`, as a WriteError; None when its reason is not one a
  user can fix (a bug, which should keep its traceback)."""
  if error.errno not in _WRITE_HINTS:
    return None
  reason = error.strerror or os.strerror(error.errno)
  where = error.filename or path
  return WriteError(f"cannot write {where}: {reason}; {_WRITE_HINTS[error.errno]}")


def write_failure(error: BaseException,
                  flag_for: Callable[[str], str] | None = None) -> WriteError | None:
  """A failed write that escaped as an OSError or a TensorFlow error, as a WriteError.

  Args:
    error: any exception.

  Returns:
    A WriteError naming the path and the reason when `error` is an OSError, or a TensorFlow
    `OpError`, whose reason is one of the operating system's write failures (see
    `_WRITE_HINTS`); None for anything else. `flag_for(path)` names the flag that chose the
    failing path (`--data_dir` for a dataset build), when it is not `--workdir`.
  """
  found = _write_failure(error)
  if found is None or flag_for is None:
    return found
  text = str(found)
  path = text.removeprefix("cannot write (or read) ").removeprefix("cannot write ")
  flag = flag_for(path.partition(":")[0])
  return WriteError(text.replace("--workdir", flag)) if flag != "--workdir" else found


def _write_failure(error: BaseException) -> WriteError | None:
  """The first write failure in `error`'s chain of explicit causes (`raise ... from`): a
  library may wrap one (TFDS re-raises a TensorFlow `OutOfRangeError` from a full disk as a
  `RuntimeError`, and an OSError as a new one without its errno). An error merely raised
  while another was being handled (`__context__`) is not taken for it: that is a bug."""
  seen = set()
  while error is not None and id(error) not in seen and len(seen) < 16:
    seen.add(id(error))
    found = _own_write_failure(error)
    if found is not None:
      return found
    error = error.__cause__
  return None


def _own_write_failure(error: BaseException) -> WriteError | None:
  if isinstance(error, WriteError):
    return error
  if isinstance(error, OSError):
    return write_error(error, error.filename or "a file")
  if not type(error).__module__.startswith("tensorflow"):
    return None
  message = str(getattr(error, "message", error))
  for number, hint in _WRITE_HINTS.items():
    reason = os.strerror(number)
    if reason not in message:
      continue
    text = re.sub(r"^\{\{[^}]*\}\}\s*", "", message.strip().splitlines()[0])
    text = re.sub(r"\s*\[Op:[^\]]*\]$", "", text)
    path, _, _ = text.partition(f"; {reason}")
    verb = "cannot write" if number in _WRITE_ONLY else "cannot write (or read)"
    return WriteError(f"{verb} {path.strip() or 'a file'}: {reason}; {hint}")
  return None


EXPECTED_ERRORS = (UserError, DatasetError, FileNotFoundError, PermissionError)


def describe(error: BaseException) -> str:
  """The one-line message of an expected error: its own text, or for an operating-system
  error the path and the reason (`cannot access /x: Permission denied`)."""
  if isinstance(error, OSError) and error.errno and error.strerror:
    if error.filename:
      return f"cannot access {error.filename}: {error.strerror}"
    return error.strerror
  return str(error)
