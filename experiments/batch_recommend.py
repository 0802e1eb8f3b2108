"""`--experiment=recommend`: batch recommendations, the top-k items of every user (or of the
users named) from a trained DVBPR's SavedModel export, written as one CSV.

Not `--experiment=recommendation`, which trains DVBPR: this one serves a trained model. The
model is the export of `--dvbpr_workdir` (`<dvbpr_workdir>/export/dvbpr`, loaded with plain
`tf.saved_model.load` and called through its `recommend(user_ids, k)` signature: the user's
training items excluded); without that flag a DVBPR is trained first with the run's preset in
`<workdir>/dvbpr` and reused next time, as design and tailoring do (`trained_models.dvbpr`,
which also refuses a model trained on other data).

Users: `--users=all`, or a comma-separated list. When the dataset has `user_source_ids.txt`
(the shop-data builders write it), the ids are your own user ids, the ones in that file;
otherwise they are the dataset's user ids 0..num_users-1. The CSV's `user` column holds the
same kind of id.

Writes into the work dir:

    recommendations.csv            `user,rank,item,score`: per user, rank 1..k (fewer when
                                   the user has fewer unseen items), the item's source id and
                                   x_ui (eq. 6; 9 significant digits, exact for float32)
    recommendations.progress.json  users done, rows, the CSV's length after the last whole
                                   chunk, the request (k, users, the export's SHA-256):
                                   a rerun truncates the CSV there and goes on
                                   (`dvbpr_tf/serving/batch_csv.py`)
    results.json, config.json      the figures (users, k, rows, seconds, users/s, the export,
                                   the CSV), the request

The users are scored in chunks of `chunk_users` (each chunk appended to the CSV and made
durable before the progress record counts it), each chunk in calls of at most
`SCORES_PER_CALL` scores: time proportional to users x items, memory bounded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import re
import time
from typing import Sequence

from absl import logging
from etils import epath
import numpy as np
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import errors
from dvbpr_tf.core import workdir as workdir_lib
from dvbpr_tf.serving import batch_csv
from dvbpr_tf_datasets.common import feedback_catalog
from experiments import common
from experiments import trained_models

CSV_NAME = "recommendations.csv"
COLUMNS = ("user", "rank", "item", "score")
CHUNK_USERS = 4096  # Users per chunk: one append, fsync and progress record each.
SCORES_PER_CALL = 1 << 23  # Users x items scored per call of the export (32 MB of float32).
LOG_EVERY_SECONDS = 10.0
_SHOWN_IDS = 10  # Unknown ids named in an error.
_LONGEST_USERS = 200  # Characters of --users kept as given in the request; longer: a digest.


@dataclasses.dataclass(frozen=True)
class BatchRequest:
  """What the user asked for (resolved from flags).

  Attributes:
    users: `all` (or None), or comma-separated user ids (see the module docstring).
    k: items per user.
    dvbpr_workdir: a trained DVBPR's work dir (None: train one in `<workdir>/dvbpr`).
  """

  users: str | None
  k: int
  dvbpr_workdir: str | None = None


@dataclasses.dataclass(frozen=True)
class UserSelection:
  """The users to recommend for, in CSV order.

  Attributes:
    ids: int64 [N] the dataset's user ids (rows of theta).
    labels: [N] the `user` column: source ids when the dataset has them, else `ids` as text.
    request: `all`, or the ids as named (a digest when long): what the CSV records.
    kind: `source` (the dataset's user_source_ids.txt) or `dense` (0..num_users-1).
  """

  ids: np.ndarray
  labels: list[str]
  request: str
  kind: str


def user_source_ids(catalog) -> list[str] | None:
  """The source id of every user, from `user_source_ids.txt` beside the dataset's records;
  None when the dataset has none (then users are named by their dense ids)."""
  path = epath.Path(catalog.data_path) / feedback_catalog.USER_SOURCE_IDS_FILE
  if not path.exists():
    return None
  ids = feedback_catalog.read_user_source_ids(catalog.data_path)
  if len(ids) != catalog.num_users:
    raise errors.UserError(
        f"{path} lists {len(ids)} users but the dataset has {catalog.num_users}: its folder "
        f"was changed after the build; delete {catalog.data_path} to rebuild it")
  return ids


def resolve_users(users: str | None, num_users: int,
                  source_ids: Sequence[str] | None = None,
                  source_file: str = feedback_catalog.USER_SOURCE_IDS_FILE) -> UserSelection:
  """The users `--users` names: `all`, or comma-separated ids (blanks around each dropped; a
  repeated id counted once), source ids when `source_ids` is given, else dense ids.

  Raises:
    errors.UserError: an empty or unknown id (naming them and the valid ids).
  """
  kind = "dense" if source_ids is None else "source"
  if users is None or users.strip() == "all":
    labels = ([str(u) for u in range(num_users)] if source_ids is None else list(source_ids))
    return UserSelection(np.arange(num_users, dtype=np.int64), labels, "all", kind)
  names = [name.strip() for name in users.split(",")]
  if not all(names):
    raise errors.UserError(f"--users has an empty id in {users!r}: give 'all' or user ids "
                           "separated by commas, e.g. --users=0,5,17")
  unique = list(dict.fromkeys(names))
  if len(unique) < len(names):
    logging.warning("--users names %d ids more than once; each user is written once",
                    len(names) - len(unique))
  if source_ids is None:
    index = {str(u): u for u in range(num_users)}
    valid = (f"valid user ids are 0..{num_users - 1} (the dataset has no {source_file}: its "
             "users are named by their index)")
  else:
    index = {name: u for u, name in enumerate(source_ids)}
    examples = ", ".join(repr(s) for s in list(source_ids)[:3])
    valid = (f"the user ids are your own, as listed in {source_file} ({num_users} users, e.g. "
             f"{examples})")
  if source_ids is None:  # 05 is user 5.
    unique = list(dict.fromkeys(str(int(n)) if re.fullmatch(r"[0-9]+", n) else n
                                for n in unique))
  unknown = [name for name in unique if name not in index]
  if unknown:
    shown = ", ".join(repr(name) if source_ids is not None else name
                      for name in unknown[:_SHOWN_IDS])
    more = f" and {len(unknown) - _SHOWN_IDS} more" if len(unknown) > _SHOWN_IDS else ""
    raise errors.UserError(f"--users names unknown user ids: {shown}{more}; {valid}; or give "
                           "--users=all")
  text = ",".join(unique)
  if len(text) > _LONGEST_USERS:
    text = f"{len(unique)} ids, sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]}"
  return UserSelection(np.asarray([index[name] for name in unique], np.int64), unique, text,
                       kind)


def check_k(k: int, num_items: int) -> int:
  if not 1 <= k <= num_items:
    raise errors.UserError(f"--k must be in 1..{num_items} (the catalog's items), got {k}")
  return int(k)


def export_path(dvbpr_root: pathlib.Path) -> pathlib.Path:
  """The DVBPR SavedModel of a work dir (UserError when it has none)."""
  path = workdir_lib.Workdir(dvbpr_root).export("dvbpr")
  if not dvbpr_root.is_dir():
    raise errors.UserError(
        f"--dvbpr_workdir {dvbpr_root} does not exist: name the work dir of a trained DVBPR "
        "(one --experiment=recommendation wrote), or leave the flag out to train one in "
        "<workdir>/dvbpr")
  if not (path / "saved_model.pb").is_file():
    work = workdir_lib.Workdir(dvbpr_root)
    saved = common.saved_config(work) if work.config_path.is_file() else {}
    todo = (f"finish its training (--experiment=recommendation --workdir={dvbpr_root})"
            if saved.get("model") == "dvbpr" else "name the work dir of a trained DVBPR")
    raise errors.UserError(
        f"{dvbpr_root} holds no DVBPR export ({path}/saved_model.pb is missing): {todo}, or "
        "leave --dvbpr_workdir out to train one in <workdir>/dvbpr")
  return path


def export_fingerprint(path: pathlib.Path) -> str:
  """SHA-256 over the export's files (names and contents): the model the CSV comes from."""
  digest = hashlib.sha256()
  for file in sorted(p for p in path.rglob("*") if p.is_file()):
    digest.update(file.relative_to(path).as_posix().encode() + b"\0")
    with open(file, "rb") as f:
      digest.update(hashlib.file_digest(f, "sha256").digest())
  return digest.hexdigest()


def csv_rows(labels: Sequence[str], item_ids: np.ndarray, source_ids: np.ndarray,
             scores: np.ndarray) -> list[tuple]:
  """The CSV rows of one call of `recommend`: (user, rank, item source id, score) for each
  user's items in rank order, the padding (item id -1, source id "", score -inf) dropped."""
  rows = []
  for label, items, sources, values in zip(labels, item_ids, source_ids, scores):
    count = int(np.count_nonzero(items >= 0))  # Padding only follows the real items.
    rows.extend((label, rank + 1, sources[rank].decode("utf-8"), f"{values[rank]:.9g}")
                for rank in range(count))
  return rows


def _duration(seconds: float) -> str:
  seconds = int(max(0, seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


_FIELDS = {"k": "--k", "users": "--users", "export_sha256": "the DVBPR export (another "
           "--dvbpr_workdir, or the model retrained)", "columns": "the columns"}


def _check_request(table: batch_csv.ResumableCsv, ignore: Sequence[str] = ()
                   ) -> batch_csv.Progress | None:
  """The CSV's progress to resume from (None: start anew); refuses another request with the
  flags that differ (fields in `ignore` not compared)."""
  progress = table.recorded()
  if progress is None:
    return None
  differences = [d for d in table.differences(progress) if d[0] not in ignore]
  if differences:
    changed = "; ".join(f"{_FIELDS.get(name, name)}: {_short(old)} -> {_short(new)}"
                        for name, old, new in differences)
    raise errors.UserError(
        f"{table.path} holds recommendations for another request ({changed}); rerun with the "
        f"same flags to finish it, or delete {table.path} (or choose another --workdir) to "
        "start anew")
  return progress


def _short(value):
  """A request's value as an error shows it: a SHA-256 by its first 12 digits."""
  return value[:12] if isinstance(value, str) and len(value) == 64 else value


def run(spec: common.RunSpec, dvbpr_config: config_lib.DvbprConfig, request: BatchRequest,
        chunk_users: int = CHUNK_USERS) -> dict:
  """Writes (or resumes, or finds done) the CSV of the request; returns results.json's
  content."""
  started = time.time()
  catalog = common.load_catalog(spec)
  selection = resolve_users(request.users, catalog.num_users, user_source_ids(catalog))
  k = check_k(request.k, catalog.num_items)
  if request.dvbpr_workdir:
    dvbpr_root = pathlib.Path(request.dvbpr_workdir).expanduser().absolute()
    export_path(dvbpr_root)  # Refused before anything is loaded or written.
  else:
    dvbpr_root = spec.work.root / "dvbpr"
  work = spec.work
  asked = {"k": k, "users": selection.request}
  common.refuse_other_experiment(work, "recommend", "the recommendations")
  _check_request(batch_csv.ResumableCsv(work.root / CSV_NAME, COLUMNS, asked),
                 ignore=("export_sha256",))

  trained_models.dvbpr(spec, catalog, dvbpr_config, request.dvbpr_workdir)  # Checks the data.
  export = export_path(dvbpr_root)
  fingerprint = export_fingerprint(export)
  table = batch_csv.ResumableCsv(work.root / CSV_NAME, COLUMNS,
                                 {**asked, "export_sha256": fingerprint})
  work.make().lock()  # Checked again under the lock, before anything is written.
  common.refuse_other_experiment(work, "recommend", "the recommendations")
  progress = _check_request(table)
  record = {"users": len(selection.ids), "k": k, "user_ids": selection.kind,
            "export": str(export), "export_sha256": fingerprint, "csv": str(table.path),
            "progress": str(table.progress_path)}
  if progress is not None and progress.finished:
    results = _results(spec, catalog, record, progress)
    if not work.results_path.exists():
      work.write_results(results)
    print(f"Already done: {table.path} holds the top {k} of {len(selection.ids)} users "
          f"({progress.rows} rows)\nResults: {work.results_path}", flush=True)
    return results
  run_config = {"run": spec.__dict__, "recommend": {
      "users": selection.request, "k": k, "dvbpr_workdir": str(dvbpr_root),
      "export": str(export), "export_sha256": fingerprint}}
  _, work = common.start_run(spec, run_config, catalog, resumable=False)

  progress = _write_csv(table, export, selection, k, catalog.num_items, chunk_users)
  results = _results(spec, catalog, record, progress)
  results["wall_time_seconds"] = time.time() - started
  work.write_results(results)
  table.finish()  # After results.json: a kill in between redoes no users, only the results.
  common.print_block(f"Top {k} of {len(selection.ids)} users, {catalog.name}", [
      f"  {progress.rows} rows, {results['users_per_second']:.0f} users/s",
      f"  model: {export}"])
  print(f"CSV:     {table.path}\nResults: {work.results_path}", flush=True)
  return results


def _write_csv(table: batch_csv.ResumableCsv, export: pathlib.Path, selection: UserSelection,
               k: int, num_items: int, chunk_users: int) -> batch_csv.Progress:
  """Appends the chunks the CSV lacks; the progress after the last."""
  model = tf.saved_model.load(str(export))
  total = len(selection.ids)
  per_call = max(1, min(chunk_users, SCORES_PER_CALL // num_items))
  k_tensor = tf.constant(k, tf.int32)
  with table:
    progress = table.open()
    if progress.done:
      logging.info("recommend: resuming after %d of %d users (%s)", progress.done, total,
                   table.path)
    first, started, logged = progress.done, time.time(), 0.0
    for start in range(progress.done, total, chunk_users):
      chunk_started = time.time()
      stop = min(start + chunk_users, total)
      rows = []
      for begin in range(start, stop, per_call):
        end = min(begin + per_call, stop)
        top = model.recommend(tf.constant(selection.ids[begin:end]), k_tensor)
        rows += csv_rows(selection.labels[begin:end], top["item_ids"].numpy(),
                         top["source_ids"].numpy(), top["scores"].numpy())
      progress = table.append(rows, stop - start, time.time() - chunk_started)
      now = time.time()
      if now - logged >= LOG_EVERY_SECONDS or stop == total:
        rate = (stop - first) / max(now - started, 1e-9)
        logging.info("recommend: %d/%d users (%.0f%%) | %.0f users/s | %s left", stop, total,
                     100.0 * stop / total, rate, _duration((total - stop) / rate))
        logged = now
  return progress


def _results(spec: common.RunSpec, catalog, record: dict,
             progress: batch_csv.Progress) -> dict:
  results = common.results_header(spec, catalog)
  results.update({**record, "rows": progress.rows, "columns": list(COLUMNS),
                  "seconds": progress.seconds,
                  "users_per_second": record["users"] / max(progress.seconds, 1e-9)})
  return results
