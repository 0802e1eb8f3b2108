"""The checks every configuration runs on its fields: one place, one wording.

Each raises `errors.ConfigError` naming the field and what it must be
(`embedding_dim must be at least 1, got 0`), or returns the value. Bounds above keep values
that would pass the type but exhaust memory or overflow later (a 10^10-wide embedding, a
seed past 2^63) from reaching the code that would fail on them.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from dvbpr_tf.core import errors

MAX_SEED = 2**31 - 1  # Keras and NumPy both take seeds up to here.
# The bound of an integer field that names none: counts of steps, starts, items... beyond
# it are a typo, and past 2^63 they would overflow TensorFlow's int64 after the run began.
MAX_INTEGER = 2**31 - 1


def integer(field: str, value: Any, minimum: int | None = None, maximum: int | None = None,
            note: str = "") -> int:
  """An int (not a bool) in [minimum, maximum]; `note` explains the bound ("0: off").
  Without a `maximum`, `MAX_INTEGER` is the bound."""
  if maximum is None:
    maximum = MAX_INTEGER
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise errors.invalid(field, f"must be an integer, got {value!r}")
  if minimum is not None and value < minimum:
    raise errors.invalid(field, f"must be at least {minimum}{note}, got {value}")
  if maximum is not None and value > maximum:
    raise errors.invalid(field, f"must be at most {maximum}{note}, got {value}")
  return int(value)


def number(field: str, value: Any, *, minimum: float | None = None,
           above: float | None = None, below: float | None = None) -> float:
  """A finite real number with `minimum <= value`, `above < value`, `value < below`."""
  ok = (not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(value))
  low = (f" >= {minimum:g}" if minimum is not None else f" > {above:g}" if above is not None
         else "")
  if below is not None and (minimum is not None or above is not None):
    bracket = "[" if minimum is not None else "("
    start = minimum if minimum is not None else above
    text = f"must be in {bracket}{start:g}, {below:g})"
  else:
    text = f"must be a finite number{low}"
  if (not ok or (minimum is not None and value < minimum)
      or (above is not None and value <= above) or (below is not None and value >= below)):
    raise errors.invalid(field, f"{text}, got {value!r}")
  return float(value)


def one_of(field: str, value: Any, allowed: Iterable) -> Any:
  allowed = tuple(allowed)
  if value not in allowed:
    raise errors.invalid(field, f"must be one of {', '.join(map(str, allowed))}, got {value}")
  return value


def boolean(field: str, value: Any) -> bool:
  if not isinstance(value, (bool, np.bool_)):
    raise errors.invalid(field, f"must be true or false, got {value!r}")
  return bool(value)


def seed(field: str, value: Any) -> int:
  return integer(field, value, 0, MAX_SEED)
