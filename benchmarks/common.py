"""What every benchmark shares: rates, paired comparisons, interleaved timing, machine facts.

A benchmark measures rates (things per second: images, pairs, users, start-steps) of a
side A and a side B, repeated in alternating order (A B, B A, A B, ...) so that a change in
the machine's load hits both sides alike, and reports the median of the per-repeat ratios
A_r / B_r.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import statistics
import time
from typing import Callable, Sequence

import numpy as np

SIZES = ("tiny", "full")


@dataclasses.dataclass(frozen=True)
class Rate:
  """One side's measurements.

  Attributes:
    label: what was measured.
    unit: e.g. `images/s`.
    repeats: the rate of each repeat.
  """

  label: str
  unit: str
  repeats: tuple[float, ...]

  @property
  def median(self) -> float:
    return float(statistics.median(self.repeats))

  def as_dict(self) -> dict:
    return {"label": self.label, "unit": self.unit, "median": self.median,
            "repeats": list(self.repeats)}


@dataclasses.dataclass(frozen=True)
class Comparison:
  """One row of the table: A against B.

  Attributes:
    name: the row's key (`input_pipeline`, ...).
    a, b: the two sides.
    ratio: median over repeats of a.repeats[r] / b.repeats[r].
    goal: the goal in words (`>= 3x`), or '' when the row only reports.
    met: whether the goal is met (None without a goal).
    note: what the reader needs to read the row.
    goal_ratio: the least ratio the goal asks for (None without a goal).
  """

  name: str
  a: Rate
  b: Rate
  ratio: float
  goal: str
  met: bool | None
  note: str = ""
  goal_ratio: float | None = None

  def as_dict(self) -> dict:
    return {"name": self.name, "a": self.a.as_dict(), "b": self.b.as_dict(),
            "ratio": self.ratio, "goal": self.goal, "goal_ratio": self.goal_ratio,
            "met": self.met, "note": self.note}


@dataclasses.dataclass(frozen=True)
class BenchmarkResult:
  """What a benchmark returns: its table rows, its config and anything else worth keeping."""

  name: str
  title: str
  comparisons: tuple[Comparison, ...]
  config: dict
  details: dict
  seconds: float

  def as_dict(self) -> dict:
    return {"name": self.name, "title": self.title,
            "comparisons": [c.as_dict() for c in self.comparisons],
            "config": self.config, "details": self.details, "seconds": self.seconds}


def paired_ratio(a: Rate, b: Rate) -> float:
  """Median over repeats of a_r / b_r."""
  return float(statistics.median(x / y for x, y in zip(a.repeats, b.repeats)))


def compare(name: str, a: Rate, b: Rate, minimum: float | None, note: str = "",
            goal: str | None = None, extra_condition: bool = True) -> Comparison:
  """A row whose goal is `ratio >= minimum` (and `extra_condition`); no goal when minimum is
  None."""
  ratio = paired_ratio(a, b)
  if minimum is None:
    return Comparison(name, a, b, ratio, goal or "", None, note)
  return Comparison(name, a, b, ratio, goal or f">= {minimum:g}x",
                    bool(ratio >= minimum and extra_condition), note, float(minimum))


def interleaved(measures: Sequence[Callable[[], float]], repeats: int) -> list[list[float]]:
  """Runs every measurement once per repeat, forward on even repeats and backward on odd
  ones (A B, B A, ...); returns each measurement's rates in repeat order."""
  rates = [[] for _ in measures]
  for r in range(repeats):
    order = range(len(measures)) if r % 2 == 0 else reversed(range(len(measures)))
    for k in order:
      rates[k].append(measures[k]())
  return rates


def timed(fn: Callable[[], object]) -> float:
  """Seconds one call of `fn` takes (wall clock)."""
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def cpu_timed(fn: Callable[[], object]) -> tuple[float, float]:
  """(wall seconds, process CPU seconds, all threads) of one call of `fn`. CPU seconds are
  less sensitive than wall time to other work on a shared machine."""
  wall, cpu = time.perf_counter(), time.process_time()
  fn()
  return time.perf_counter() - wall, time.process_time() - cpu


def measured(count: float, fn: Callable[[], object]) -> tuple[float, object]:
  """(count / the seconds one call of `fn` takes, the call's return value)."""
  start = time.perf_counter()
  value = fn()
  return count / (time.perf_counter() - start), value


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def machine_info() -> dict:
  """The facts a reader needs to weigh the figures."""
  import PIL  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    usable = len(os.sched_getaffinity(0))
  except AttributeError:
    usable = os.cpu_count()
  return {
      "cpu_count": os.cpu_count(),
      "usable_cpus": usable,
      "cpu_model": cpu_model(),
      "platform": platform.platform(),
      "python": platform.python_version(),
      "tensorflow": tf.__version__,
      "numpy": np.__version__,
      "pillow": PIL.__version__,
      "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


def check_size(size: str) -> None:
  if size not in SIZES:
    raise ValueError(f"size must be one of {SIZES}, got {size!r}")


def format_rate(rate: Rate) -> str:
  value = rate.median
  text = f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
  return f"{text} {rate.unit}"


def table(results: Sequence[BenchmarkResult]) -> str:
  """The plain-text table: benchmark, A, B, ratio, goal, met?"""
  header = ("benchmark", "A", "B", "ratio", "goal", "met?")
  rows = [header]
  for result in results:
    for c in result.comparisons:
      met = "-" if c.met is None else ("yes" if c.met else "NO")
      rows.append((c.name, f"{c.a.label}: {format_rate(c.a)}",
                   f"{c.b.label}: {format_rate(c.b)}", f"{c.ratio:.3g}", c.goal or "-", met))
  widths = [max(len(r[k]) for r in rows) for k in range(len(header))]
  lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
  lines.insert(1, "  ".join("-" * w for w in widths))
  return "\n".join(lines)
