"""Results computed once and kept beside a dataset, each with a JSON stamp of what made them.

A cached artefact (pre-trained features, the quality metric's classifier, the planted model's
AUC) is data files plus `<name>.json`, the stamp: the identity it was computed for (dataset,
sizes, configuration, source fingerprint) and the facts of the computation. The stamp is
written last and removed first, so it is the commit mark: a stamp that is there and matches
means the data beside it are whole. When the folder cannot be written the result is used
without caching, and a warning says so.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Callable, Mapping

from absl import logging

from dvbpr_tf.core import errors
from dvbpr_tf.core import files


def _canonical(value: Any) -> str:
  return json.dumps(files.jsonable(value), sort_keys=True)


def read_stamp(path: str | os.PathLike, identity: Mapping[str, Any], what: str
               ) -> dict | None:
  """The stamp at `path` when it exists, parses and matches `identity` key by key; None
  otherwise (the reason logged, naming `what`)."""
  path = pathlib.Path(path)
  if not path.is_file():
    return None
  try:
    facts = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    logging.warning("%s cache %s unreadable (%s); recomputing", what, path, e)
    return None
  if not isinstance(facts, dict):
    logging.warning("%s cache %s is not a stamp; recomputing", what, path)
    return None
  stale = [k for k, v in identity.items() if _canonical(facts.get(k)) != _canonical(v)]
  if stale:
    logging.info("%s cache %s was made for another %s; recomputing", what, path,
                 " / ".join(stale))
    return None
  return facts


def store(path: str | os.PathLike, facts: Mapping[str, Any], what: str,
          write_data: Callable[[], None] | None = None) -> bool:
  """Writes the data (`write_data`, which must write atomically) and then the stamp `facts`
  at `path`; whether both were written (False, with a warning, when the folder cannot be)."""
  path = pathlib.Path(path)
  try:
    path.unlink(missing_ok=True)  # No stamp until the data are in place.
    if write_data is not None:
      write_data()
    files.write_json_atomic(path, facts)
  except (OSError, errors.WriteError) as e:
    logging.warning("%s: could not cache in %s (%s); used without caching", what,
                    path.parent, e)
    return False
  return True
