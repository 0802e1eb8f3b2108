"""Writing files so that nothing is ever half-written: the one atomic writer of the project.

Everything the project writes (results, configs, figures, caches beside a dataset, SavedModels)
goes through `atomic_path` (a file) or `atomic_folder` (a folder): the content is written to a
temporary name in the destination's folder and renamed into place, so a run killed mid-write
leaves the old content (or nothing), never a half-written file that a later run would trust.
New files get the mode the user's umask gives (as `open` would), not the temporary file's 0600.

A write that fails for a reason the user can fix (permissions, a full disk, a file where a
folder should be, ...) raises `errors.WriteError` naming the path and the reason.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pathlib
import shutil
import tempfile
from typing import Any, Iterator

import numpy as np

from dvbpr_tf.core import errors

_UMASK = os.umask(0)
os.umask(_UMASK)


def jsonable(value: Any):
  """`value` with NumPy scalars and arrays, tuples and paths made plain JSON (NaN and
  infinities become null: JSON has none)."""
  if isinstance(value, dict):
    return {str(k): jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  if isinstance(value, (np.integer,)):
    return int(value)
  if isinstance(value, (np.floating, float)):
    value = float(value)
    return value if math.isfinite(value) else None  # JSON has no NaN.
  if isinstance(value, np.ndarray):
    return jsonable(value.tolist())
  if isinstance(value, pathlib.PurePath):
    return str(value)
  return value


def make_dirs(path: str | os.PathLike) -> pathlib.Path:
  """Creates the folder `path` and its parents if needed.

  Raises:
    errors.WriteError: it cannot be created (permissions, a file in the path, a full or
      read-only disk).
  """
  path = pathlib.Path(path)
  try:
    path.mkdir(parents=True, exist_ok=True)
  except FileExistsError as e:  # A file of that name: mkdir's exist_ok is only for folders.
    raise errors.WriteError(f"cannot write {path}: it is a file, not a folder; choose "
                            "another --workdir") from e
  except OSError as e:
    raise (errors.write_error(e, path) or e) from e
  return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[pathlib.Path]:
  """A temporary path beside `path` for the caller to write; renamed to `path` when the
  block ends without an exception, deleted otherwise.

  `suffix` ends the temporary name (for writers that choose the format by extension, such as
  Keras' `.weights.h5`).

  Raises:
    errors.WriteError: the folder or the file cannot be written; `path` keeps its old content
      (or stays absent) and no temporary file is left behind.
  """
  path = pathlib.Path(path)
  make_dirs(path.parent)
  try:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
  except OSError as e:
    raise (errors.write_error(e, path) or e) from e
  tmp = pathlib.Path(name)
  try:
    yield tmp
    with open(tmp, "rb+") as f:
      os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode.
    os.replace(tmp, path)
  except OSError as e:
    tmp.unlink(missing_ok=True)
    raise (errors.write_error(e, path) or e) from e
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[pathlib.Path]:
  """A temporary folder beside `path` for the caller to fill; it replaces `path` (an older
  folder there is removed) when the block ends without an exception, and is deleted
  otherwise."""
  path = pathlib.Path(path)
  make_dirs(path.parent)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
  try:
    os.chmod(staging, 0o777 & ~_UMASK)
    content = staging / "content"
    yield content
    if path.exists():
      old = path.with_name(f".{path.name}.old")
      shutil.rmtree(old, ignore_errors=True)
      path.rename(old)
      content.rename(path)
      shutil.rmtree(old, ignore_errors=True)
    else:
      content.rename(path)
  except OSError as e:
    raise (errors.write_error(e, path) or e) from e
  finally:
    shutil.rmtree(staging, ignore_errors=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
  """Writes `data` to `path` atomically (`atomic_path`)."""
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      f.write(data)


def write_png_atomic(path: str | os.PathLike, image: np.ndarray) -> None:
  """Writes a uint8 [H, W, 3] image as a PNG, atomically."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  Image.fromarray(np.asarray(image)).save(buffer, format="PNG")
  write_bytes_atomic(path, buffer.getvalue())


def write_json_atomic(path: str | os.PathLike, value: Any) -> None:
  """Writes `value` as indented JSON (NumPy values converted, NaN as null), atomically."""
  text = json.dumps(jsonable(value), indent=2, sort_keys=False, allow_nan=False)
  write_bytes_atomic(path, (text + "\n").encode("utf-8"))


def write_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
  """`np.save` of `array` (streamed to the file: it may be GBs), atomically."""
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      np.save(f, array, allow_pickle=False)
