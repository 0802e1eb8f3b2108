"""Tests of the restricted unpickler and of the authors' builder on awkward files."""

import builtins
import io
import os
import pathlib
import pickle

import numpy as np
from numpy.lib import format as npy_format
from PIL import Image
import pytest
import tensorflow_datasets as tfds

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
