"""Broken source data and broken builds: handled and counted, or refused saying what and where.

- A TFDS build killed with SIGKILL (a real `--experiment=dataset` subprocess) leaves only an
  `incomplete.*` folder; the next build succeeds beside it and reports it.
- A dataset folder that is there but not whole (no dataset_info.json, a truncated shard) is
  rebuilt, or refused when building is not allowed.
- The authors' builder refuses an `.npy` that is not their structure and a pickle that
  names a disallowed global, with the builder's own error type, leaving no dataset behind.
- Hypothesis throws generated rows (wrong widths, empty, padded or unparseable ids, quotes,
  commas and newlines inside fields, duplicates, headers with missing or extra columns) and
  images of every awkward kind (grayscale, CMYK, PNG with alpha, truncated, zero bytes, not an
  image) at the two CSV builders: each build either succeeds with exactly the counts a
  plain-Python oracle computes, or fails with `DatasetError`; never anything else.
"""

from __future__ import annotations

import collections
import csv
import io
import logging
import os
import pathlib
import pickle
import shutil
import tempfile

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest

from dvbpr_tf.core import errors
from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf_datasets.common import errors as dataset_errors
from dvbpr_tf_datasets.common import feedback_catalog
from dvbpr_tf_datasets.dvbpr_authors import make_dummy_data as authors_dummy
from dvbpr_tf_datasets.fashion_catalog import fashion_catalog_dataset_builder as fc
from dvbpr_tf_datasets.hm_fashion import hm_fashion_dataset_builder as hm
from tests import feedback_files
from tests.conftest import SHOPPERS_DUMMY_DATA
from tests.faults import runs

TINY = "fashion_mnist_shoppers/tiny"


# --- builds killed or damaged --------------------------------------------------------------

def test_a_build_killed_midway_leaves_nothing_trusted_and_the_next_build_succeeds(
    tmp_path, caplog):
  data_dir = tmp_path / "tfds"
  config_dir = data_dir / "fashion_mnist_shoppers" / "tiny"
  build = runs.Run("--experiment=dataset", f"--dataset={TINY}", f"--data_dir={data_dir}",
                   f"--manual_dir={SHOPPERS_DUMMY_DATA}", f"--workdir={tmp_path / 'run'}")
  # The build's own incomplete folder, in the config's folder: TFDS also names other
  # temporary files "incomplete.*" (e.g. an atomic write elsewhere under the data dir).
  found = runs.watch(data_dir, lambda path: (os.path.dirname(path) == str(config_dir) and
                                             os.path.basename(path).startswith("incomplete.")),
                     build)
  assert found, build.stderr[-3000:]
  assert build.kill() == -9
  leftovers = [p.name for p in config_dir.iterdir() if p.name != ".lock"]  # The build lock.
  assert len(leftovers) == 1 and leftovers[0].startswith("incomplete."), leftovers
  assert not (config_dir / "1.0.0").exists()
  assert not (tmp_path / "run").exists()  # The command had not got to write its results.

  caplog.set_level(logging.WARNING)
  catalog = catalog_lib.load_catalog(TINY, data_dir=str(data_dir),
                                     manual_dir=str(SHOPPERS_DUMMY_DATA))
  assert (catalog.num_users, catalog.num_items) == (50, 139)
  assert f"leftover(s) of interrupted dataset builds in {config_dir}" in caplog.text
  assert leftovers[0] in caplog.text


@pytest.mark.slow
def test_two_builds_at_once_into_one_fresh_data_dir_both_succeed_and_one_waits(tmp_path):
  data_dir = tmp_path / "tfds"
  flags = ("--experiment=dataset", f"--dataset={TINY}", f"--data_dir={data_dir}",
           f"--manual_dir={SHOPPERS_DUMMY_DATA}")
  both = runs.run_all({name: [*flags, f"--workdir={tmp_path / name}"]
                       for name in ("first", "second")})
  for run in both.values():
    assert run.process.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
  waited = [name for name, run in both.items() if "is building the dataset" in run.stderr]
  built = [name for name, run in both.items()
           if f"] building the dataset '{TINY}' in {data_dir}" in run.stderr]
  assert len(built) == 1, {name: run.stderr[-2000:] for name, run in both.items()}
  assert waited in ([], [n for n in both if n not in built])  # The other one waited if late.
  config_dir = data_dir / "fashion_mnist_shoppers" / "tiny"
  assert sorted(p.name for p in config_dir.iterdir()) == ["1.0.0"]


def test_a_full_disk_during_a_build_is_one_line_and_leaves_no_dataset(tmp_path):
  import resource  # pylint: disable=g-import-not-at-top

  def small_files():
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, 16 << 10))

  data_dir = tmp_path / "tfds"
  build = runs.run("--experiment=dataset", f"--dataset={TINY}", f"--data_dir={data_dir}",
                   f"--manual_dir={SHOPPERS_DUMMY_DATA}", f"--workdir={tmp_path / 'run'}",
                   preexec_fn=small_files)
  assert build.process.returncode == 2, build.stderr[-3000:]
  assert "Traceback" not in build.stderr
  [line] = runs.error_lines(build.stderr)
  assert line.startswith(f"error: cannot write {data_dir}"), line
  assert "File too large; raise the file size limit (ulimit -f) or choose a --data_dir" in line
  assert not (data_dir / "fashion_mnist_shoppers" / "tiny" / "1.0.0").exists()


@pytest.mark.parametrize("damage, problem", [
    ("no_info", "no dataset_info.json"),
    ("truncated_shard", "a shard is truncated"),
    ("no_shard", "has 0 of its 1 shard files"),
])
def test_a_damaged_dataset_folder_is_refused_or_rebuilt(tiny_data_dir, tmp_path, damage,
                                                        problem, caplog):
  data_dir = tmp_path / "tfds"
  shutil.copytree(tiny_data_dir / "fashion_mnist_shoppers",
                  data_dir / "fashion_mnist_shoppers")
  version = data_dir / "fashion_mnist_shoppers" / "tiny" / "1.0.0"
  shard = next(version.glob("*.tfrecord*"))
  if damage == "no_info":
    (version / "dataset_info.json").unlink()
  elif damage == "truncated_shard":
    shard.write_bytes(shard.read_bytes()[:1000])
  else:
    shard.unlink()

  with pytest.raises(catalog_lib.IncompleteDatasetError) as info:
    catalog_lib.load_catalog(TINY, data_dir=str(data_dir), build=False)
  message = errors.describe(info.value)
  assert f"in {version} is incomplete (" in message and problem in message
  assert "\n" not in message
  assert isinstance(info.value, errors.EXPECTED_ERRORS)

  caplog.set_level(logging.WARNING)
  catalog = catalog_lib.load_catalog(TINY, data_dir=str(data_dir),
                                     manual_dir=str(SHOPPERS_DUMMY_DATA))
  assert (catalog.num_users, catalog.num_items, len(catalog.users)) == (50, 139, 397)
  assert "building it again" in caplog.text
  assert catalog_lib.incomplete_build(catalog_lib.get_builder(TINY, str(data_dir))) is None


@pytest.mark.parametrize("name", ["dataset_info.json", "metadata.json"])
def test_a_truncated_info_file_is_one_line_naming_the_folder(tiny_data_dir, tmp_path, name):
  data_dir = tmp_path / "tfds"
  shutil.copytree(tiny_data_dir / "fashion_mnist_shoppers",
                  data_dir / "fashion_mnist_shoppers")
  version = data_dir / "fashion_mnist_shoppers" / "tiny" / "1.0.0"
  (version / name).write_bytes((version / name).read_bytes()[:100])
  for build in (False, True):
    with pytest.raises(catalog_lib.IncompleteDatasetError) as info:
      catalog_lib.load_catalog(TINY, data_dir=str(data_dir), build=build,
                               manual_dir=str(SHOPPERS_DUMMY_DATA))
    message = errors.describe(info.value)
    assert f"in {version} cannot be read: its dataset_info.json or metadata.json is " \
           "damaged (" in message and "delete that folder" in message
    assert "\n" not in message


class _CallsSystem:

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def _object_npy(path: pathlib.Path, pickled: bytes) -> None:
  from numpy.lib import format as npy_format  # pylint: disable=g-import-not-at-top
  header = io.BytesIO()
  npy_format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False,
                                             "shape": (1,)})
  path.write_bytes(header.getvalue() + pickled)


@pytest.mark.parametrize("content, message", [
    ("dict", "list of 6 elements"),
    ("evil", "'posix.system'"),
])
def test_authors_file_not_in_their_format_is_refused(tmp_path, content, message):
  manual = tmp_path / "manual"
  manual.mkdir()
  path = manual / authors_dummy.FILENAME
  marker = tmp_path / "system_ran"
  if content == "dict":
    np.save(path, {"user_train": 1, "items": 2}, allow_pickle=True)
  else:
    _object_npy(path, pickle.dumps([_CallsSystem(marker)], 2))
  with pytest.raises(dataset_errors.DatasetError) as info:
    catalog_lib.load_catalog("amazon_fashion", data_dir=str(tmp_path / "tfds"),
                             manual_dir=str(manual))
  assert message in str(info.value) and str(path) in str(info.value)
  assert not marker.exists()
  built = tmp_path / "tfds" / "dvbpr_authors" / "amazon_fashion"
  assert not any(built.glob("*/dataset_info.json")) if built.exists() else True
  assert not any(p.name.startswith("incomplete.") for p in built.glob("*")) \
      if built.exists() else True


# --- generated CSV rows at the two CSV builders ----------------------------------------------

GOOD_KINDS = ("rgb", "gray", "cmyk", "png_rgba", "png")
BAD_KINDS = ("truncated", "empty", "text")
FIELD = st.text(alphabet=st.sampled_from(list("ab1 ,\"\n\r\t;é'") + ["\u00a0", "\u2028"]),
                max_size=4)
GARBAGE = (b'"an unclosed quote,i1\n', b"\xff\xfe,\xc3\x28\n", b"u1,i1,,,,,,\n", b"\n\n",
           b"u1;i1\n")
CONFIG = feedback_catalog.FeedbackConfig(name="fuzz", image_size=8)


def _write_rows(path: pathlib.Path, header, rows, garbage) -> None:
  buffer = io.StringIO()
  # "\r\n": the csv module then quotes fields holding either character, so that the rows
  # read back are the rows written (with "\n" a bare "\r" would end a line).
  writer = csv.writer(buffer, lineterminator="\r\n")
  writer.writerow(header)
  writer.writerows(rows)
  path.write_bytes(buffer.getvalue().encode("utf-8") + b"".join(garbage))


def _expected(rows, width, positions, normalize, kinds, valid=lambda item: True) -> dict:
  """What the builder must find, computed the plain way (the rules of feedback_catalog).
  A well-formed row whose item id is not `valid` counts as a row and as malformed."""
  malformed, pairs, invalid = 0, [], 0
  for row in rows:
    if not row:
      continue  # A blank line.
    if len(row) != width:
      malformed += 1
      continue
    user, item = (row[p].strip() for p in positions)
    if not user or not item:
      malformed += 1
      continue
    if not valid(normalize(item)):
      malformed += 1
      invalid += 1
      continue
    pairs.append((user, normalize(item)))
  unique = list(dict.fromkeys(pairs))
  no_image = {i for _, i in unique if kinds.get(i) is None}

  def enough(kept):
    count = collections.Counter(u for u, _ in kept)
    return [(u, i) for u, i in kept if count[u] >= 5]

  kept = enough([(u, i) for u, i in unique if i not in no_image])
  bad = {i for _, i in kept if kinds[i] in BAD_KINDS}
  kept = enough([(u, i) for u, i in kept if i not in bad])
  return {"rows": len(pairs) + invalid, "malformed_rows": malformed,
          "duplicate_interactions": len(pairs) - len(unique),
          "items_without_image": len(no_image), "undecodable_images": len(bad),
          "num_users": len({u for u, _ in kept}), "num_items": len({i for _, i in kept}),
          "num_interactions": len(kept)}


def _check_build(build, expected, rows_key, exact: bool) -> None:
  try:
    catalog = build()
  except dataset_errors.DatasetError as e:
    assert not exact or expected["num_users"] == 0 or expected.get("missing_column"), str(e)
    return
  except Exception as e:  # pylint: disable=broad-except
    pytest.fail(f"an unhandled {type(e).__name__}: {e}")
  stats = catalog.statistics
  assert stats["num_interactions"] == len(catalog.users) == len(catalog.items)
  for jpeg in catalog.jpegs:
    image = feedback_files.decode(jpeg)
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (8, 8))
  if not exact:
    return
  expected = dict(expected)
  assert not expected.pop("missing_column", False)
  got = {"rows": stats[rows_key], **{k: stats["dropped"][k] for k in (
      "malformed_rows", "duplicate_interactions", "items_without_image",
      "undecodable_images")}, **{k: stats[k] for k in (
          "num_users", "num_items", "num_interactions")}}
  assert got == expected


def _rows(user_ids, item_ids, header, user_column, item_column):
  """A data row: the ids in their columns, any text elsewhere; or any list of fields."""
  width = len(header)

  def place(user, item, others):
    row = list(others[:width]) + [""] * (width - len(others[:width]))
    row[user_column], row[item_column] = user, item
    return row

  good = st.builds(place, user_ids, item_ids, st.lists(FIELD, min_size=width,
                                                       max_size=width))
  return st.one_of(good, good, good, st.lists(FIELD, max_size=5))


ITEMS = [f"i{n}" for n in range(1, 8)]
HEADERS = [("user_id", "item_id"), ("item_id", "timestamp", "user_id"),
           (" User_ID ", "item_id", "note", "x"), ("user", "item_id")]


@st.composite
def catalog_sources(draw):
  header = draw(st.sampled_from(HEADERS))
  names = [h.strip().lower() for h in header]
  user_column = names.index("user_id") if "user_id" in names else 0
  item_column = names.index("item_id")
  users = st.sampled_from(["u1", "u2", "u3", " u1", "", " ", "u,4", 'u"5', "ü6", "u\n7"])
  items = st.sampled_from(ITEMS + ["i8", " i1 ", "", "i/9", "i 2", "I1"])
  base = [[""] * len(header) for _ in range(draw(st.sampled_from([0, 6])))]
  for n, row in enumerate(base):
    row[user_column], row[item_column] = "u1", ITEMS[n]
  rows = base + draw(st.lists(_rows(users, items, header, user_column, item_column),
                              max_size=30))
  rows = draw(st.permutations(rows))
  kinds = dict(zip(ITEMS, draw(st.lists(st.sampled_from(GOOD_KINDS * 3 + BAD_KINDS),
                                        min_size=7, max_size=7))))
  garbage = draw(st.lists(st.sampled_from(GARBAGE), max_size=2))
  return header, user_column, item_column, rows, kinds, garbage


_FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(catalog_sources())
def test_fashion_catalog_build_of_generated_rows(source):
  header, user_column, item_column, rows, kinds, garbage = source
  with tempfile.TemporaryDirectory() as tmp:
    root = pathlib.Path(tmp)
    (root / "images").mkdir()
    for n, (item, kind) in enumerate(kinds.items()):
      ext = ".png" if kind.startswith("png") else ".jpg"
      (root / "images" / f"{item}{ext}").write_bytes(feedback_files.image_bytes(n, kind))
    _write_rows(root / "interactions.csv", header, rows, garbage)
    expected = _expected(rows, len(header), (user_column, item_column), lambda i: i, kinds)
    expected["missing_column"] = "user_id" not in [h.strip().lower() for h in header]
    _check_build(lambda: fc.build_catalog(root, CONFIG), expected, "interaction_rows",
                 exact=not garbage)


ARTICLES = [f"01000000{n:02d}" for n in range(1, 8)]


@st.composite
def hm_sources(draw):
  header = draw(st.sampled_from([("t_dat", "customer_id", "article_id", "price"),
                                 ("article_id", "customer_id"),
                                 ("customer_id", "article", "t_dat")]))
  user_column = header.index("customer_id")
  item_column = header.index("article_id") if "article_id" in header else 1
  users = st.sampled_from(["c1", "c2", "c3", " c1 ", "", "c,4", "c\n5"])
  articles = st.sampled_from(ARTICLES + [a[1:] for a in ARTICLES[:3]] + [
      "0100000008", "", "abc", "01000000 1", "1e9"])
  base = [[""] * len(header) for _ in range(draw(st.sampled_from([0, 6])))]
  for n, row in enumerate(base):
    row[user_column], row[item_column] = "c1", ARTICLES[n]
  rows = base + draw(st.lists(_rows(users, articles, header, user_column, item_column),
                              max_size=30))
  rows = draw(st.permutations(rows))
  kinds = dict(zip(ARTICLES, draw(st.lists(st.sampled_from(GOOD_KINDS * 3 + BAD_KINDS),
                                           min_size=7, max_size=7))))
  garbage = draw(st.lists(st.sampled_from(GARBAGE), max_size=2))
  return header, user_column, item_column, rows, kinds, garbage


@_FUZZ
@given(hm_sources())
def test_hm_fashion_build_of_generated_rows(source):
  header, user_column, item_column, rows, kinds, garbage = source
  with tempfile.TemporaryDirectory() as tmp:
    root = pathlib.Path(tmp)
    for n, (article, kind) in enumerate(kinds.items()):
      path = root / "images" / article[:3] / f"{article}.jpg"
      path.parent.mkdir(parents=True, exist_ok=True)
      path.write_bytes(feedback_files.image_bytes(n, kind))
    feedback_files.write_csv(root / "articles.csv", ("article_id", "product_group_name"),
                             [(a, "Shoes" if n % 2 else "") for n, a in enumerate(ARTICLES)])
    _write_rows(root / "transactions_train.csv", header, rows, garbage)
    expected = _expected(rows, len(header), (user_column, item_column),
                         hm.normalize_article_id, kinds, hm.valid_article_id)
    expected["missing_column"] = "article_id" not in header
    _check_build(lambda: hm.build_catalog(root, CONFIG), expected, "transactions_rows",
                 exact=not garbage)
