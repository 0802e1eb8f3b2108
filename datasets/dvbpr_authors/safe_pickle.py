"""Loading the authors' pickled `.npy` files without executing what they say.

The authors of DVBPR (Kang et al., ICDM 2017) distribute each dataset as one `.npy` file that
holds a pickled NumPy object array, written by Python 2 with `np.save`: the `.npy` header,
then a pickle (protocol 2) of a 6-element object array

    [user_train, user_validation, user_test, Item, usernum, itemnum]

`np.load(allow_pickle=True)` would run whatever callable the pickle names, and even a pickle
that names nothing dangerous can crash NumPy or exhaust memory with a few bytes. This module
parses the `.npy` header itself (its length checked before it is read) and then reads the
pickle twice, streaming from the same file object:

1. A scan (`_Scan`) walks the opcodes without building anything, on its own bounded reader
   (not `pickletools.genops`, which reads each string opcode's declared length in one call and
   so allocates what a hostile length field claims). It simulates the pickle machine on small
   descriptions of the values and refuses, before anything is allocated:
   - opcodes outside what pickle protocols 2-4 write for plain data (no `NEWOBJ`, `INST`,
     `OBJ`, `EXT*`, persistent ids, out-of-band buffers, nor the text opcodes of protocol 0);
   - globals outside `ALLOWED_GLOBALS`, and calls of the admitted ones with other arguments
     than `np.save` writes: `_reconstruct(ndarray, (0,), 'b')`, `dtype(code, 0, 1)` for a plain
     code (`'f8'`, `'O8'`, `'S10'`, ...), `scalar(dtype, raw bytes of its itemsize)`;
   - nesting deeper than `MAX_NESTING` (containers in containers, or open MARKs);
   - memo indices that refer past the entries stored so far (`pickle`'s C memo grows to the
     largest index it is given);
   - length fields (strings, long integers, frames) longer than the rest of the file;
   - a container changed after it was placed in another one (which is also how a cycle is
     made; pickle writers finish each container before they use it);
   - array states whose element count differs from their shape (an object array of shape
     (6,) with 5 elements makes NumPy read past its list), or whose raw data length differs
     from count x itemsize;
   - a load whose estimated memory exceeds `memory_budget(file size)`.
2. The load itself, with a restricted pure-Python unpickler (`pickle._Unpickler`, about 1.6x
   slower than the C one, but its dispatch table can be replaced): `find_class` admits only
   `ALLOWED_GLOBALS`, and REDUCE and BUILD check again, on the real objects, the call
   arguments and the array states above, so an array's element count matches its shape
   before `ndarray.__setstate__` sees it even where the scan were wrong.

The admitted globals are what `np.save` of the authors' structures writes (dicts, lists,
strings, ints, floats, NumPy arrays and scalars): `numpy.core.multiarray._reconstruct`,
`numpy.ndarray`, `numpy.dtype`, `numpy.core.multiarray.scalar`, and the `numpy._core` names
that NumPy 2 writes (the `numpy.core` names, which Python 2 wrote, resolve to `numpy._core` on
NumPy 2 without importing the deprecated `numpy.core`). No builtin is admitted: the authors'
data needs none (pickle has opcodes for containers and scalars), and `bytearray`, `list`,
`bytes`, ... called with a small integer allocate that many bytes or elements. Any other
global (`os.system`, `builtins.eval`, `copyreg._reconstructor`, `_codecs.encode`, ...) raises
`UnsafePickleError` before anything is called: the name itself is refused, so the object is
never looked up, let alone called.

Memory budget: a load may use at most `memory_budget(size) = MEMORY_BUDGET_PER_BYTE * size +
MEMORY_BUDGET_BASE` bytes (64 bytes per byte of the file plus 256 MiB). It is enforced by the
scan's accounting, not by `resource.setrlimit` (an address-space limit in the process would
also hit TensorFlow's reservations): each opcode adds an upper estimate of what unpickling it
allocates (the object, its container slot, its memo entry, strings' bytes twice, arrays' count
x itemsize) and the scan refuses once the sum passes the budget. The authors' files, mostly
JPEG bytes, come to about twice their size; the scan itself holds about 100 bytes per memo
entry, freed before the load.

Every refusal, and any error out of a damaged pickle (RecursionError, MemoryError,
OverflowError, ValueError, EOFError, `pickle.UnpicklingError`, `struct.error`, ...), is one
line: `UnsafePickleError` (something would be called) or `AuthorsFormatError` (the file is
damaged or not an authors' file), both naming the file and what was wrong.

The pickle is read with `encoding='latin1'`: a Python 2 `str` (BINSTRING) comes back as a
`str` whose characters are the original bytes (`as_bytes` turns it back), and NumPy array
data written by Python 2 decodes correctly. Keys may therefore be `str` (`'productid'`) or,
in files written with bytes keys, `bytes` (`b'productid'`); `get_field` accepts both.
"""

from __future__ import annotations

import importlib
import io
import math
import pickle
import pickletools
import re
import struct
import tokenize
from typing import Any, Callable, NamedTuple

from etils import epath
import numpy as np
from numpy.lib import format as npy_format

from dvbpr_tf_datasets.common import errors

_MISSING = object()

# The memory budget of one load (see the module docstring): bytes per byte of the file, plus
# a constant for the small files whose size says little.
MEMORY_BUDGET_PER_BYTE = 64
MEMORY_BUDGET_BASE = 256 * 2**20
# Containers in containers (and open MARKs) at most this deep. The authors' files need 6
# (array > dict > list > dict > value, the arrays' states one more); consumers that recurse
# in Python stay far from the interpreter's recursion limit (1000).
MAX_NESTING = 100
# The `.npy` header is at most this long (NumPy's own `max_header_size` default).
MAX_HEADER_SIZE = 10_000


def memory_budget(file_size: int) -> int:
  """The most bytes a load of a `file_size`-byte file may allocate (see the module docstring)."""
  return MEMORY_BUDGET_PER_BYTE * file_size + MEMORY_BUDGET_BASE


# (module, name) as written in the pickle -> (module to import, attribute).
_ALLOWED_GLOBALS: dict[tuple[str, str], tuple[str, str]] = {
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
}
ALLOWED_GLOBALS = frozenset(_ALLOWED_GLOBALS)
_RECONSTRUCT = ("numpy._core.multiarray", "_reconstruct")
_SCALAR = ("numpy._core.multiarray", "scalar")
_NDARRAY = ("numpy", "ndarray")
_DTYPE = ("numpy", "dtype")

AUTHORS_FIELDS = ("user_train", "user_validation", "user_test", "Item", "usernum", "itemnum")

# What `dtype.__reduce__` writes as the code of a plain dtype: kind and size ('f8', 'S10').
_DTYPE_CODE = re.compile(r"[biufcOSUV][0-9]{1,10}\Z")
_MAX_NDIM = 32  # NumPy allows 64; np.save of the authors' arrays writes 1.
_SHORT = 256  # Strings up to this many bytes are read by the scan (names, codes); longer skipped.
_CHUNK = 1 << 16  # The scan's read size.


class UnsafePickleError(errors.DatasetError):
  """The pickle names a global, or calls one in a way, that the loader does not admit."""


class AuthorsFormatError(errors.DatasetError):
  """The file is not (or not entirely) in the authors' dataset format."""


class AuthorsDataset(NamedTuple):
  """The six parts of an authors' file, as the authors' scripts unpack them."""

  user_train: Any  # dict or list: user -> list of {'productid': item index}
  user_validation: Any  # same, one interaction per user
  user_test: Any  # same, one interaction per user
  items: Any  # `Item`: dict or list: item index -> {'imgs': JPEG, 'c': category (optional)}
  usernum: int
  itemnum: int


def _resolve(module: str, name: str):
  """Imports an admitted global; `numpy._core` falls back to `numpy.core` on NumPy 1.x."""
  try:
    return getattr(importlib.import_module(module), name)
  except ImportError:
    if module.startswith("numpy._core"):
      legacy = "numpy.core" + module[len("numpy._core"):]
      return getattr(importlib.import_module(legacy), name)
    raise


def _refused_global(source: str, module: str, name: str) -> UnsafePickleError:
  # ascii(): a name read from the file may hold newlines or control characters.
  shown = ascii(f"{module}.{name}"[:200])[1:-1]
  return UnsafePickleError(
      f"{source}: the pickle asks for the global '{shown}', which this loader refuses "
      "(it admits only NumPy array and scalar reconstruction). The file is not one of the "
      "authors' dataset files, or it has been altered: do not load it with "
      "np.load(allow_pickle=True); download it again from the authors' release."
  )


def _refused_call(source: str, what: str) -> UnsafePickleError:
  return UnsafePickleError(
      f"{source}: the pickle calls {what}, which np.save never writes; the file is not one of "
      "the authors' dataset files: do not load it with np.load(allow_pickle=True)."
  )


def _one_line(text: str, limit: int = 300) -> str:
  text = " ".join(str(text).split())
  return text if len(text) <= limit else text[:limit - 3] + "..."


# ------------------------------------------------------------------------------------------
# The scan.

_OPCODE_NAMES = {op.code.encode("latin1")[0]: op.name for op in pickletools.opcodes}
# Opcodes that can call or look up arbitrary objects: refused as unsafe.
_UNSAFE_OPCODES = frozenset(
    code for code, name in _OPCODE_NAMES.items()
    if name in ("INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "PERSID",
                "BINPERSID", "NEXT_BUFFER", "READONLY_BUFFER", "BYTEARRAY8")
)

# Estimated bytes allocated per opcode or element (CPython 3.11, 64-bit), rounded up.
_COST_SCALAR = 32  # an int or float object and its stack slot
_COST_CONTAINER = 80  # an empty list, dict or tuple
_COST_SET = 256  # an empty set or frozenset
_COST_LIST_ITEM = 16  # a list slot, with over-allocation
_COST_DICT_ITEM = 112  # a dict entry and index, with a resize's old and new tables
_COST_SET_ITEM = 64
_COST_TUPLE_ITEM = 8
_COST_MEMO = 112  # a memo dict entry and its int key
_COST_OBJECT = 256  # a dtype, an array header, a global


def _own_flags(dtype: np.dtype, flags: int) -> bool:
  """Whether a pickled dtype state's `flags` are those of `dtype`.

  The flags tell NumPy how to pickle, copy and free the items (an object dtype has 63): set
  on another dtype they make NumPy treat raw bytes as pointers. A plain dtype may also carry
  NPY_NEEDS_INIT (8) or not, as NumPy versions differ on it for 'U'.
  """
  if dtype.hasobject:
    return flags == dtype.flags
  return flags & ~0x08 == 0


class _Val:
  """What the scan knows of one value on the pickle machine's stack (ints are plain ints)."""

  __slots__ = ("kind", "depth", "sealed", "length", "value", "items", "itemsize", "built")

  def __init__(self, kind: str, depth: int = 0, length: int = 0, value: Any = None,
               items: list | None = None, itemsize: int = 0):
    # 'none', 'float', 'bigint', 'str' (py2 str), 'text' (unicode), 'bytes', 'list', 'dict',
    # 'set', 'tuple', 'frozenset', 'global', 'dtype', 'ndarray', 'scalar'.
    self.kind = kind
    self.depth = depth  # containers nested inside, this one included
    self.sealed = False  # placed inside another value: must not change any more
    self.length = length  # elements, or bytes of a string
    self.value = value  # short strings' text, globals' (module, name), dtypes' code
    self.items = items  # tuples' elements (short tuples only)
    self.itemsize = itemsize  # dtypes: bytes per element (count x itemsize of array data)
    self.built = False  # dtypes and arrays: BUILD seen


# The leaves whose value the scan does not need are shared.
_NONE = _Val("none")
_FLOAT = _Val("float")
_BIGINT = _Val("bigint")
_UNHASHABLE = frozenset({"list", "dict", "set", "ndarray"})


def _describe_val(v: Any) -> str:
  """A scanned value in words, for messages."""
  if type(v) is not _Val:
    return "an int" if not isinstance(v, bool) else "a bool"
  if v.kind in ("str", "text", "bytes"):
    return f"a string of {v.length} bytes"
  if v.kind in ("list", "dict", "set", "tuple", "frozenset"):
    return f"a {v.kind} of {v.length} elements"
  if v.kind == "global":
    return f"the global {'.'.join(v.value)}"
  return {"none": "None", "float": "a float", "bigint": "a long int"}.get(v.kind, f"a {v.kind}")


class _Scan:
  """One pass over the pickle's opcodes that refuses what must not be loaded.

  The scan reads from `f` between `start` and `end` (the file size) through its own buffer,
  never more than `_CHUNK` bytes or a short string at a time; long string payloads are skipped
  with `seek`, their declared lengths checked against the bytes that remain first.
  """

  def __init__(self, f, start: int, end: int, source: str, budget: int):
    self._f = f
    self._source = source
    self._end = end
    self._budget = budget
    self._buf = b""
    self._i = 0
    self._base = start  # File offset of _buf[0]; the file is at _base + len(_buf).
    self._op = start  # Offset of the opcode being scanned, for messages.
    self._code = pickle.PROTO[0]  # The opcode being scanned.
    self.stack: list = []
    self.marks: list[list] = []
    self.memo: list = []
    self.cost = 0
    f.seek(start)

  # -- Reading ------------------------------------------------------------------------------

  def _remaining(self) -> int:
    return self._end - self._base - self._i

  def _fill(self, n: int) -> None:
    """Makes at least `n` unread bytes available in the buffer, or as many as the file has."""
    rest = self._buf[self._i:]
    self._base += self._i
    want = min(max(n, _CHUNK) - len(rest), self._end - self._base - len(rest))
    self._buf = rest + (self._f.read(want) if want > 0 else b"")
    self._i = 0

  def _take(self, n: int) -> bytes:
    i = self._i
    if i + n > len(self._buf):
      self._fill(n)
      i = 0
      if n > len(self._buf):
        raise self._truncated()
    self._i = i + n
    return self._buf[i:i + n]

  def _skip(self, n: int) -> None:
    if self._i + n <= len(self._buf):
      self._i += n
      return
    target = self._base + self._i + n
    if target > self._end:
      raise self._truncated()
    self._f.seek(target)
    self._base, self._buf, self._i = target, b"", 0

  def _line(self) -> bytes:
    k = self._buf.find(b"\n", self._i, self._i + _SHORT)
    if k < 0:
      self._fill(_SHORT)
      k = self._buf.find(b"\n", 0, _SHORT)
      if k < 0:
        raise self._error(f"a GLOBAL line longer than {_SHORT} bytes, or cut off")
    line = self._buf[self._i:k]
    self._i = k + 1
    return line

  def _unpack(self, fmt: str, n: int) -> int:
    return struct.unpack(fmt, self._take(n))[0]

  # -- Errors -------------------------------------------------------------------------------

  def _error(self, what: str) -> AuthorsFormatError:
    return AuthorsFormatError(
        f"{self._source}: the pickle after the .npy header holds {what} (at offset "
        f"{self._op}): the file is damaged or not an authors' file; download it again."
    )

  def _truncated(self) -> AuthorsFormatError:
    return AuthorsFormatError(
        f"{self._source}: the pickle after the .npy header is damaged or truncated (it ends "
        f"at byte {self._end} inside the opcode at offset {self._op}, before its STOP); "
        "download the file again."
    )

  def _over_budget(self) -> AuthorsFormatError:
    return AuthorsFormatError(
        f"{self._source}: loading the pickle would take more than "
        f"{self._budget / 2**20:.0f} MiB (the budget for a {self._end}-byte file: "
        f"{MEMORY_BUDGET_PER_BYTE} x size + {MEMORY_BUDGET_BASE // 2**20} MiB), reached at "
        f"offset {self._op}: not an authors' file."
    )

  def _nested(self, depth: int) -> None:
    if depth > MAX_NESTING:
      raise AuthorsFormatError(
          f"{self._source}: the pickle nests containers more than {MAX_NESTING} deep (at "
          f"offset {self._op}; the authors' files nest 6): not an authors' file."
      )

  # -- The stack ----------------------------------------------------------------------------

  def _pop(self, n: int = 1) -> list:
    if len(self.stack) < n:
      raise self._error(f"{_OPCODE_NAMES[self._code]} on a stack of {len(self.stack)}")
    items = self.stack[-n:]
    del self.stack[-n:]
    return items

  def _pop_mark(self) -> list:
    if not self.marks:
      raise self._error(f"{_OPCODE_NAMES[self._code]} without a MARK")
    items = self.stack
    self.stack = self.marks.pop()
    return items

  def _top(self) -> Any:
    if not self.stack:
      raise self._error(f"{_OPCODE_NAMES[self._code]} on an empty stack")
    return self.stack[-1]

  def _contain(self, items: list, depth: int = 1, target: _Val | None = None) -> int:
    """Seals `items` (now inside `target`, a container) and returns the container's depth."""
    for x in items:
      if type(x) is _Val:
        if x is target:
          raise self._error(f"a {target.kind} that contains itself")
        x.sealed = True
        if x.depth >= depth:
          depth = x.depth + 1
    self._nested(depth)
    return depth

  def _add(self, kind: str, items: list, count: int, cost: int) -> None:
    """APPEND(S), SETITEM(S), ADDITEMS: `items` into the `kind` container below them."""
    target = self._top()
    if type(target) is not _Val or target.kind != kind:
      raise self._error(f"{_OPCODE_NAMES[self._code]} onto {_describe_val(target)}")
    if target.sealed:
      raise self._error(f"a {kind} changed after it was placed inside another value")
    target.depth = self._contain(items, target.depth, target)
    target.length += count
    self.cost += cost * count

  def _push_tuple(self, items: list, kind: str = "tuple") -> None:
    depth = self._contain(items)
    keep = items if len(items) <= 64 else None
    self.stack.append(_Val(kind, depth=depth, length=len(items), items=keep))
    if kind == "tuple":
      self.cost += _COST_CONTAINER + _COST_TUPLE_ITEM * len(items)
    else:
      self.cost += _COST_SET + _COST_SET_ITEM * len(items)

  def _string(self, kind: str, n: int, factor: int) -> None:
    if n < 0 or n > self._remaining():
      raise AuthorsFormatError(
          f"{self._source}: the pickle declares a {_OPCODE_NAMES[self._code]} of {n} bytes at "
          f"offset {self._op}, but only {self._remaining()} bytes follow: the file is damaged "
          "or truncated; download it again."
      )
    value = None
    if n <= _SHORT:
      raw = self._take(n)
      if kind == "bytes":
        value = raw
      else:
        value = raw.decode("latin1" if kind == "str" else "utf-8", "replace")
    else:
      self._skip(n)
    self.cost += _COST_CONTAINER + factor * n
    self.stack.append(_Val(kind, length=n, value=value))

  # -- Opcodes ------------------------------------------------------------------------------

  def run(self) -> None:
    """Scans up to STOP; raises UnsafePickleError or AuthorsFormatError."""
    handlers = _HANDLERS
    budget = self._budget
    while True:
      self._op = self._base + self._i
      if self._i < len(self._buf):
        code = self._buf[self._i]
        self._i += 1
      else:
        code = self._take(1)[0]
      self._code = code
      handler = handlers.get(code)
      if handler is None:
        name = _OPCODE_NAMES.get(code)
        if code in _UNSAFE_OPCODES:
          raise UnsafePickleError(
              f"{self._source}: the pickle uses the opcode {name} at offset {self._op}, which "
              "can call or look up arbitrary objects and which the authors' files never use: "
              "do not load the file with np.load(allow_pickle=True)."
          )
        if name is None:
          raise self._error(f"the byte 0x{code:02x}, which is no pickle opcode")
        raise self._error(f"the opcode {name}, which pickle protocols 2-4 do not write for "
                          "plain data")
      if handler(self):
        return
      if self.cost > budget:  # Each handler adds its estimate to `cost`.
        raise self._over_budget()

  def op_proto(self):
    protocol = self._take(1)[0]
    if protocol > pickle.HIGHEST_PROTOCOL:
      raise self._error(f"an unknown pickle protocol {protocol}")

  def op_frame(self):
    n = self._unpack("<Q", 8)
    if n > self._remaining():
      raise self._error(f"a FRAME of {n} bytes where {self._remaining()} remain")
    self.cost += n

  def op_stop(self):
    if len(self.stack) != 1 or self.marks:
      raise self._error(f"STOP with {len(self.stack)} values on the stack and "
                        f"{len(self.marks)} open MARKs")
    return True

  def op_mark(self):
    if len(self.marks) >= MAX_NESTING:
      self._nested(len(self.marks) + 1)
    self.marks.append(self.stack)
    self.stack = []

  def op_pop(self):
    if self.stack:
      self.stack.pop()
    else:
      self._pop_mark()

  def op_pop_mark(self):
    self._pop_mark()

  def op_dup(self):
    self.stack.append(self._top())
    self.cost += 8

  def op_none(self):
    self.stack.append(_NONE)
    self.cost += 8

  def op_newtrue(self):
    self.stack.append(True)
    self.cost += 8

  def op_newfalse(self):
    self.stack.append(False)
    self.cost += 8

  def op_binint(self):
    self.stack.append(self._unpack("<i", 4))
    self.cost += _COST_SCALAR

  def _byte(self) -> int:
    i = self._i
    if i < len(self._buf):
      self._i = i + 1
      return self._buf[i]
    return self._take(1)[0]

  def op_binint1(self):
    self.stack.append(self._byte())
    self.cost += _COST_SCALAR

  def op_binint2(self):
    self.stack.append(self._unpack("<H", 2))
    self.cost += _COST_SCALAR

  def op_long1(self):
    n = self._take(1)[0]
    self.stack.append(int.from_bytes(self._take(n), "little", signed=True))
    self.cost += _COST_SCALAR + 2 * n

  def op_long4(self):
    n = self._unpack("<i", 4)
    if n < 0 or n > self._remaining():
      raise self._error(f"a LONG4 of {n} bytes where {self._remaining()} remain")
    if n <= 16:
      self.stack.append(int.from_bytes(self._take(n), "little", signed=True))
    else:
      self._skip(n)
      self.stack.append(_BIGINT)
    self.cost += _COST_SCALAR + 3 * n

  def op_binfloat(self):
    self._skip(8)
    self.stack.append(_FLOAT)
    self.cost += _COST_SCALAR

  # Python 2 str (read as latin1 text: the bytes, then the str); unicode (UTF-8: the bytes,
  # then up to 4 bytes a character); bytes.
  def op_short_binstring(self):
    self._string("str", self._byte(), 2)

  def op_binstring(self):
    self._string("str", self._unpack("<i", 4), 2)

  def op_short_binunicode(self):
    self._string("text", self._byte(), 5)

  def op_binunicode(self):
    self._string("text", self._unpack("<I", 4), 5)

  def op_binunicode8(self):
    self._string("text", self._unpack("<Q", 8), 5)

  def op_short_binbytes(self):
    self._string("bytes", self._byte(), 2)

  def op_binbytes(self):
    self._string("bytes", self._unpack("<I", 4), 2)

  def op_binbytes8(self):
    self._string("bytes", self._unpack("<Q", 8), 2)

  def _empty(self, kind: str, cost: int):
    self.stack.append(_Val(kind, depth=1))
    self.cost += cost

  def op_empty_list(self):
    self._empty("list", _COST_CONTAINER)

  def op_empty_dict(self):
    self._empty("dict", _COST_CONTAINER)

  def op_empty_set(self):
    self._empty("set", _COST_SET)

  def op_empty_tuple(self):
    self._push_tuple([])

  def op_append(self):
    self._add("list", self._pop(1), 1, _COST_LIST_ITEM)

  def op_appends(self):
    items = self._pop_mark()
    self._add("list", items, len(items), _COST_LIST_ITEM)

  def _hashable(self, keys: list) -> None:
    for key in keys:
      if type(key) is _Val and key.kind in _UNHASHABLE:
        raise self._error(f"{_describe_val(key)} as a dict key or set element")

  def op_setitem(self):
    items = self._pop(2)
    self._hashable(items[:1])
    self._add("dict", items, 1, _COST_DICT_ITEM)

  def op_setitems(self):
    items = self._pop_mark()
    if len(items) % 2:
      raise self._error(f"SETITEMS with an odd number ({len(items)}) of keys and values")
    self._hashable(items[::2])
    self._add("dict", items, len(items) // 2, _COST_DICT_ITEM)

  def op_additems(self):
    items = self._pop_mark()
    self._hashable(items)
    self._add("set", items, len(items), _COST_SET_ITEM)

  def op_tuple(self):
    self._push_tuple(self._pop_mark())

  def op_tuple1(self):
    self._push_tuple(self._pop(1))

  def op_tuple2(self):
    self._push_tuple(self._pop(2))

  def op_tuple3(self):
    self._push_tuple(self._pop(3))

  def op_frozenset(self):
    items = self._pop_mark()
    self._hashable(items)
    self._push_tuple(items, "frozenset")

  def _put(self, i: int):
    value = self._top()
    if i < len(self.memo):
      self.memo[i] = value
    elif i == len(self.memo):
      self.memo.append(value)
      self.cost += _COST_MEMO
    else:
      raise self._error(f"memo entry {i} stored when only {len(self.memo)} entries exist "
                        "(a pickle numbers its memo entries 0, 1, 2, ...)")

  def _get(self, i: int):
    if i >= len(self.memo):
      raise self._error(f"a reference to memo entry {i} when only {len(self.memo)} entries "
                        "were stored before it")
    self.stack.append(self.memo[i])
    self.cost += 8

  def op_binput(self):
    self._put(self._byte())

  def op_long_binput(self):
    self._put(self._unpack("<I", 4))

  def op_memoize(self):
    self._put(len(self.memo))

  def op_binget(self):
    self._get(self._byte())

  def op_long_binget(self):
    self._get(self._unpack("<I", 4))

  def _global(self, module: str, name: str):
    target = _ALLOWED_GLOBALS.get((module, name))
    if target is None:
      raise _refused_global(self._source, module, name)
    self.stack.append(_Val("global", value=target))
    self.cost += _COST_OBJECT

  def op_global(self):
    module = self._line().decode("utf-8", "replace")
    name = self._line().decode("utf-8", "replace")
    self._global(module, name)

  def op_stack_global(self):
    module, name = self._pop(2)
    for part in (module, name):
      if type(part) is not _Val or part.kind not in ("str", "text") or part.value is None:
        raise self._error(f"a STACK_GLOBAL whose name is {_describe_val(part)}")
    self._global(module.value, name.value)

  def op_reduce(self):
    func, args = self._pop(2)
    if type(func) is not _Val or func.kind != "global":
      raise self._error(f"a REDUCE that calls {_describe_val(func)}")
    name = ".".join(func.value)
    if type(args) is not _Val or args.kind != "tuple" or args.items is None:
      raise _refused_call(self._source, f"{name} with {_describe_val(args)} as arguments")
    a = args.items
    if func.value == _RECONSTRUCT:
      if not (len(a) == 3 and type(a[0]) is _Val and a[0].kind == "global"
              and a[0].value == _NDARRAY and type(a[1]) is _Val and a[1].kind == "tuple"
              and a[1].items == [0] and type(a[2]) is _Val and a[2].value in ("b", b"b")):
        raise _refused_call(self._source, f"{name} with other arguments than "
                            "(numpy.ndarray, (0,), 'b')")
      result = _Val("ndarray", depth=1)
    elif func.value == _DTYPE:
      code = a[0].value if a and type(a[0]) is _Val and a[0].kind in ("str", "text") else None
      if not (len(a) == 3 and code is not None and _DTYPE_CODE.match(code)
              and all(x in (0, 1) and type(x) in (int, bool) for x in a[1:])):
        raise _refused_call(self._source, f"{name} with other arguments than (code, 0, 1) for "
                            "a plain dtype code such as 'f8' or 'O8'")
      try:
        itemsize = np.dtype(code).itemsize
      except TypeError as e:
        raise _refused_call(self._source, f"{name}({code!r}): {_one_line(e)}") from e
      result = _Val("dtype", depth=1, value=code, itemsize=itemsize)
    elif func.value == _SCALAR:
      if not (len(a) == 2 and type(a[0]) is _Val and a[0].kind == "dtype"
              and a[0].value[0] != "O" and type(a[1]) is _Val
              and a[1].kind in ("str", "bytes") and a[1].length == a[0].itemsize):
        raise _refused_call(self._source, f"{name} with other arguments than (dtype, its "
                            "raw bytes)")
      result = _Val("scalar")
    else:
      raise _refused_call(self._source, name)
    self.stack.append(result)
    self.cost += _COST_OBJECT + result.itemsize

  def op_build(self):
    inst, state = self._pop(2)
    if type(inst) is not _Val or inst.kind not in ("ndarray", "dtype"):
      raise self._error(f"a BUILD (set the state) of {_describe_val(inst)}")
    if inst.built or inst.sealed:
      raise self._error(f"a second BUILD of a {inst.kind}, or one after it was used")
    if type(state) is not _Val or state.kind != "tuple" or state.items is None:
      raise self._error(f"a {inst.kind} whose state is {_describe_val(state)}")
    if inst.kind == "dtype":
      self._build_dtype(inst, state.items)
    else:
      self._build_array(inst, state.items)
    inst.built = True
    self.stack.append(inst)

  def _build_dtype(self, dtype: _Val, s: list) -> None:
    # (3, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
    if not (len(s) in (8, 9) and s[0] == len(s) - 5 and type(s[1]) is _Val
            and s[1].value in ("<", ">", "|", "=") and all(x is _NONE for x in s[2:5])
            and all(type(x) is int for x in s[5:8]) and (len(s) == 8 or s[8] is _NONE)):
      raise self._error(f"a dtype {dtype.value!r} whose state is not that of a plain dtype")
    if not _own_flags(np.dtype(dtype.value), s[7]):
      raise self._error(f"a dtype {dtype.value!r} with the flags {s[7]}, not its own "
                        f"({np.dtype(dtype.value).flags})")
    if dtype.value[0] in "SUV" and s[5] > dtype.itemsize:
      dtype.itemsize = s[5]  # Flexible dtypes take their size from the state.

  def _build_array(self, array: _Val, s: list) -> None:
    # (version, shape, dtype, is_fortran, data), or without the version.
    if len(s) == 5 and s[0] == 1 and type(s[0]) is int:
      s = s[1:]
    if len(s) != 4:
      raise self._error(f"an array state of {len(s)} elements, or of a version other than 1 "
                        "(np.save writes (1, shape, dtype, is_fortran, data))")
    shape, dtype, _, data = s
    if not (type(shape) is _Val and shape.kind == "tuple" and shape.items is not None
            and len(shape.items) <= _MAX_NDIM
            and all(type(n) is int and n >= 0 for n in shape.items)):
      raise self._error(f"an array whose shape is {_describe_val(shape)}, not a tuple of "
                        "sizes")
    if type(dtype) is not _Val or dtype.kind != "dtype":
      raise self._error(f"an array whose dtype is {_describe_val(dtype)}")
    count = math.prod(shape.items)
    shape_text = str(tuple(shape.items))
    if dtype.value[0] == "O":
      if type(data) is not _Val or data.kind != "list" or data.length != count:
        raise AuthorsFormatError(
            f"{self._source}: an object array of shape {shape_text} at offset {self._op} "
            f"holds {_describe_val(data)} in its pickled state, not a list of {count}: "
            "the file is damaged or not an authors' file."
        )
      array.depth = data.depth
      self.cost += 8 * count
    else:
      if (type(data) is not _Val or data.kind not in ("str", "bytes")
          or data.length != count * dtype.itemsize):
        raise AuthorsFormatError(
            f"{self._source}: a {dtype.value} array of shape {shape_text} at offset {self._op} "
            f"holds {_describe_val(data)} as its data, not {count * dtype.itemsize} bytes: "
            "the file is damaged or not an authors' file."
        )
      self.cost += 2 * count * dtype.itemsize  # The data as bytes, then in the array.


# Opcode -> its `_Scan.op_<name>` method; the opcodes without one are refused.
_HANDLERS: dict[int, Callable[[_Scan], Any]] = {
    code: getattr(_Scan, "op_" + name.lower())
    for code, name in _OPCODE_NAMES.items() if hasattr(_Scan, "op_" + name.lower())
}


# ------------------------------------------------------------------------------------------
# The load.


def _check_call(source: str, func: Any, args: Any) -> None:
  """Raises UnsafePickleError unless `func(*args)` is a call that np.save writes."""
  if type(args) is not tuple:
    raise _refused_call(source, f"{func!r:.80} with {describe(args)} as arguments")
  if func is _resolve(*_RECONSTRUCT):
    if (len(args) == 3 and args[0] is np.ndarray and type(args[1]) is tuple
        and args[1] == (0,) and type(args[2]) in (str, bytes) and args[2] in ("b", b"b")):
      return
  elif func is np.dtype:
    if (len(args) == 3 and type(args[0]) is str and _DTYPE_CODE.match(args[0])
        and all(x in (0, 1) and type(x) in (int, bool) for x in args[1:])):
      return
  elif func is _resolve(*_SCALAR):
    if (len(args) == 2 and isinstance(args[0], np.dtype) and not args[0].hasobject
        and type(args[1]) in (str, bytes) and len(args[1]) == args[0].itemsize):
      return
  shown = ", ".join(describe(a) for a in args[:4]) + (", ..." if len(args) > 4 else "")
  raise _refused_call(source, f"{getattr(func, '__name__', type(func).__name__)}({shown})")


def _check_array_state(source: str, array: np.ndarray, state: Any) -> None:
  """Raises AuthorsFormatError unless `state` fills `array` with exactly its shape's elements."""
  if array.size or type(state) is not tuple or len(state) not in (4, 5):
    raise AuthorsFormatError(f"{source}: an array state that np.save does not write "
                             f"({describe(state)}): the file is damaged.")
  shape, dtype, _, data = state[-4:]
  if not (type(shape) is tuple and len(shape) <= _MAX_NDIM
          and all(type(n) is int and n >= 0 for n in shape) and isinstance(dtype, np.dtype)):
    raise AuthorsFormatError(f"{source}: an array state whose shape or dtype is not one: "
                             "the file is damaged.")
  count = math.prod(shape)
  if dtype.hasobject:
    if type(data) is not list or len(data) != count:
      raise AuthorsFormatError(
          f"{source}: an object array of shape {shape} holds {describe(data)} in its pickled "
          f"state, not a list of {count}: the file is damaged or not an authors' file."
      )
  elif type(data) not in (str, bytes) or len(data) != count * dtype.itemsize:
    raise AuthorsFormatError(
        f"{source}: a {dtype} array of shape {shape} holds {describe(data)} as its data, not "
        f"{count * dtype.itemsize} bytes: the file is damaged or not an authors' file."
    )


def _load_reduce(self: _RestrictedUnpickler) -> None:
  stack = self.stack
  args = stack.pop()
  func = stack[-1]
  _check_call(self._source, func, args)
  stack[-1] = func(*args)


def _load_build(self: _RestrictedUnpickler) -> None:
  stack = self.stack
  state = stack.pop()
  inst = stack[-1]
  if type(inst) is np.ndarray:
    _check_array_state(self._source, inst, state)
  elif isinstance(inst, np.dtype):
    # A plain dtype's state: no subarray, names, fields; its own flags (before the BUILD).
    if not (type(state) is tuple and len(state) in (8, 9)
            and all(x is None for x in state[2:5]) and type(state[7]) is int
            and _own_flags(inst, state[7])):
      raise AuthorsFormatError(f"{self._source}: a dtype state that np.save does not write "
                               f"for {inst}: the file is damaged.")
  else:
    raise AuthorsFormatError(f"{self._source}: the pickle sets the state of a "
                             f"{type(inst).__name__}, which np.save never does.")
  inst.__setstate__(state)


def _refuse_opcode(code: int, self: _RestrictedUnpickler) -> None:
  raise AuthorsFormatError(f"{self._source}: the pickle uses the opcode "
                           f"{_OPCODE_NAMES.get(code, hex(code))}, which this loader refuses.")


class _Dispatch(dict):
  """The unpickler's opcode table: opcodes not in it are refused."""

  def __missing__(self, code: int):
    return lambda unpickler: _refuse_opcode(code, unpickler)


class _RestrictedUnpickler(pickle._Unpickler):  # pylint: disable=protected-access
  """A pure-Python unpickler: only `ALLOWED_GLOBALS`, the scanned opcodes, checked calls."""

  dispatch = _Dispatch(
      {code: f for code, f in pickle._Unpickler.dispatch.items()  # pylint: disable=protected-access
       if code in _HANDLERS}
  )
  dispatch[pickle.REDUCE[0]] = _load_reduce
  dispatch[pickle.BUILD[0]] = _load_build

  def __init__(self, file, source: str):
    super().__init__(file, encoding="latin1")
    self._source = source

  def find_class(self, module: str, name: str):
    target = _ALLOWED_GLOBALS.get((module, name))
    if target is None:
      raise _refused_global(self._source, module, name)
    return _resolve(*target)

  def persistent_load(self, pid):
    raise UnsafePickleError(
        f"{self._source}: the pickle holds a persistent id ({pid!r:.60}); the authors' files "
        "have none, so the file is not one of them."
    )


# What a damaged pickle can raise out of the load (besides DatasetError): each becomes one line.
_LOAD_ERRORS = (
    pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, LookupError,
    OverflowError, RuntimeError, MemoryError, struct.error, UnicodeError, SyntaxError,
)  # RuntimeError includes RecursionError, and what NumPy raises for corrupted array pickles.


def _read_npy_header(f, source: str, size: int) -> tuple[tuple, np.dtype]:
  """Reads the `.npy` header, its length checked against the file and MAX_HEADER_SIZE first."""
  version = npy_format.read_magic(f)
  if version not in ((1, 0), (2, 0)):
    raise AuthorsFormatError(
        f"{source}: .npy format version {version[0]}.{version[1]} is not one the authors "
        "wrote (1.0 or 2.0)."
    )
  width = 2 if version == (1, 0) else 4
  raw = f.read(width)
  length = int.from_bytes(raw, "little")
  if len(raw) < width or length > MAX_HEADER_SIZE or f.tell() + length > size:
    raise AuthorsFormatError(
        f"{source}: the .npy header claims {length} bytes (the file has {size}, a header at "
        f"most {MAX_HEADER_SIZE}): not a valid .npy file; expected the authors' dataset file "
        "as downloaded, not renamed or truncated."
    )
  f.seek(f.tell() - width)
  if version == (1, 0):
    shape, _, dtype = npy_format.read_array_header_1_0(f)
  else:
    shape, _, dtype = npy_format.read_array_header_2_0(f)
  return shape, dtype


def load_pickled_npy(path: epath.PathLike) -> Any:
  """Returns the object pickled in an object-array `.npy` file, via the restricted unpickler.

  The file is streamed: the `.npy` header is parsed with `numpy.lib.format` (its length
  checked first), the pickle scanned (`_Scan`), then loaded from the same open file object.
  Memory: at most `memory_budget(file size)`, enforced by the scan's accounting.

  Raises:
    FileNotFoundError: the file does not exist.
    UnsafePickleError: the pickle names a global outside `ALLOWED_GLOBALS`, calls one with
      other arguments than np.save writes, or uses an opcode that can call things.
    AuthorsFormatError: not a `.npy` file, not an object array, a damaged pickle, or one that
      nests, refers or allocates beyond the limits in the module docstring.
  """
  path = epath.Path(path)
  source = str(path)
  with path.open("rb") as f:
    size = f.seek(0, io.SEEK_END)
    f.seek(0)
    try:
      shape, dtype = _read_npy_header(f, source, size)
    except errors.DatasetError:
      raise
    except _LOAD_ERRORS + (tokenize.TokenError,) as e:  # NumPy tokenizes the header's dict.
      raise AuthorsFormatError(
          f"{source}: not a valid .npy file ({type(e).__name__}: {_one_line(e)}); expected "
          "the authors' dataset file as downloaded, not renamed or truncated."
      ) from e
    if not dtype.hasobject:
      raise AuthorsFormatError(
          f"{source}: the .npy file holds a plain {dtype} array of shape {shape}, not a pickled "
          "object array as the authors' dataset files do."
      )
    start = f.tell()
    try:
      _Scan(f, start, size, source, memory_budget(size)).run()
      f.seek(start)
      return _RestrictedUnpickler(f, source).load()
    except errors.DatasetError:
      raise
    except MemoryError as e:
      raise AuthorsFormatError(
          f"{source}: loading the pickle ran out of memory (MemoryError: {_one_line(e)}); its "
          f"budget is {memory_budget(size) / 2**20:.0f} MiB: the file is damaged or not an "
          "authors' file."
      ) from e
    except _LOAD_ERRORS as e:
      raise AuthorsFormatError(
          f"{source}: the pickle after the .npy header is damaged or truncated "
          f"({type(e).__name__}: {_one_line(e)}); download the file again."
      ) from e


def load_authors_dataset(path: epath.PathLike) -> AuthorsDataset:
  """Loads an authors' file and checks its top-level structure.

  Only the top level is checked here (six parts, containers of the right kind, integer
  counts); the builder checks each user and item as it reads them.

  Raises:
    FileNotFoundError, UnsafePickleError: see `load_pickled_npy`.
    AuthorsFormatError: the file does not hold `[user_train, user_validation, user_test,
      Item, usernum, itemnum]`.
  """
  obj = load_pickled_npy(path)
  expected = "expected the authors' list of 6 elements [" + ", ".join(AUTHORS_FIELDS) + "]"
  if isinstance(obj, np.ndarray) and obj.ndim == 0 and obj.dtype == object:
    obj = obj.item()  # np.save of a single object (a dict, ...) wraps it in a 0-d array.
  if isinstance(obj, np.ndarray):
    if obj.dtype != object or obj.ndim != 1 or len(obj) != 6:
      raise AuthorsFormatError(f"{path}: {expected}, found {describe(obj)}.")
    parts = list(obj)
  elif isinstance(obj, (list, tuple)) and len(obj) == 6:
    parts = list(obj)
  else:
    raise AuthorsFormatError(f"{path}: {expected}, found {describe(obj)}.")
  for name, part in zip(AUTHORS_FIELDS[:4], parts[:4]):
    if not isinstance(part, (dict, list, tuple)):
      raise AuthorsFormatError(
          f"{path}: {name} (element {AUTHORS_FIELDS.index(name)} of 6) should be a dict or a "
          f"list, found {describe(part)}; {expected}."
      )
  counts = []
  for name, part in zip(AUTHORS_FIELDS[4:], parts[4:]):
    if isinstance(part, (bool, np.bool_)) or not isinstance(part, (int, np.integer)):
      raise AuthorsFormatError(
          f"{path}: {name} (element {AUTHORS_FIELDS.index(name)} of 6) should be an integer "
          f"count, found {describe(part)}; {expected}."
      )
    counts.append(int(part))
  del obj
  return AuthorsDataset(*parts[:4], *counts)


def describe(obj: Any) -> str:
  """A short description of an object's kind and size, for error messages."""
  if isinstance(obj, dict):
    return f"dict with {len(obj)} keys"
  if isinstance(obj, (list, tuple)):
    return f"{type(obj).__name__} of {len(obj)} elements"
  if isinstance(obj, np.ndarray):
    return f"ndarray of shape {obj.shape} and dtype {obj.dtype}"
  if isinstance(obj, (str, bytes)):
    return f"{type(obj).__name__} of length {len(obj)}"
  return type(obj).__name__


def get_field(record: Any, key: str, default: Any = _MISSING) -> Any:
  """`record[key]` for a dict whose keys are `str` or (files with bytes keys) `bytes`.

  Raises:
    KeyError: neither key is present and no default was given.
  """
  if key in record:
    return record[key]
  bkey = key.encode("ascii")
  if bkey in record:
    return record[bkey]
  if default is _MISSING:
    raise KeyError(key)
  return default


def as_bytes(value: Any) -> bytes:
  """The bytes of a py2 `str` read as latin1 (or of bytes / a uint8 array).

  Raises:
    TypeError: anything else.
  """
  if isinstance(value, bytes):
    return value
  if isinstance(value, str):
    return value.encode("latin1")
  if isinstance(value, (bytearray, memoryview)):
    return bytes(value)
  if isinstance(value, np.ndarray) and value.dtype in (np.uint8, np.int8):
    return value.tobytes()
  raise TypeError(f"expected bytes or a Python 2 str, found {describe(value)}")


def as_text(value: Any) -> str:
  """Text from a py2 unicode (`str`), a py2 `str` read as latin1, or bytes.

  Python 2 byte strings holding UTF-8 arrive as latin1-decoded `str`; they are re-decoded as
  UTF-8 when that is possible, and kept as they are otherwise.
  """
  if isinstance(value, (bytes, bytearray)):
    raw = bytes(value)
  elif isinstance(value, str):
    try:
      raw = value.encode("latin1")
    except UnicodeEncodeError:
      return value  # Real unicode text (beyond latin1).
  else:
    raise TypeError(f"expected text, found {describe(value)}")
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError:
    return raw.decode("latin1")
