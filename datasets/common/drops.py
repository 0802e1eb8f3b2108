"""What a build left out of the source data, and why: counts, example ids, warnings.

Every builder that reads raw files (`hm_fashion`, `fashion_catalog`) keeps one `DropLog`. Each
reason (for example `items_without_image`) names its unit in its description; the counts go to
the dataset statistics (`statistics['dropped']`), a few example ids per reason go to the
metadata, and `warn()` logs one warning per reason that occurred, naming examples, so that a
user can find the offending rows in their files.
"""

from __future__ import annotations

from typing import Iterable

from absl import logging

MAX_EXAMPLES = 20  # Example ids kept per reason (metadata); warnings show the first five.
_EXAMPLES_IN_WARNING = 5


class DropLog:
  """Counts and example ids of what was dropped (or repaired), by reason."""

  def __init__(self, source: str):
    """Args:
      source: a name for messages (the builder and config, or a file name).
    """
    self.source = source
    self._counts: dict[str, int] = {}
    self._examples: dict[str, list[str]] = {}
    self._descriptions: dict[str, str] = {}

  def declare(self, reason: str, description: str) -> None:
    """Makes `reason` appear in the counts (as 0 until something is added) and describes it.

    Args:
      reason: the key in `statistics['dropped']`.
      description: what was done and its unit, e.g. "items dropped with their interactions:
        no image file".
    """
    self._counts.setdefault(reason, 0)
    self._examples.setdefault(reason, [])
    self._descriptions.setdefault(reason, description)

  def add(self, reason: str, count: int = 1, examples: Iterable[str] = ()) -> None:
    """Counts `count` more of `reason`, remembering the first examples.

    Args:
      reason: the key in `statistics['dropped']`.
      count: how many (in the reason's unit).
      examples: ids or row descriptions; only the first `MAX_EXAMPLES` of a reason are kept
        (an iterable is consumed only as far as needed).
    """
    if count <= 0:
      return
    self._counts[reason] = self._counts.get(reason, 0) + int(count)
    kept = self._examples.setdefault(reason, [])
    for example in examples:
      if len(kept) >= MAX_EXAMPLES:
        break
      kept.append(str(example))

  def count(self, reason: str) -> int:
    return self._counts.get(reason, 0)

  @property
  def counts(self) -> dict[str, int]:
    """{reason: count} of every declared or added reason, sorted by reason."""
    return {k: self._counts[k] for k in sorted(self._counts)}

  @property
  def examples(self) -> dict[str, list[str]]:
    """{reason: first example ids} of the reasons that occurred."""
    return {k: list(v) for k, v in sorted(self._examples.items()) if v and self._counts.get(k)}

  def warn(self) -> None:
    """Logs one warning per reason that occurred, with its description and examples."""
    for reason, count in self.counts.items():
      if not count:
        continue
      examples = self._examples.get(reason, [])[:_EXAMPLES_IN_WARNING]
      description = self._descriptions.get(reason, reason)
      named = ""
      if examples:
        named = ", e.g. " + ", ".join(examples) + (", ..." if count > len(examples) else "")
      logging.warning("%s: %s = %d (%s)%s", self.source, reason, count, description, named)
