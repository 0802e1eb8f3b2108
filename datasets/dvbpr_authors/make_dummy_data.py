r"""Writes `dummy_data/AmazonFashion6ImgPartitioned.npy`: a tiny file in the authors' format.

The authors' files were written by Python 2 (`np.save` of a 6-element object array). What
Python 2 wrote differs from what Python 3 writes, and the loader must cope with the former:

- byte strings (the JPEG bytes and the dict keys `'productid'`, `'imgs'`, `'c'`) are py2
  `str`, pickled with the SHORT_BINSTRING / BINSTRING opcodes (Python 3 pickles `bytes` with
  `_codecs.encode` at protocol 2, or BINBYTES at protocol 3+);
- arrays are reduced through the globals `numpy.core.multiarray._reconstruct`,
  `numpy.ndarray` and `numpy.dtype` (NumPy 2 writes `numpy._core...`), the array data being
  a py2 `str` and the dtype arguments ints (`('f8', 0, 1)`).

Neither `pickle` nor `np.save` under Python 3 can write that, so this module emits the pickle
protocol 2 opcodes by hand (`py2_pickle`); `pickletools.dis` of the result shows BINSTRING
opcodes and the `numpy.core.multiarray _reconstruct` global. The output is deterministic for a
given Pillow/libjpeg (the JPEGs are the only encoder output).

Dummy catalog (12 items, 6 users; Item and user_* are dicts keyed by index, as Python 2 kept
them): item 7 is a truncated JPEG (undecodable; it is only in user 1's training list), item 3
is a grayscale JPEG (converted to RGB), item 5 is 20x12, item 11 has no interaction; user 2
lists item 1 twice in training and user 5 has its test item 3 also in training (2 duplicate
interactions). Expected build: 11 catalog records, 6 users, 26 interactions.

Run: `python -m dvbpr_tf_datasets.dvbpr_authors.make_dummy_data [output_dir]`.
"""

from __future__ import annotations

import io
import pathlib
import pickletools
import struct
import sys
from typing import Any

import numpy as np
from numpy.lib import format as npy_format
from PIL import Image

FILENAME = "AmazonFashion6ImgPartitioned.npy"
NUM_CATEGORIES = 6

# user -> (train items, validation item, test item)
DUMMY_USERS = {
    0: ([0, 1, 2], 3, 4),
    1: ([5, 6, 7], 0, 8),  # 7 is undecodable: this training interaction is dropped.
    2: ([9, 1, 1], 2, 10),  # item 1 twice: one duplicate.
    3: ([4, 6], 5, 9),
    4: ([8, 10, 3], 6, 0),
    5: ([2, 9, 3], 1, 3),  # test item 3 also in training: the training copy is dropped.
}
NUM_ITEMS = 12
UNDECODABLE_ITEM = 7
GRAYSCALE_ITEM = 3
ODD_SIZE_ITEM = 5


class Py2Unicode(str):
  """Text that Python 2 held as `unicode` (pickled with BINUNICODE, not BINSTRING)."""


def py2_pickle(obj: Any) -> bytes:
  """Pickles `obj` (protocol 2) the way Python 2 with NumPy 1.x did.

  `str` and `bytes` become py2 `str` (SHORT_BINSTRING / BINSTRING; `str` must be latin1),
  `Py2Unicode` becomes BINUNICODE, NumPy arrays and scalars use the `numpy.core` globals.
  Supported: None, bool, int, float, str, bytes, tuple, list, dict, np.ndarray, np.generic.
  """
  out = bytearray(b"\x80\x02")  # PROTO 2
  _emit(out, obj)
  out += b"."  # STOP
  return bytes(out)


def _emit(out: bytearray, obj: Any) -> None:
  if obj is None:
    out += b"N"
  elif isinstance(obj, (bool, np.bool_)):
    out += b"\x88" if obj else b"\x89"  # NEWTRUE / NEWFALSE
  elif isinstance(obj, int):
    _emit_int(out, obj)
  elif isinstance(obj, float):
    out += b"G" + struct.pack(">d", obj)  # BINFLOAT
  elif isinstance(obj, Py2Unicode):
    data = str(obj).encode("utf-8")
    out += b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE
  elif isinstance(obj, str):
    _emit_binstring(out, obj.encode("latin1"))
  elif isinstance(obj, (bytes, bytearray)):
    _emit_binstring(out, bytes(obj))
  elif isinstance(obj, tuple):
    _emit_tuple(out, obj)
  elif isinstance(obj, list):
    out += b"]"  # EMPTY_LIST
    for start in range(0, len(obj), 1000):  # Python 2 batched by 1000, as does Python 3.
      chunk = obj[start:start + 1000]
      out += b"("  # MARK
      for x in chunk:
        _emit(out, x)
      out += b"e"  # APPENDS
  elif isinstance(obj, dict):
    out += b"}"  # EMPTY_DICT
    pairs = list(obj.items())
    for start in range(0, len(pairs), 1000):
      out += b"("  # MARK
      for k, v in pairs[start:start + 1000]:
        _emit(out, k)
        _emit(out, v)
      out += b"u"  # SETITEMS
  elif isinstance(obj, np.ndarray):
    _emit_ndarray(out, obj)
  elif isinstance(obj, np.generic):
    # numpy.core.multiarray.scalar(dtype, raw bytes as py2 str)
    _emit_global(out, "numpy.core.multiarray", "scalar")
    _emit_dtype(out, obj.dtype)
    _emit_binstring(out, obj.tobytes())
    out += b"\x86R"  # TUPLE2, REDUCE
  else:
    raise TypeError(f"py2_pickle does not support {type(obj).__name__}")


def _emit_int(out: bytearray, x: int) -> None:
  if 0 <= x < 256:
    out += b"K" + bytes([x])  # BININT1
  elif 0 <= x < 65536:
    out += b"M" + struct.pack("<H", x)  # BININT2
  elif -(2**31) <= x < 2**31:
    out += b"J" + struct.pack("<i", x)  # BININT
  else:
    data = x.to_bytes((x.bit_length() + 8) // 8, "little", signed=True)
    out += b"\x8a" + bytes([len(data)]) + data  # LONG1 (a py2 `long`)


def _emit_binstring(out: bytearray, data: bytes) -> None:
  if len(data) < 256:
    out += b"U" + bytes([len(data)]) + data  # SHORT_BINSTRING
  else:
    out += b"T" + struct.pack("<i", len(data)) + data  # BINSTRING


def _emit_tuple(out: bytearray, items: tuple) -> None:
  if not items:
    out += b")"  # EMPTY_TUPLE
    return
  if len(items) <= 3:
    for x in items:
      _emit(out, x)
    out += (b"\x85", b"\x86", b"\x87")[len(items) - 1]  # TUPLE1/2/3
    return
  out += b"("
  for x in items:
    _emit(out, x)
  out += b"t"  # TUPLE


def _emit_global(out: bytearray, module: str, name: str) -> None:
  out += b"c" + module.encode("ascii") + b"\n" + name.encode("ascii") + b"\n"  # GLOBAL


def _emit_dtype(out: bytearray, dtype: np.dtype) -> None:
  # NumPy 1.x on Python 2: dtype.__reduce__() == (dtype, ('f8', 0, 1), (3, '<', None, None,
  # None, -1, -1, flags)).
  if dtype.fields is not None or dtype.subdtype is not None:
    raise TypeError("py2_pickle supports plain dtypes only")
  _emit_global(out, "numpy", "dtype")
  _emit_tuple(out, (f"{dtype.kind}{dtype.itemsize}", 0, 1))
  out += b"R"  # REDUCE
  byteorder = "|" if dtype.itemsize == 1 or dtype.kind == "O" else "<"
  _emit_tuple(out, (3, byteorder, None, None, None, -1, -1, int(dtype.flags)))
  out += b"b"  # BUILD


def _emit_ndarray(out: bytearray, array: np.ndarray) -> None:
  # ndarray.__reduce__() == (_reconstruct, (ndarray, (0,), 'b'),
  #                          (1, shape, dtype, is_fortran, data)); data is the list of
  # objects for object arrays and the raw bytes (a py2 str) otherwise.
  array = np.ascontiguousarray(array)
  if array.dtype.kind not in "biufcO" or (array.dtype.kind != "O" and array.dtype.byteorder == ">"):
    raise TypeError(f"py2_pickle does not support arrays of dtype {array.dtype}")
  _emit_global(out, "numpy.core.multiarray", "_reconstruct")
  _emit_global(out, "numpy", "ndarray")
  _emit_tuple(out, (0,))
  _emit_binstring(out, b"b")
  out += b"\x87R"  # TUPLE3, REDUCE
  out += b"("  # MARK
  _emit(out, 1)
  _emit_tuple(out, tuple(int(n) for n in array.shape))
  _emit_dtype(out, array.dtype)
  _emit(out, False)
  if array.dtype.kind == "O":
    _emit(out, list(array.ravel()))
  else:
    _emit_binstring(out, array.tobytes())
  out += b"tb"  # TUPLE, BUILD


def npy_bytes(parts: list) -> bytes:
  """A `.npy` file holding `parts` as a 1-D object array, pickled as Python 2 did."""
  array = np.empty(len(parts), dtype=object)
  for i, part in enumerate(parts):
    array[i] = part
  header = io.BytesIO()
  npy_format.write_array_header_1_0(
      header, {"descr": "|O", "fortran_order": False, "shape": (len(parts),)}
  )
  return header.getvalue() + py2_pickle(array)


def write_py2_npy(path, parts: list) -> None:
  """Writes `parts` (e.g. the authors' 6-element list) to `path` as Python 2's np.save did."""
  pathlib.Path(path).write_bytes(npy_bytes(parts))


def jpeg(seed: int, size=(16, 16), mode: str = "RGB") -> bytes:
  """A small deterministic JPEG: a colour gradient picked by `seed`."""
  w, h = size
  y, x = np.mgrid[0:h, 0:w]
  base = np.array([(37 * seed) % 256, (91 * seed + 50) % 256, (151 * seed + 100) % 256])
  pixels = (base[None, None, :] + 8 * x[..., None] + 4 * y[..., None]) % 256
  image = Image.fromarray(pixels.astype(np.uint8), "RGB").convert(mode)
  out = io.BytesIO()
  image.save(out, format="JPEG", quality=50, optimize=True)
  return out.getvalue()


def truncated_jpeg() -> bytes:
  """The first bytes of a JPEG: the header parses, the pixels do not decode."""
  return jpeg(99)[:120]


def one_hot(index: int, n: int = NUM_CATEGORIES) -> np.ndarray:
  v = np.zeros(n, np.float64)
  v[index] = 1.0
  return v


def interactions(item_indices) -> list:
  """The authors' per-user list: one `{'productid': index}` dict per interaction."""
  return [{"productid": int(i)} for i in item_indices]


def dummy_parts() -> list:
  """The six parts of the dummy file (see the module docstring)."""
  items = {}
  for i in range(NUM_ITEMS):
    if i == UNDECODABLE_ITEM:
      image = truncated_jpeg()
    elif i == GRAYSCALE_ITEM:
      image = jpeg(i, mode="L")
    elif i == ODD_SIZE_ITEM:
      image = jpeg(i, size=(20, 12))
    else:
      image = jpeg(i)
    items[i] = {"imgs": image, "c": one_hot(i % NUM_CATEGORIES)}
  user_train = {u: interactions(t) for u, (t, _, _) in DUMMY_USERS.items()}
  user_validation = {u: interactions([v]) for u, (_, v, _) in DUMMY_USERS.items()}
  user_test = {u: interactions([t]) for u, (_, _, t) in DUMMY_USERS.items()}
  return [user_train, user_validation, user_test, items, len(DUMMY_USERS), NUM_ITEMS]


def check_py2_traits(data: bytes) -> None:
  """Raises AssertionError unless the pickle in `data` has the Python 2 traits."""
  offset = data.index(b"\x80\x02")
  opcodes = set()
  globals_ = set()
  for op, arg, _ in pickletools.genops(data[offset:]):
    opcodes.add(op.name)
    if op.name == "GLOBAL":
      globals_.add(arg)
  assert {"SHORT_BINSTRING", "BINSTRING"} <= opcodes, opcodes
  assert {"BINBYTES", "SHORT_BINBYTES", "BINUNICODE8"}.isdisjoint(opcodes), opcodes
  want = {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
  assert want <= globals_, globals_
  assert not any(g.startswith("numpy._core") or g.startswith("_codecs") for g in globals_)


def main(argv) -> None:
  out_dir = pathlib.Path(argv[1]) if len(argv) > 1 else pathlib.Path(__file__).parent / "dummy_data"
  out_dir.mkdir(parents=True, exist_ok=True)
  data = npy_bytes(dummy_parts())
  check_py2_traits(data)
  (out_dir / FILENAME).write_bytes(data)
  print(f"wrote {out_dir / FILENAME} ({len(data)} bytes)")


if __name__ == "__main__":
  main(sys.argv)
