"""Streaming CSV tables: one row at a time, columns found by their header name.

A source CSV may hold millions of rows (H&M's `transactions_train.csv` has about 31 million),
so rows are read with the `csv` module one at a time and never collected. Columns are looked
up by name in the header, so their order does not matter; values are returned as stripped
strings (ids are never parsed as numbers: H&M article ids keep their leading zero).

A bad row never stops the read: a row with the wrong number of fields, one that the `csv`
module cannot parse, or one whose required value is empty is counted under
`malformed_rows` in the build's `DropLog`, with its file and line. A quote left open swallows
the lines after it into one field until the `csv` module's field limit (128 KiB) stops it; the
read then goes on from there, so one stray quote costs at most that much of the file. A
missing file or a missing required column stops the build with a `DatasetError` that names the
file, the column and the columns found.
"""

from __future__ import annotations

import csv
import io
from typing import Iterator, Sequence

from etils import epath

from dvbpr_tf_datasets.common import drops as drops_lib
from dvbpr_tf_datasets.common import errors

MALFORMED_ROWS = "malformed_rows"
_MALFORMED_DESCRIPTION = (
    "CSV rows skipped: wrong number of fields, unparseable, an empty id, or a bad timestamp")

def read_header(path: epath.PathLike) -> list[str]:
  """The column names of a CSV file (stripped, a UTF-8 byte-order mark removed).

  Raises:
    DatasetError: the file is missing or has no header line.
  """
  path = epath.Path(path)
  require_file(path)
  with _open_text(path) as f:
    header = next(csv.reader(f), None)
  if not header or not any(name.strip() for name in header):
    raise errors.DatasetError(f"{path} is empty: expected a header line of column names.")
  return [name.strip() for name in header]


def iter_rows(
    path: epath.PathLike,
    columns: Sequence[str],
    *,
    optional: Sequence[str] = (),
    nonempty: Sequence[str] | None = None,
    drops: drops_lib.DropLog,
) -> Iterator[tuple[int, tuple[str | None, ...]]]:
  """Yields `(line_number, values)` for each well-formed data row of a CSV file.

  Args:
    path: the CSV file; its first line names the columns, in any order. Column names are
      compared after stripping spaces, case-insensitively.
    columns: the required columns; `values` holds them first, in this order.
    optional: columns that may be absent; their values follow, None when the column is not in
      the header.
    nonempty: the columns whose value must not be empty (default: all of `columns`); a row
      where one is empty is malformed.
    drops: counts malformed rows under `malformed_rows`, with file and line as examples.

  Yields:
    The line number (1-based, of the row's last physical line) and the stripped values.

  Raises:
    DatasetError: the file is missing, empty, or lacks a required column (the message names
      the file, the missing columns and the columns found).
  """
  path = epath.Path(path)
  header = read_header(path)
  drops.declare(MALFORMED_ROWS, _MALFORMED_DESCRIPTION)
  lookup: dict[str, int] = {}
  for position, name in enumerate(header):
    lookup.setdefault(name.lower(), position)
  missing = [c for c in columns if c.lower() not in lookup]
  if missing:
    raise errors.DatasetError(
        f"{path} has no column {', '.join(repr(c) for c in missing)}; the columns found are "
        f"{', '.join(repr(h) for h in header)}. Expected a header line naming at least "
        f"{', '.join(columns)} (in any order).")
  positions = [lookup[c.lower()] for c in columns]
  positions += [lookup.get(c.lower()) for c in optional]
  nonempty = list(columns if nonempty is None else nonempty)
  if not set(nonempty) <= set(columns):
    raise ValueError(f"nonempty columns {nonempty} must be among the required {list(columns)}")
  check = [list(columns).index(c) for c in nonempty]
  width = len(header)
  name = path.name
  with _open_text(path) as f:
    reader = csv.reader(f)
    next(reader)  # The header.
    while True:
      try:
        fields = next(reader)
      except StopIteration:
        return
      except csv.Error as e:
        drops.add(MALFORMED_ROWS, 1, [f"{name} line {reader.line_num} ({e})"])
        continue
      if not fields:
        continue  # A blank line holds no row.
      if len(fields) != width:
        drops.add(MALFORMED_ROWS, 1, [
            f"{name} line {reader.line_num} ({len(fields)} fields, header has {width})"])
        continue
      values = tuple(None if p is None else fields[p].strip() for p in positions)
      for i in check:
        if not values[i]:
          drops.add(MALFORMED_ROWS, 1, [f"{name} line {reader.line_num} (empty {columns[i]})"])
          break
      else:
        yield reader.line_num, values


def require_file(path: epath.PathLike, what: str = "file") -> epath.Path:
  """Returns `path`; raises DatasetError naming it when it does not exist, or when a file is
  where a folder should be (`what` ending in "folder") or the other way round. These are
  failures to *read* an input: the message says so and names it."""
  path = epath.Path(path)
  if not path.exists():
    raise errors.DatasetError(f"required {what} {path} was not found.")
  want_folder = what.endswith("folder")
  if want_folder and not path.is_dir():
    raise errors.DatasetError(
        f"cannot read the {what} {path}: it is a file, not a folder; put the images in a "
        f"folder of that name.")
  if not want_folder and path.is_dir():
    raise errors.DatasetError(f"cannot read the {what} {path}: it is a folder, not a file.")
  return path


def _open_text(path: epath.Path):
  """The file as text: UTF-8 (a byte-order mark skipped), undecodable bytes replaced, so that
  one bad byte spoils one value rather than the build."""
  return io.TextIOWrapper(path.open("rb"), encoding="utf-8-sig", errors="replace", newline="")
