"""A run's work directory: where everything a run writes goes, written so nothing is half-done.

Layout of `<workdir>/`:

    config.json           the resolved configuration of the run
    results.json          the run's figures (machine-readable)
    checkpoints/          tf.train.CheckpointManager checkpoints (latest kept, and best)
    logs/                 TensorBoard event files (scalars, images, embedding projector)
    export/<model>/       SavedModels
    figures/              PNG figures

Files are written to a temporary name in the same folder and renamed into place, so a run
killed mid-write never leaves a half-written file that a later run would trust.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import tempfile
from typing import Any

import numpy as np


def _jsonable(value: Any):
  if isinstance(value, dict):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, (np.integer,)):
    return int(value)
  if isinstance(value, (np.floating, float)):
    value = float(value)
    return value if math.isfinite(value) else None  # JSON has no NaN.
  if isinstance(value, np.ndarray):
    return _jsonable(value.tolist())
  if isinstance(value, pathlib.PurePath):
    return str(value)
  return value


_UMASK = os.umask(0)
os.umask(_UMASK)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
  """Writes `data` to `path` through a temporary file and a rename."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode.
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


def write_png_atomic(path: str | os.PathLike, image: np.ndarray) -> None:
  """Writes a uint8 [H, W, 3] image as a PNG, atomically."""
  import io  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  Image.fromarray(np.asarray(image)).save(buffer, format="PNG")
  write_bytes_atomic(path, buffer.getvalue())


def write_json_atomic(path: str | os.PathLike, value: Any) -> None:
  """Writes `value` as indented JSON (NumPy values converted, NaN as null), atomically."""
  text = json.dumps(_jsonable(value), indent=2, sort_keys=False, allow_nan=False)
  write_bytes_atomic(path, (text + "\n").encode("utf-8"))


class Workdir:
  """Paths inside one run's work directory (see the module docstring)."""

  def __init__(self, root: str | os.PathLike):
    self.root = pathlib.Path(root).expanduser().absolute()

  def make(self) -> "Workdir":
    self.root.mkdir(parents=True, exist_ok=True)
    return self

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
    write_json_atomic(self.results_path, results)

  def write_config(self, config: dict) -> None:
    write_json_atomic(self.config_path, config)
