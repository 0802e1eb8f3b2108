"""Tests of the restricted unpickler and of the authors' builder on awkward files."""

import builtins
import io
import json
import os
import pathlib
import pickle
import re
import struct
import subprocess
import sys

import numpy as np
from numpy.lib import format as npy_format
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from dvbpr_tf_datasets.common import errors
from dvbpr_tf_datasets.common import records
from dvbpr_tf_datasets.common import splits as splits_lib
from dvbpr_tf_datasets.dvbpr_authors import dvbpr_authors_dataset_builder as builder_lib
from dvbpr_tf_datasets.dvbpr_authors import make_dummy_data as dummy
from dvbpr_tf_datasets.dvbpr_authors import safe_pickle

DUMMY_FILE = pathlib.Path(dummy.__file__).parent / "dummy_data" / dummy.FILENAME


def _object_npy(path: pathlib.Path, pickled: bytes, shape=(1,)) -> pathlib.Path:
  """A `.npy` file: an object-array header followed by the given pickle bytes."""
  header = io.BytesIO()
  npy_format.write_array_header_1_0(
      header, {"descr": "|O", "fortran_order": False, "shape": shape}
  )
  path.write_bytes(header.getvalue() + pickled)
  return path


class _CallsSystem:

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


class _CallsEval:

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (builtins.eval, (f"__import__('pathlib').Path({self.marker!r}).touch()",))


class _Plain:
  pass


@pytest.mark.parametrize("protocol", [2, 4])
def test_refuses_os_system_without_running_it(tmp_path, protocol):
  marker = tmp_path / "system_ran"
  path = _object_npy(tmp_path / "evil.npy", pickle.dumps([_CallsSystem(marker)], protocol))
  with pytest.raises(safe_pickle.UnsafePickleError) as info:
    safe_pickle.load_pickled_npy(path)
  assert f"'{os.system.__module__}.system'" in str(info.value)  # 'posix.system' on Linux.
  assert str(path) in str(info.value)
  assert not marker.exists()


@pytest.mark.parametrize("protocol, name", [(2, "__builtin__.eval"), (4, "builtins.eval")])
def test_refuses_builtins_eval_without_running_it(tmp_path, protocol, name):
  # Protocol 2 writes Python 2's module name (`__builtin__`), protocol 4 Python 3's.
  marker = tmp_path / "eval_ran"
  path = _object_npy(tmp_path / "evil.npy", pickle.dumps(_CallsEval(marker), protocol))
  with pytest.raises(safe_pickle.UnsafePickleError, match=f"'{name}'"):
    safe_pickle.load_authors_dataset(path)
  assert not marker.exists()


def test_refuses_python2_global_and_copyreg(tmp_path):
  # A py2-style GLOBAL naming `os.system`, as an old pickle would write it.
  py2 = b"\x80\x02cos\nsystem\nU\x04true\x85R."
  with pytest.raises(safe_pickle.UnsafePickleError, match=r"'os\.system'"):
    safe_pickle.load_pickled_npy(_object_npy(tmp_path / "py2.npy", py2))
  # Protocol 1 pickles a plain object through copyreg._reconstructor: not admitted either.
  with pytest.raises(safe_pickle.UnsafePickleError, match=r"copy_?reg\._reconstructor"):
    safe_pickle.load_pickled_npy(_object_npy(tmp_path / "p1.npy", pickle.dumps(_Plain(), 1)))
  assert not issubclass(safe_pickle.UnsafePickleError, safe_pickle.AuthorsFormatError)
  assert issubclass(safe_pickle.UnsafePickleError, ValueError)


def test_dummy_file_has_python2_traits():
  data = DUMMY_FILE.read_bytes()
  dummy.check_py2_traits(data)  # BINSTRING opcodes, numpy.core globals, no _codecs.
  assert data == dummy.npy_bytes(dummy.dummy_parts())  # Deterministic and up to date.
  assert len(data) < 16_000


def test_loads_authors_structure_from_dummy_file():
  data = safe_pickle.load_authors_dataset(DUMMY_FILE)
  assert (data.usernum, data.itemnum) == (6, 12)
  assert isinstance(data.user_train, dict) and isinstance(data.items, dict)
  assert data.user_train[2] == [{"productid": 9}, {"productid": 1}, {"productid": 1}]
  assert data.user_test[5] == [{"productid": 3}]
  image = data.items[0]["imgs"]
  assert isinstance(image, str)  # A py2 str under encoding='latin1' ...
  jpeg = safe_pickle.as_bytes(image)  # ... whose latin1 encoding is the original bytes.
  assert jpeg == dummy.jpeg(0)
  with Image.open(io.BytesIO(jpeg)) as decoded:
    assert decoded.size == (16, 16) and decoded.format == "JPEG"
  np.testing.assert_array_equal(data.items[4]["c"], dummy.one_hot(4))
  assert data.items[4]["c"].dtype == np.float64


def _bytes_key_parts():
  """The dummy structure with bytes keys, as a file loaded with encoding='bytes' shows."""
  def rows(items):
    return [{b"productid": i} for i in items]
  items = [{b"imgs": dummy.jpeg(i), b"c": dummy.one_hot(i % 3, 3)} for i in range(4)]
  train = {0: rows([0, 1]), 1: rows([2, 3])}
  validation = {0: rows([2]), 1: rows([0])}
  test = {0: rows([3]), 1: rows([1])}
  return [train, validation, test, items, 2, 4]


def test_loads_bytes_keys_written_by_python3(tmp_path):
  parts = _bytes_key_parts()
  array = np.empty(6, dtype=object)
  for i, part in enumerate(parts):
    array[i] = part
  path = tmp_path / "bytes_keys.npy"
  np.save(path, array, allow_pickle=True)  # Protocol 4: BINBYTES, numpy._core globals.
  data = safe_pickle.load_authors_dataset(path)
  assert safe_pickle.get_field(data.items[1], "imgs") == dummy.jpeg(1)
  assert safe_pickle.get_field(data.user_test[1][0], "productid") == 1
  catalog = builder_lib.build_catalog(data, image_size=None, source=path.name)
  assert catalog.source_ids == ["0", "1", "2", "3"]
  assert catalog.category_names == ["c0", "c1", "c2"]
  np.testing.assert_array_equal(catalog.categories, [0, 1, 2, 0])
  assert catalog.jpegs[2] == dummy.jpeg(2)  # RGB JPEG at original size: kept byte for byte.
  assert catalog.statistics["num_interactions"] == 8
  assert all(v == 0 for v in catalog.statistics["dropped"].values())


def test_refuses_non_authors_structures(tmp_path):
  path = tmp_path / "dict.npy"
  np.save(path, {"a": 1, "b": 2, "c": 3}, allow_pickle=True)
  with pytest.raises(safe_pickle.AuthorsFormatError, match="list of 6 elements.*found dict with 3 keys"):
    safe_pickle.load_authors_dataset(path)

  path = tmp_path / "short.npy"
  dummy.write_py2_npy(path, [{}, {}, {}, []])
  with pytest.raises(safe_pickle.AuthorsFormatError, match="found ndarray of shape \\(4,\\)"):
    safe_pickle.load_authors_dataset(path)

  path = tmp_path / "bad_part.npy"
  dummy.write_py2_npy(path, [{}, {}, 7, [], 0, 0])
  with pytest.raises(safe_pickle.AuthorsFormatError, match="user_test .*found int"):
    safe_pickle.load_authors_dataset(path)

  path = tmp_path / "numbers.npy"
  np.save(path, np.arange(6.0))
  with pytest.raises(safe_pickle.AuthorsFormatError, match="plain float64 array"):
    safe_pickle.load_authors_dataset(path)

  path = tmp_path / "truncated.npy"
  path.write_bytes(DUMMY_FILE.read_bytes()[:2000])
  with pytest.raises(safe_pickle.AuthorsFormatError, match="damaged or truncated"):
    safe_pickle.load_authors_dataset(path)


def test_malformed_entry_names_where(tmp_path):
  parts = dummy.dummy_parts()
  parts[0][3] = [{"productid": 4}, {"item": 6}]
  path = tmp_path / "bad_entry.npy"
  dummy.write_py2_npy(path, parts)
  data = safe_pickle.load_authors_dataset(path)
  with pytest.raises(safe_pickle.AuthorsFormatError, match=r"user_train\[3\]\[1\] has no 'productid'"):
    builder_lib.build_catalog(data, image_size=None, source=path.name)


# A second tiny file: lists instead of dicts, text categories, and user 2's test item does
# not decode (so user 2 is dropped and the others renumbered).
_TEXT_USERS = [  # (train, validation, test)
    ([0, 1, 6], 2, 3),  # item 6 (truncated JPEG) in training: one interaction dropped.
    ([2, 3], 4, 0),
    ([1, 4, 7], 0, 5),  # test item 5 (zero bytes): the user and 4 interactions dropped.
    ([5, 7, 7], 1, 2),  # item 5 in training (dropped) and item 7 twice (one duplicate).
]


def _text_category_parts():
  taxonomy = [b"Clothing, Shoes & Jewelry", b"Women", b"Caf\xc3\xa9 Dresses"]  # UTF-8 py2 str.
  items = []
  for i in range(8):
    image = {5: b"", 6: dummy.truncated_jpeg()}.get(i, dummy.jpeg(i, size=(24, 20)))
    item = {"imgs": image}
    if i == 3:
      pass  # No 'c': category 'unknown'.
    elif i % 2:
      item["c"] = taxonomy
    else:
      item["c"] = dummy.Py2Unicode("Men")
    items.append(item)
  train = [dummy.interactions(t) for t, _, _ in _TEXT_USERS]
  validation = [dummy.interactions([v]) for _, v, _ in _TEXT_USERS]
  test = [dummy.interactions([t]) for _, _, t in _TEXT_USERS]
  return [train, validation, test, items, len(_TEXT_USERS), len(items)]


def test_build_drops_user_whose_test_item_does_not_decode(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  dummy.write_py2_npy(manual / dummy.FILENAME, _text_category_parts())
  builder = builder_lib.Builder(config="amazon_fashion_64", data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual))
  )

  stats = builder.info.metadata["statistics"]
  assert stats["dropped"] == {
      "undecodable_image_items": 2,
      "interactions_on_missing_items": 3,
      "duplicate_interactions": 1,
      "users_without_heldout_item": 1,
      "interactions_of_users_without_heldout_item": 4,
  }
  assert (stats["num_users"], stats["num_items"], stats["num_interactions"]) == (3, 6, 11)
  assert stats["users_renumbered"] and stats["items_renumbered"]
  assert builder.info.metadata["skipped_item_source_ids"] == [5, 6]
  assert builder.info.metadata["dropped_user_source_ids"] == [2]
  names = builder.info.features["category"].names
  assert names == ["Clothing, Shoes & Jewelry > Women > Café Dresses", "Men", "unknown"]

  # Reload from disk: records in item order, 64x64 images, the authors' split kept.
  reloaded = builder_lib.Builder(config="amazon_fashion_64", data_dir=str(tmp_path / "tfds"))
  assert reloaded.info.metadata["statistics"] == stats
  catalog = records.read_catalog_arrays(reloaded.as_dataset(
      split=records.CATALOG_SPLIT, decoders={"image": tfds.decode.SkipDecoding()}
  ))
  assert list(catalog["source_ids"]) == ["0", "1", "2", "3", "4", "7"]
  np.testing.assert_array_equal(catalog["categories"], [1, 0, 1, 2, 1, 0])
  for jpeg in catalog["jpegs"]:
    with Image.open(io.BytesIO(jpeg)) as image:
      assert image.size == (64, 64) and image.mode == "RGB"
  users, items, splits = catalog["users"], catalog["items"], catalog["splits"]
  splits_lib.check_split(users, items, splits, num_users=3)
  dense = {"0": 0, "1": 1, "2": 2, "3": 3, "4": 4, "7": 5}
  got = {(int(u), int(i), int(s)) for u, i, s in zip(users, items, splits)}
  want = set()
  for new_user, old_user in enumerate([0, 1, 3]):
    train, validation, test = _TEXT_USERS[old_user]
    want |= {(new_user, dense[str(i)], records.TRAIN) for i in train if str(i) in dense}
    want.add((new_user, dense[str(validation)], records.VALIDATION))
    want.add((new_user, dense[str(test)], records.TEST))
  assert got == want


def test_missing_file_names_the_expected_path(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "something_else.txt").write_text("not the dataset")
  builder = builder_lib.Builder(config="tradesy", data_dir=str(tmp_path / "tfds"))
  with pytest.raises(FileNotFoundError) as info:
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual))
    )
  assert str(manual / "TradesyImgPartitioned.npy") in str(info.value)
  assert "DVBPR" in str(info.value)


# Hostile pickles, written opcode by opcode. Each is tiny (the deep tuple aside) and is loaded
# in a child process whose address space is limited to what it had mapped plus the loader's
# memory budget: a regression shows as a crash or a MemoryError there, not in pytest.

_CHILD = r"""
import json, os, resource, sys
from dvbpr_tf_datasets.common import errors
from dvbpr_tf_datasets.dvbpr_authors import safe_pickle
for path in sys.argv[1:]:
  mapped = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
                if line.startswith("VmSize:"))
  limit = mapped + safe_pickle.memory_budget(os.path.getsize(path))
  resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
  try:
    safe_pickle.load_authors_dataset(path)
    out = {"outcome": "loaded"}
  except errors.DatasetError as e:
    cause = e.__cause__
    out = {"outcome": type(e).__name__, "message": str(e),
           "cause": type(cause).__name__ if cause else None}
  resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
  print(json.dumps(out), flush=True)
"""


def _load_in_child(paths: list[pathlib.Path]) -> list[dict]:
  """Loads each file in one child process under the memory budget; one outcome per file."""
  env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
  done = subprocess.run([sys.executable, "-c", _CHILD, *map(str, paths)], capture_output=True,
                        text=True, timeout=120, env=env, check=False)
  assert done.returncode == 0, (done.returncode, done.stderr[-2000:])  # -11: a segfault.
  outcomes = [json.loads(line) for line in done.stdout.splitlines()]
  assert len(outcomes) == len(paths), done.stdout
  return outcomes


def _assert_refused(paths, error: str, pattern: str) -> None:
  """Each file is refused with one line of `error` that names it and matches `pattern`."""
  for path, out in zip(paths, _load_in_child(paths)):
    assert out["outcome"] == error, (path.name, out)
    assert "\n" not in out["message"] and str(path) in out["message"], out
    assert re.search(pattern, out["message"]), (path.name, out["message"])
    assert out["cause"] != "MemoryError", out


# dtype('O8') as Python 2's NumPy pickled it: REDUCE, then BUILD with its state.
_DTYPE_O = (b"cnumpy\ndtype\nU\x02O8K\x00K\x01\x87R"
            b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb")
_RECONSTRUCT = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
                b"K\x00\x85U\x01b\x87R")  # _reconstruct(ndarray, (0,), 'b')


def _object_array(shape: bytes, elements: bytes) -> bytes:
  """An object array pickle: `shape` opcodes push the shape tuple, `elements` the list's items."""
  return (b"\x80\x02" + _RECONSTRUCT + b"(K\x01" + shape + _DTYPE_O + b"\x89](" + elements
          + b"etb.")


def _i32(n: int) -> bytes:
  return b"J" + struct.pack("<i", n)  # BININT


def test_hand_written_object_array_loads(tmp_path):
  # The opcodes below are those of a valid 6-element array; the hostile ones vary them.
  pickled = _object_array(b"K\x06\x85", b"}}}]K\x02K\x00")
  data = safe_pickle.load_authors_dataset(_object_npy(tmp_path / "ok.npy", pickled, (6,)))
  assert (data.usernum, data.itemnum) == (2, 0)


def test_refuses_object_array_with_fewer_elements_than_its_shape(tmp_path):
  # Shape (6,), five elements: NumPy's __setstate__ read past the list (exit 139).
  short = _object_npy(tmp_path / "short.npy", _object_array(b"K\x06\x85", b"N" * 5), (6,))
  long = _object_npy(tmp_path / "long.npy", _object_array(b"K\x06\x85", b"N" * 7), (6,))
  assert len(short.read_bytes()) < 300
  _assert_refused([short, long], "AuthorsFormatError",
                  r"object array of shape \(6,\) .*holds a list of [57] elements.*not a list of 6")


def test_refuses_nesting_deeper_than_the_limit(tmp_path):
  # A tuple nested 2 000 000 deep as a dict key (hashing it recursed until a segfault), lists
  # nested 5000 deep (a RecursionError), MARKs opened 5000 deep.
  deep_tuple = _object_npy(tmp_path / "tuple.npy",
                           b"\x80\x02})" + b"\x85" * 2_000_000 + b"Ns.")
  deep_list = _object_npy(tmp_path / "list.npy", b"\x80\x02" + b"]" * 5000 + b"a" * 4999 + b".")
  marks = _object_npy(tmp_path / "marks.npy", b"\x80\x02" + b"(" * 5000 + b"t" * 5000 + b".")
  limit = safe_pickle.MAX_NESTING
  _assert_refused([deep_tuple, deep_list, marks], "AuthorsFormatError",
                  rf"nests containers more than {limit} deep")
  # At the limit itself, the nesting loads (as far as the structure check).
  ok = _object_npy(tmp_path / "ok.npy", b"\x80\x02" + b"]" * limit + b"a" * (limit - 1) + b".")
  with pytest.raises(safe_pickle.AuthorsFormatError, match="found list of 1 elements"):
    safe_pickle.load_authors_dataset(ok)


def test_refuses_memo_indices_beyond_the_stored_entries(tmp_path):
  # LONG_BINPUT / LONG_BINGET 2^27: the C unpickler's memo grew to 2^28 slots (2 GiB).
  paths = [
      _object_npy(tmp_path / "put.npy", b"\x80\x02Nr" + struct.pack("<I", 2**27) + b"."),
      _object_npy(tmp_path / "get.npy",
                  b"\x80\x02Nq\x00j" + struct.pack("<I", 2**27) + b"\x86."),
      _object_npy(tmp_path / "binget.npy", b"\x80\x02h\x05."),
  ]
  _assert_refused(paths, "AuthorsFormatError", r"memo entry (134217728|5)\b.*only [01] entr")


def test_refuses_builtins_that_allocate_from_a_small_integer(tmp_path):
  paths = [  # bytearray(2e9), list(bytes(3e8)), and bytearray by protocol 4's STACK_GLOBAL.
      _object_npy(tmp_path / "bytearray.npy",
                  b"\x80\x02c__builtin__\nbytearray\n" + _i32(2_000_000_000) + b"\x85R."),
      _object_npy(tmp_path / "list_bytes.npy",
                  b"\x80\x02c__builtin__\nlist\ncbuiltins\nbytes\n" + _i32(300_000_000)
                  + b"\x85R\x85R."),
      _object_npy(tmp_path / "p4.npy", pickle.dumps(bytearray(b"ab"), 4)),
  ]
  _assert_refused(paths, "UnsafePickleError",
                  r"global '(__builtin__\.bytearray|__builtin__\.list|builtins\.bytearray)'")


def test_refuses_length_fields_longer_than_the_file(tmp_path):
  fields = {  # opcode, length field: each claims far more than the file holds.
      "binbytes8": b"\x8e" + struct.pack("<Q", 2**40),
      "binunicode8": b"\x8d" + struct.pack("<Q", 2**40),
      "binstring": b"T" + struct.pack("<i", 2**31 - 1),
      "binunicode": b"X" + struct.pack("<I", 2**32 - 1),
      "long4": b"\x8b" + struct.pack("<i", 2**30),
      "frame": b"\x95" + struct.pack("<Q", 2**40),
  }
  paths = [_object_npy(tmp_path / f"{name}.npy", b"\x80\x04" + field + b"abc.")
           for name, field in fields.items()]
  _assert_refused(paths, "AuthorsFormatError",
                  r"(declares a \w+ of \d+ bytes .*only 4 bytes follow"
                  r"|of \d+ bytes where 4 remain)")
  # A .npy 2.0 header that claims 4 GiB.
  header = _object_npy(tmp_path / "header.npy", b"")
  header.write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**32 - 1) + b"{}")
  _assert_refused([header], "AuthorsFormatError", r"header claims 4294967295 bytes")


def test_refuses_arrays_larger_than_their_data(tmp_path):
  float_dtype = (b"cnumpy\ndtype\nU\x02f8K\x00K\x01\x87R"
                 b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
  paths = [
      # An object array of 10^9 elements with 5 in its state (8 GB of pointers).
      _object_npy(tmp_path / "objects.npy", _object_array(_i32(10**9) + b"\x85", b"N" * 5)),
      # A float64 array of 10^9 elements with 8 bytes of data.
      _object_npy(tmp_path / "floats.npy", b"\x80\x02" + _RECONSTRUCT + b"(K\x01" + _i32(10**9)
                  + b"\x85" + float_dtype + b"\x89U\x08" + b"\0" * 8 + b"tb."),
      # _reconstruct(ndarray, (10^9,), 'b') allocates before any state.
      _object_npy(tmp_path / "reconstruct.npy",
                  b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
                  + _i32(10**9) + b"\x85U\x01b\x87R."),
      # numpy.ndarray((10^9,)) called directly.
      _object_npy(tmp_path / "ndarray.npy", b"\x80\x02cnumpy\nndarray\n" + _i32(10**9)
                  + b"\x85\x85R."),
  ]
  outcomes = _load_in_child(paths)
  assert [o["outcome"] for o in outcomes] == ["AuthorsFormatError", "AuthorsFormatError",
                                              "UnsafePickleError", "UnsafePickleError"]
  assert "not a list of 1000000000" in outcomes[0]["message"]
  assert "not 8000000000 bytes" in outcomes[1]["message"]
  assert "(numpy.ndarray, (0,), 'b')" in outcomes[2]["message"]
  assert "calls numpy.ndarray" in outcomes[3]["message"]


def test_refuses_opcodes_that_call_or_cycle(tmp_path):
  paths = [
      _object_npy(tmp_path / "newobj.npy", b"\x80\x02cnumpy\nndarray\n)\x81."),  # NEWOBJ
      _object_npy(tmp_path / "inst.npy", b"(ios\nsystem\n."),  # INST
      _object_npy(tmp_path / "ext.npy", b"\x80\x02\x82\x01."),  # EXT1
  ]
  _assert_refused(paths, "UnsafePickleError", r"opcode (NEWOBJ|INST|EXT1) .*can call")
  paths = [
      _object_npy(tmp_path / "self.npy", b"\x80\x02]q\x00h\x00a."),  # A list inside itself.
      # A list changed after it went into a tuple.
      _object_npy(tmp_path / "later.npy", b"\x80\x02]q\x00\x85h\x00Na\x86."),
      _object_npy(tmp_path / "text.npy", b"I12\n."),  # Protocol 0's INT.
  ]
  _assert_refused(paths, "AuthorsFormatError",
                  r"(contains itself|changed after it was placed|opcode INT, which)")


def test_memory_budget_is_enforced_by_the_scan(tmp_path, monkeypatch):
  monkeypatch.setattr(safe_pickle, "MEMORY_BUDGET_BASE", 0)  # Budget: 64 bytes a file byte.
  # The dummy file fits: its estimate is about 10 bytes a file byte.
  assert safe_pickle.load_authors_dataset(DUMMY_FILE).itemnum == 12
  # 2000 empty sets in a list: about 270 bytes each, from 2 bytes of file each.
  sets = _object_npy(tmp_path / "sets.npy", b"\x80\x04](" + b"\x8f" * 2000 + b"e.")
  with pytest.raises(safe_pickle.AuthorsFormatError,
                     match=r"would take more than 0 MiB \(the budget for a \d+-byte file: "
                           r"64 x size \+ 0 MiB\)"):
    safe_pickle.load_authors_dataset(sets)
  assert safe_pickle.memory_budget(1000) == 64_000


@pytest.mark.parametrize("error", [
    RecursionError("maximum recursion depth exceeded"), MemoryError(),
    OverflowError("int too large"), ValueError("bad\nvalue"), EOFError(),
    pickle.UnpicklingError("bad"), struct.error("unpack requires a buffer"),
])
def test_errors_out_of_the_load_become_one_line(tmp_path, monkeypatch, error):
  def load(self):
    raise error
  monkeypatch.setattr(safe_pickle._RestrictedUnpickler, "load", load)
  with pytest.raises(safe_pickle.AuthorsFormatError) as info:
    safe_pickle.load_authors_dataset(DUMMY_FILE)
  message = str(info.value)
  assert "\n" not in message and str(DUMMY_FILE) in message
  assert type(error).__name__ in message and info.value.__cause__ is error
  assert isinstance(info.value, errors.DatasetError)


def test_runtime_checks_back_the_scan(monkeypatch):
  # Were the scan wrong, the unpickler's own REDUCE and BUILD checks refuse the same files.
  monkeypatch.setattr(safe_pickle._Scan, "run", lambda self: None)
  short = io.BytesIO(_object_array(b"K\x06\x85", b"N" * 5))
  with pytest.raises(safe_pickle.AuthorsFormatError, match=r"shape \(6,\) holds list of 5"):
    safe_pickle._RestrictedUnpickler(short, "short").load()
  call = io.BytesIO(b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
                    + _i32(10**9) + b"\x85U\x01b\x87R.")
  with pytest.raises(safe_pickle.UnsafePickleError, match=r"calls _reconstruct\(type, tuple"):
    safe_pickle._RestrictedUnpickler(call, "call").load()
  with pytest.raises(safe_pickle.AuthorsFormatError, match="opcode NEWOBJ"):
    safe_pickle._RestrictedUnpickler(io.BytesIO(b"\x80\x02cnumpy\nndarray\n)\x81."), "x").load()


@pytest.mark.parametrize("where", ["productid", "item key", "user key"])
def test_refuses_indices_beyond_int64(tmp_path, where):
  # Python 2 wrote such ints as LONG1; np.asarray(..., np.int64) raised OverflowError.
  parts = dummy.dummy_parts()
  huge = 2**63 if where != "user key" else -(2**63) - 1
  if where == "productid":
    parts[0][1][0]["productid"] = huge
  elif where == "item key":
    parts[3][huge] = parts[3].pop(11)
  else:
    parts[0][huge] = parts[0].pop(4)
  path = tmp_path / "huge.npy"
  dummy.write_py2_npy(path, parts)
  data = safe_pickle.load_authors_dataset(path)
  with pytest.raises(safe_pickle.AuthorsFormatError) as info:
    builder_lib.build_catalog(data, image_size=None, source=path.name)
  message = str(info.value)
  assert f"is {huge}, outside the int64 range" in message and "\n" not in message
