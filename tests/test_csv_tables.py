"""Streaming CSV reading: columns by name, bad rows counted and skipped, clear errors."""

import pytest

from dvbpr_tf_datasets.common import csv_tables
from dvbpr_tf_datasets.common import drops as drops_lib
from dvbpr_tf_datasets.common import errors


def _rows(path, columns, **kwargs):
  drops = drops_lib.DropLog("test")
  rows = list(csv_tables.iter_rows(path, columns, drops=drops, **kwargs))
  return rows, drops


def test_columns_by_name_in_any_order_and_case(tmp_path):
  path = tmp_path / "t.csv"
  path.write_bytes("\ufeffPrice, Item_ID ,user_id\n0.5,007,u1\n1,008,u2\n".encode("utf-8"))
  rows, drops = _rows(path, ["user_id", "item_id"], optional=["timestamp", "price"])
  assert rows == [(2, ("u1", "007", None, "0.5")), (3, ("u2", "008", None, "1"))]
  assert drops.counts == {"malformed_rows": 0}


def test_bad_rows_are_counted_with_their_line_and_skipped(tmp_path):
  path = tmp_path / "t.csv"
  path.write_bytes(
      b"user_id,item_id,note\n"
      b"u1,007,\"a, quoted\nnote\"\n"  # Lines 2-3: one row.
      b"u2,008\n"  # Line 4: 2 fields.
      b"\n"  # A blank line: no row, not counted.
      b"  ,009,x\n"  # Line 6: empty user_id.
      b"u3,\xff\xfe10,x\n"  # Line 7: undecodable bytes replaced, the row is kept.
      b"u4,011,x,y\n")  # Line 8: 4 fields.
  rows, drops = _rows(path, ["user_id", "item_id"])
  assert [(line, values[0]) for line, values in rows] == [(3, "u1"), (7, "u3")]
  assert rows[1][1][1] == "\ufffd\ufffd10"
  assert drops.count("malformed_rows") == 3
  assert drops.examples["malformed_rows"] == [
      "t.csv line 4 (2 fields, header has 3)", "t.csv line 6 (empty user_id)",
      "t.csv line 8 (4 fields, header has 3)"]


def test_a_quote_left_open_costs_a_bounded_part_of_the_file(tmp_path):
  path = tmp_path / "t.csv"
  lines = ["user_id,item_id,note", "u0,000,x", 'u1,001,"never closed']
  lines += [f"u{i},{i:05d},x" for i in range(2, 20000)]
  path.write_text("\n".join(lines) + "\n")
  rows, drops = _rows(path, ["user_id", "item_id"])
  assert rows[0] == (2, ("u0", "000"))
  assert rows[-1] == (20001, ("u19999", "19999"))  # Reading went on after the field limit.
  assert 8000 < len(rows) < 20000
  assert drops.count("malformed_rows") >= 1
  assert "field larger than field limit" in drops.examples["malformed_rows"][0]


def test_nonempty_only_checks_the_named_columns(tmp_path):
  path = tmp_path / "c.csv"
  path.write_text("item_id,category\n007,\n,tops\n")
  rows, drops = _rows(path, ["item_id", "category"], nonempty=["item_id"])
  assert rows == [(2, ("007", ""))]
  assert drops.count("malformed_rows") == 1


def test_missing_column_names_file_column_and_columns_found(tmp_path):
  path = tmp_path / "t.csv"
  path.write_text("user,item_id\nu1,007\n")
  with pytest.raises(errors.DatasetError) as e:
    _rows(path, ["user_id", "item_id"])
  assert str(e.value).startswith(f"{path} has no column 'user_id'; the columns found are "
                                 "'user', 'item_id'.")


def test_missing_or_empty_file(tmp_path):
  with pytest.raises(errors.DatasetError, match="required file .*nope.csv was not found"):
    _rows(tmp_path / "nope.csv", ["a"])
  (tmp_path / "empty.csv").write_text("")
  with pytest.raises(errors.DatasetError, match="empty.csv is empty"):
    _rows(tmp_path / "empty.csv", ["a"])
