"""Loading the authors' pickled `.npy` files without executing what they say.

The authors of DVBPR (Kang et al., ICDM 2017) distribute each dataset as one `.npy` file that
holds a pickled NumPy object array, written by Python 2 with `np.save`: the `.npy` header,
then a pickle (protocol 2) of a 6-element object array

    [user_train, user_validation, user_test, Item, usernum, itemnum]

`np.load(allow_pickle=True)` would run whatever callable the pickle names. This module parses
the `.npy` header itself and unpickles the rest, streaming from the same file object, with an
unpickler that admits only:

- the builtin containers and scalars (`dict`, `list`, `tuple`, `set`, `frozenset`, `int`,
  `float`, `complex`, `bool`, `str`, `bytes`, `bytearray`), under their Python 3 (`builtins`)
  and Python 2 (`__builtin__`) module names -- most of them never appear as globals, since
  pickle has opcodes for them;
- NumPy array and scalar reconstruction: `numpy.core.multiarray._reconstruct`,
  `numpy._core.multiarray._reconstruct`, `numpy.ndarray`, `numpy.dtype`,
  `numpy.core.multiarray.scalar`, `numpy._core.multiarray.scalar` (the `numpy.core` names,
  which Python 2 wrote, resolve to `numpy._core` on NumPy 2 without importing the deprecated
  `numpy.core`).

Any other global (`os.system`, `builtins.eval`, `copyreg._reconstructor`, `_codecs.encode`,
...) raises `UnsafePickleError` before anything is called: the unpickler refuses the name
itself, so the object is never looked up, let alone called.

The pickle is read with `encoding='latin1'`: a Python 2 `str` (BINSTRING) comes back as a
`str` whose characters are the original bytes (`as_bytes` turns it back), and NumPy array
data written by Python 2 decodes correctly. Keys may therefore be `str` (`'productid'`) or,
in files written with bytes keys, `bytes` (`b'productid'`); `get_field` accepts both.
"""

from __future__ import annotations

import importlib
import pickle
from typing import Any, NamedTuple

from etils import epath
import numpy as np
from numpy.lib import format as npy_format

from dvbpr_tf_datasets.common import errors

_MISSING = object()

# (module, name) as written in the pickle -> (module to import, attribute).
_BUILTIN_NAMES = (
    "dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "bool", "str",
    "bytes", "bytearray",
)
_ALLOWED_GLOBALS: dict[tuple[str, str], tuple[str, str]] = {
    **{("builtins", n): ("builtins", n) for n in _BUILTIN_NAMES},
    # Python 2 names; `long` and `unicode` are Python 3's `int` and `str`.
    **{("__builtin__", n): ("builtins", n) for n in _BUILTIN_NAMES},
    ("__builtin__", "long"): ("builtins", "int"),
    ("__builtin__", "unicode"): ("builtins", "str"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
}
ALLOWED_GLOBALS = frozenset(_ALLOWED_GLOBALS)

AUTHORS_FIELDS = ("user_train", "user_validation", "user_test", "Item", "usernum", "itemnum")


class UnsafePickleError(errors.DatasetError):
  """The pickle names a global that the restricted unpickler does not admit."""


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


class _RestrictedUnpickler(pickle.Unpickler):
  """An unpickler whose `find_class` admits only `ALLOWED_GLOBALS`."""

  def __init__(self, file, source: str):
    super().__init__(file, encoding="latin1")
    self._source = source

  def find_class(self, module: str, name: str):
    target = _ALLOWED_GLOBALS.get((module, name))
    if target is None:
      raise UnsafePickleError(
          f"{self._source}: the pickle asks for the global '{module}.{name}', which this "
          "loader refuses (it admits only builtin containers/scalars and NumPy array "
          "reconstruction). The file is not one of the authors' dataset files, or it has been "
          "altered: do not load it with np.load(allow_pickle=True); download it again from "
          "the authors' release."
      )
    return _resolve(*target)

  def persistent_load(self, pid):
    raise UnsafePickleError(
        f"{self._source}: the pickle holds a persistent id ({pid!r}); the authors' files "
        "have none, so the file is not one of them."
    )


def load_pickled_npy(path: epath.PathLike) -> Any:
  """Returns the object pickled in an object-array `.npy` file, via the restricted unpickler.

  The file is streamed: the `.npy` header is parsed with `numpy.lib.format`, then the pickle is
  read from the same open file object.

  Raises:
    FileNotFoundError: the file does not exist.
    UnsafePickleError: the pickle names a global outside `ALLOWED_GLOBALS`.
    AuthorsFormatError: not a `.npy` file, not an object array, or a damaged pickle.
  """
  path = epath.Path(path)
  source = str(path)
  with path.open("rb") as f:
    try:
      version = npy_format.read_magic(f)
      if version == (1, 0):
        shape, _, dtype = npy_format.read_array_header_1_0(f)
      elif version == (2, 0):
        shape, _, dtype = npy_format.read_array_header_2_0(f)
      else:
        raise AuthorsFormatError(
            f"{source}: .npy format version {version[0]}.{version[1]} is not one the authors "
            "wrote (1.0 or 2.0)."
        )
    except ValueError as e:
      if isinstance(e, AuthorsFormatError):
        raise
      raise AuthorsFormatError(
          f"{source}: not a valid .npy file ({e}); expected the authors' dataset file as "
          "downloaded, not renamed or truncated."
      ) from e
    if not dtype.hasobject:
      raise AuthorsFormatError(
          f"{source}: the .npy file holds a plain {dtype} array of shape {shape}, not a pickled "
          "object array as the authors' dataset files do."
      )
    try:
      return _RestrictedUnpickler(f, source).load()
    except UnsafePickleError:
      raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OverflowError) as e:
      raise AuthorsFormatError(
          f"{source}: the pickle after the .npy header is damaged or truncated "
          f"({type(e).__name__}: {e}); download the file again."
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
