"""A CSV file written in chunks, that a killed run never leaves corrupt and a rerun resumes.

The CSV grows one chunk at a time: the chunk's rows are appended, flushed and fsync'ed, and
only then is its progress record (`<name>.progress.json` beside it, written atomically by
`core/files.py`) rewritten with the units done (users, for batch recommendations), the rows,
the CSV's byte length at that point and the request the file answers. Wherever a run is
killed, the CSV's first `length` bytes are whole chunks, possibly followed by part of the next
one: `ResumableCsv.open` truncates the file to the recorded length and the caller goes on from
the recorded unit, so the finished file is byte for byte the one an uninterrupted run writes
(given the same rows for the same units).

A rerun that asks for something else than the recorded request is refused (`RequestChanged`,
naming what differs) rather than mixing two requests in one file. A record whose CSV is gone
or shorter than recorded (deleted or changed by hand) is stale: the file is started anew.

Rows are written by Python's `csv` module (fields holding commas, quotes or line breaks are
quoted), UTF-8, one `\\n` per line.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import pathlib
from typing import Any, Iterable, Sequence

from absl import logging

from dvbpr_tf.core import errors
from dvbpr_tf.core import files

PROGRESS_SUFFIX = ".progress.json"


@dataclasses.dataclass(frozen=True)
class Progress:
  """What the CSV holds so far, as its progress record says.

  Attributes:
    request: what the file answers (the caller's request and the CSV's columns).
    done: units written (whole chunks only).
    rows: data rows written (the header not counted).
    length: the CSV's length in bytes after the last whole chunk.
    seconds: time spent writing chunks, summed over the runs that wrote them.
    finished: the caller said the file is complete (`ResumableCsv.finish`).
  """

  request: dict
  done: int = 0
  rows: int = 0
  length: int = 0
  seconds: float = 0.0
  finished: bool = False


class RequestChanged(errors.UserError):
  """The CSV answers another request than the one asked now.

  Attributes:
    path: the CSV.
    differences: (field, recorded value, value asked now) for each field that differs.
  """

  def __init__(self, path: pathlib.Path, differences: list[tuple[str, Any, Any]]):
    self.path, self.differences = path, differences
    changed = "; ".join(f"{field}: {old} -> {new}" for field, old, new in differences)
    super().__init__(
        f"{path} holds the answer to another request ({changed}); rerun with the same request "
        f"to finish it, or delete {path} to start anew")


class ResumableCsv:
  """One CSV file and its progress record (see the module docstring).

  Use: `check()` (refuses another request; None when there is nothing to resume), then
  `open()` (the progress to go on from), `append(rows, units, seconds)` per chunk, `finish()`,
  `close()` (or a `with` block around `open`).
  """

  def __init__(self, path: str | os.PathLike, columns: Sequence[str], request: dict,
               progress_path: str | os.PathLike | None = None):
    """
    Args:
      path: the CSV file.
      columns: the header row.
      request: what the file answers, plain JSON (compared with the record on resume).
      progress_path: the progress record (default: `<path without .csv>.progress.json`).
    """
    self.path = pathlib.Path(path)
    self.columns = tuple(columns)
    self.request = json.loads(json.dumps({**request, "columns": list(self.columns)}))
    self.progress_path = pathlib.Path(progress_path) if progress_path else self.path.with_name(
        self.path.stem + PROGRESS_SUFFIX)
    self.progress: Progress | None = None
    self._file = None

  def recorded(self) -> Progress | None:
    """The progress record on disk; None when there is none or it is stale (its CSV is gone
    or shorter than it says).

    Raises:
      errors.UserError: the record cannot be read (damaged, or not written by this class).
    """
    if not self.progress_path.exists():
      return None
    try:
      saved = json.loads(self.progress_path.read_text(encoding="utf-8"))
      progress = Progress(**saved)
      if not isinstance(progress.request, dict) or min(progress.done, progress.rows,
                                                       progress.length) < 0:
        raise ValueError("negative counts or no request")
    except (OSError, ValueError, TypeError) as e:
      raise errors.UserError(
          f"the progress record {self.progress_path} cannot be read ({e}); delete it and "
          f"{self.path} to start anew") from e
    size = self.path.stat().st_size if self.path.exists() else -1
    if size < progress.length:
      logging.warning("%s is %s, shorter than its progress record says (%d bytes): it was "
                      "changed outside this program; starting it anew", self.path,
                      "missing" if size < 0 else f"{size} bytes", progress.length)
      return None
    return progress

  def differences(self, progress: Progress) -> list[tuple[str, Any, Any]]:
    """(field, recorded, asked now) for every field of the request that differs."""
    keys = list(self.request) + [k for k in progress.request if k not in self.request]
    return [(k, progress.request.get(k), self.request.get(k)) for k in keys
            if progress.request.get(k) != self.request.get(k)]

  def check(self) -> Progress | None:
    """The record to resume from (None: start anew).

    Raises:
      RequestChanged: the file answers another request.
      errors.UserError: the record cannot be read.
    """
    progress = self.recorded()
    if progress is not None and self.differences(progress):
      raise RequestChanged(self.path, self.differences(progress))
    return progress

  def open(self) -> Progress:
    """Opens the CSV for appending after its last whole chunk, or starts it with the header;
    returns the progress to go on from (`done` units are in the file).

    Raises:
      RequestChanged, errors.UserError: as `check`.
      errors.WriteError: the file cannot be written.
    """
    progress = self.check()
    files.make_dirs(self.path.parent)
    try:
      if progress is None:
        self._file = open(self.path, "wb")  # pylint: disable=consider-using-with
        header = self._encode([self.columns])
        self._write(header)
        progress = Progress(request=self.request, length=len(header))
        self._record(progress)
      else:
        self._file = open(self.path, "r+b")  # pylint: disable=consider-using-with
        size = os.fstat(self._file.fileno()).st_size
        if size > progress.length:
          logging.info("%s: dropping the %d bytes of a chunk that was cut short; resuming "
                       "after %d units", self.path, size - progress.length, progress.done)
        self._file.truncate(progress.length)
        self._file.seek(progress.length)
        os.fsync(self._file.fileno())
    except OSError as e:
      self.close()
      raise (errors.write_error(e, self.path) or e) from e
    except BaseException:
      self.close()
      raise
    self.progress = progress
    return progress

  def append(self, rows: Iterable[Sequence[Any]], units: int, seconds: float = 0.0
             ) -> Progress:
    """Appends one chunk: `rows` (fields turned to text by `str`), covering `units` units,
    made durable before the progress record counts them; `seconds` is the time the chunk took
    (summed into the record)."""
    data, count = self._encode_counted(rows)
    self._write(data)
    self.progress = dataclasses.replace(
        self.progress, done=self.progress.done + int(units), rows=self.progress.rows + count,
        length=self.progress.length + len(data), seconds=self.progress.seconds + seconds)
    self._record(self.progress)
    return self.progress

  def finish(self) -> Progress:
    """Records that the file is complete (a rerun of the same request then has nothing to
    do) and closes it."""
    self.progress = dataclasses.replace(self.progress, finished=True)
    self._record(self.progress)
    self.close()
    return self.progress

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None

  def __enter__(self) -> "ResumableCsv":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def _encode(self, rows: Iterable[Sequence[Any]]) -> bytes:
    return self._encode_counted(rows)[0]

  @staticmethod
  def _encode_counted(rows: Iterable[Sequence[Any]]) -> tuple[bytes, int]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    count = 0
    for row in rows:
      writer.writerow(row)
      count += 1
    return buffer.getvalue().encode("utf-8"), count

  def _write(self, data: bytes) -> None:
    """Appends `data` and makes it durable (flush + fsync)."""
    try:
      self._file.write(data)
      self._file.flush()
      os.fsync(self._file.fileno())
    except OSError as e:
      raise (errors.write_error(e, self.path) or e) from e

  def _record(self, progress: Progress) -> None:
    files.write_json_atomic(self.progress_path, dataclasses.asdict(progress))
