"""From raw implicit feedback, item images and categories to the records of a catalog.

The shared second half of the builders that read a shop's own files (`hm_fashion`,
`fashion_catalog`): each streams its CSV files into an `interactions.InteractionLog`, then
`build_catalog` applies the same rules, in this order:

1. A (user, item) pair seen more than once is kept once (`duplicate_interactions`, rows).
2. Items with no image file are dropped with their interactions (`items_without_image`,
   items; `interactions_of_dropped_items`, interactions).
3. Users with fewer than `min_items_per_user` (5, the paper's rule) distinct items left are
   dropped with their interactions (`users_below_5_items`, users;
   `interactions_of_users_below_5_items`, interactions).
4. The images of the items still bought are read and converted to RGB JPEG (grayscale, CMYK,
   PNG with alpha, ... are converted; see `images.to_rgb_jpeg`). Items whose image does not
   decode (zero bytes, truncated, not an image) are dropped with their interactions
   (`undecodable_images`, items; `interactions_of_dropped_items`), and step 3 is applied
   again: dropping an image can push a user below 5. Images are decoded after the first user
   filter so that no time is spent on items only dropped users bought; a second round is
   enough, because dropping users never makes an image undecodable.
5. Items whose every buyer was dropped leave the catalog
   (`items_whose_users_were_all_dropped`, items).
6. Users and items are numbered densely in the order of their source ids (so the numbering
   does not depend on the row order of the files), and the interactions are split (the
   paper's random leave-one-out or the time split, see `interactions`).
7. An item without a category (no row in the metadata file: `articles_without_metadata` or
   `items_without_category`, items; an empty value: `items_with_empty_category`, items)
   keeps its interactions under the category `unknown`.

Each count is stored in `statistics['dropped']` (each reason's unit is its name's noun), and
logged as a warning naming example ids; a build never stops on one bad row or image.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
from typing import Any, Callable, Mapping, Sequence

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from dvbpr_tf_datasets.common import drops as drops_lib
from dvbpr_tf_datasets.common import errors
from dvbpr_tf_datasets.common import images
from dvbpr_tf_datasets.common import interactions
from dvbpr_tf_datasets.common import records
from dvbpr_tf_datasets.common import splits as splits_lib
from dvbpr_tf_datasets.common import statistics

UNKNOWN_CATEGORY = "unknown"
USER_SOURCE_IDS_FILE = "user_source_ids.txt"  # Written beside the records: line u = user u.

_FROZEN_FIELDS = ("split_method", "image_size", "sample_fraction", "seed", "min_items_per_user")


@dataclasses.dataclass(eq=False, kw_only=True)
class FeedbackConfig(tfds.core.BuilderConfig):
  """How a raw-feedback builder filters, splits and stores its data.

  TFDS's `BuilderConfig` is a non-frozen dataclass, so `frozen=True` cannot be declared on a
  subclass; the fields below are made read-only after construction instead.

  Attributes:
    split_method: `random` (the paper's leave-one-out) or `time` (latest interaction test,
      the one before validation).
    image_size: an int stores `image_size`x`image_size` RGB JPEGs; None keeps each image at
      its own size (an RGB JPEG byte for byte, others converted).
    sample_fraction: the share of users kept, chosen by a stable hash of the user id
      (`interactions.in_sample`) while the rows stream in; 1.0 keeps everyone.
    seed: the random split's seed.
    min_items_per_user: users with fewer distinct items are dropped (the paper: 5).
  """

  split_method: str = "random"
  image_size: int | None = 64
  sample_fraction: float = 1.0
  seed: int = 0
  min_items_per_user: int = splits_lib.MIN_INTERACTIONS_PER_USER

  def __post_init__(self):
    if self.split_method not in interactions.SPLIT_METHODS:
      raise ValueError(f"split_method must be one of {interactions.SPLIT_METHODS}, "
                       f"got {self.split_method!r}")
    if not 0.0 < self.sample_fraction <= 1.0:
      raise ValueError(f"sample_fraction must be in (0, 1], got {self.sample_fraction}")
    if self.min_items_per_user < 3:
      raise ValueError("min_items_per_user must be at least 3 (train, validation, test)")

  def __setattr__(self, name: str, value: Any) -> None:
    if name in _FROZEN_FIELDS and name in self.__dict__:
      raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
    super().__setattr__(name, value)


@dataclasses.dataclass
class FeedbackCatalog:
  """A built catalog, ready to be written as records.

  Items are numbered in the order of their source ids, users likewise; the interactions are
  parallel arrays of dense ids sorted by (user, item).
  """

  source_ids: list[str]
  jpegs: list[bytes]
  categories: np.ndarray  # [N] int64
  category_names: list[str]
  user_source_ids: list[str]
  users: np.ndarray  # [M] int64
  items: np.ndarray  # [M] int64
  splits: np.ndarray  # [M] int8
  statistics: dict
  dropped_examples: dict[str, list[str]]

  @property
  def num_users(self) -> int:
    return len(self.user_source_ids)


def build_catalog(
    log: interactions.InteractionLog,
    *,
    image_path: Callable[[str], epath.Path | None],
    images_root: epath.Path,
    categories: Mapping[str, str],
    missing_category_reason: str,
    config: FeedbackConfig,
    drops: drops_lib.DropLog,
    extra_statistics: Mapping[str, Any] | None = None,
) -> FeedbackCatalog:
  """Applies the rules of the module docstring to streamed interactions.

  Args:
    log: the interactions, with string ids (already subsampled and cleaned of bad rows).
    image_path: the image file of an item id, or None when it has none.
    images_root: the folder the images must be in: a path that resolves outside it (through
      a symlink, or an id holding `../`) is never read and counts as an undecodable image.
    categories: item id -> category (an empty string when the source left it empty).
    missing_category_reason: the drop reason counting items absent from `categories`.
    config: split method, image size, seed, minimum items per user.
    drops: the build's drop log; this adds its reasons and logs every warning.
    extra_statistics: added to the statistics (source row counts, sample fraction, ...).

  Returns:
    The catalog, its statistics and example ids of every drop reason.

  Raises:
    DatasetError: no user is left with enough items.
  """
  minimum = config.min_items_per_user
  below = f"users_below_{minimum}_items"
  below_rows = f"interactions_of_users_below_{minimum}_items"
  for reason, description in (
      ("duplicate_interactions", "rows dropped: the user already had the item"),
      ("items_without_image", "items dropped with their interactions: no image file"),
      ("undecodable_images", "items dropped with their interactions: the image cannot be "
                             "used (empty, truncated, not an image, more pixels than the "
                             "limit, not a regular file, or outside the images folder)"),
      ("interactions_of_dropped_items", "interactions of items without a usable image"),
      (below, f"users dropped: fewer than {minimum} distinct items left"),
      (below_rows, f"interactions of users with fewer than {minimum} distinct items"),
      ("items_whose_users_were_all_dropped", "items left out: every buyer was dropped"),
      (missing_category_reason, f"items kept with the category '{UNKNOWN_CATEGORY}': no "
                                "category row"),
      ("items_with_empty_category", f"items kept with the category '{UNKNOWN_CATEGORY}': "
                                    "an empty category"),
  ):
    drops.declare(reason, description)

  user_names, item_names = log.user_names, log.item_names
  pairs = lambda rows: (f"user {user_names[u]} item {item_names[i]}" for u, i in rows)
  all_users, all_items, all_times = log.arrays()
  first = interactions.first_occurrences(all_users, all_items, all_times)
  duplicate = np.ones(len(all_users), bool)
  duplicate[first] = False
  examples = np.flatnonzero(duplicate)[:drops_lib.MAX_EXAMPLES]
  drops.add("duplicate_interactions", int(np.sum(duplicate)),
            pairs(zip(all_users[examples], all_items[examples])))
  data = _Rows(all_users[first], all_items[first], all_times[first], first)
  del all_users, all_items, all_times, duplicate

  # Items without an image file.
  paths = [image_path(name) for name in item_names]
  has_file = np.array([p is not None for p in paths], bool)
  missing = np.flatnonzero(~has_file)
  drops.add("items_without_image", len(missing), (item_names[i] for i in missing))
  lost = ~has_file[data.items]
  drops.add("interactions_of_dropped_items", int(np.sum(lost)), pairs(data.first_pairs(lost)))
  data = data.where(~lost)
  data = _drop_small_users(data, log.num_users, minimum, user_names, pairs, drops, below,
                           below_rows)

  # Decode the images of the items still bought.
  candidates = np.unique(data.items)
  jpeg_of: dict[int, bytes] = {}
  bad = []
  for item, (jpeg, error) in zip(candidates, _convert_images([paths[i] for i in candidates],
                                                             config.image_size, images_root)):
    if jpeg is None:
      bad.append(int(item))
      drops.add("undecodable_images", 1, [f"{item_names[item]} ({error})"])
    else:
      jpeg_of[int(item)] = jpeg
  if bad:
    lost = np.isin(data.items, np.asarray(bad))
    drops.add("interactions_of_dropped_items", int(np.sum(lost)), pairs(data.first_pairs(lost)))
    data = _drop_small_users(data.where(~lost), log.num_users, minimum, user_names, pairs,
                             drops, below, below_rows)

  kept_items = np.unique(data.items)
  orphans = sorted(set(np.flatnonzero(has_file).tolist()) - set(bad) - set(kept_items.tolist()))
  drops.add("items_whose_users_were_all_dropped", len(orphans), (item_names[i] for i in orphans))
  if not len(data.users):
    drops.warn()
    raise errors.DatasetError(
        f"{drops.source}: no user is left with at least {minimum} distinct items that have a "
        f"usable image (read {len(log)} interactions of {log.num_users} users on "
        f"{log.num_items} items; dropped: {drops.counts}). Check that the image files are "
        "named after the item ids, and that the sample (if any) is not too small.")

  # Dense ids in the order of the source ids; interactions sorted by (user, item).
  item_order = sorted(kept_items.tolist(), key=item_names.__getitem__)
  user_order = sorted(np.unique(data.users).tolist(), key=user_names.__getitem__)
  item_map = np.full(log.num_items, -1, np.int64)
  item_map[item_order] = np.arange(len(item_order))
  user_map = np.full(log.num_users, -1, np.int64)
  user_map[user_order] = np.arange(len(user_order))
  data = _Rows(user_map[data.users], item_map[data.items], data.times, data.rows)
  data = data.where(np.lexsort((data.items, data.users)))
  users, items = data.users, data.items
  num_users, num_items = len(user_order), len(item_order)

  split = interactions.split_interactions(
      config.split_method, users=users, times=data.times, rows=data.rows, num_users=num_users,
      seed=config.seed)
  splits_lib.check_split(users, items, split, num_users)

  source_ids = [item_names[i] for i in item_order]
  codes, category_names = _categories(source_ids, categories, missing_category_reason, drops)
  drops.warn()

  stats = statistics.interaction_statistics(
      num_users=num_users, num_items=num_items, users=users, items=items, splits=split,
      categories=codes, category_names=category_names, dropped=drops.counts)
  stats.update({
      "split_method": config.split_method,
      "image_size": config.image_size if config.image_size else "original",
      "min_items_per_user": minimum,
      "split_seed": config.seed,
      "source_interactions_read": len(log),
      "source_users_read": log.num_users,
      "source_items_read": log.num_items,
  })
  stats.update(extra_statistics or {})
  return FeedbackCatalog(
      source_ids=source_ids,
      jpegs=[jpeg_of.pop(i) for i in item_order],
      categories=codes,
      category_names=category_names,
      user_source_ids=[user_names[u] for u in user_order],
      users=users,
      items=items,
      splits=split.astype(np.int8),
      statistics=stats,
      dropped_examples=drops.examples,
  )


@dataclasses.dataclass(frozen=True)
class _Rows:
  """Parallel arrays of interactions: dense user and item, time, source row."""

  users: np.ndarray
  items: np.ndarray
  times: np.ndarray
  rows: np.ndarray

  def where(self, index: np.ndarray) -> "_Rows":
    """The rows selected by a boolean mask or an index array."""
    return _Rows(self.users[index], self.items[index], self.times[index], self.rows[index])

  def first_pairs(self, mask: np.ndarray):
    """(user, item) of the first rows where `mask` holds (examples for warnings)."""
    for r in np.flatnonzero(mask)[:drops_lib.MAX_EXAMPLES]:
      yield self.users[r], self.items[r]


def _drop_small_users(data: _Rows, num_users: int, minimum: int, user_names, pairs,
                      drops: drops_lib.DropLog, reason: str, rows_reason: str) -> _Rows:
  """Drops users with fewer than `minimum` rows, counting users and rows."""
  enough = interactions.users_with_at_least(data.users, num_users, minimum)
  present = np.bincount(data.users, minlength=num_users) > 0
  small = np.flatnonzero(present & ~enough)
  drops.add(reason, len(small), (user_names[u] for u in small))
  lost = ~enough[data.users]
  drops.add(rows_reason, int(np.sum(lost)), pairs(data.first_pairs(lost)))
  return data.where(~lost)


def _categories(source_ids: Sequence[str], categories: Mapping[str, str], missing_reason: str,
                drops: drops_lib.DropLog) -> tuple[np.ndarray, list[str]]:
  """Category code of each item and the sorted names; unknowns counted by reason."""
  names = []
  for item in source_ids:
    category = categories.get(item)
    if category is None:
      drops.add(missing_reason, 1, [item])
      category = UNKNOWN_CATEGORY
    elif not category:
      drops.add("items_with_empty_category", 1, [item])
      category = UNKNOWN_CATEGORY
    names.append(records.clean_label(category) or UNKNOWN_CATEGORY)
  category_names = sorted(set(names))
  lookup = {name: code for code, name in enumerate(category_names)}
  return np.asarray([lookup[n] for n in names], np.int64), category_names


def _convert_images(paths: Sequence[epath.Path], size: int | None,
                    root: epath.Path) -> list:
  """[(jpeg bytes, None) or (None, error text)] for each path, in order.

  Only regular files inside `root` (after following symlinks) are read: a FIFO named like
  an image would block the build forever, a link out of the folder would put another file
  into the dataset. Images are read and converted in a few threads (Pillow releases the GIL
  while decoding); large JPEGs are decoded at a reduced scale when they are to be shrunk
  (`images.to_rgb_jpeg(reduced_decode=True)`).
  """
  inside = os.path.realpath(os.fspath(root))

  def convert(path: epath.Path):
    try:
      real = os.path.realpath(os.fspath(path))
      if os.path.commonpath([inside, real]) != inside:
        return None, f"{path.name} resolves outside the images folder ({real})"
      return images.to_rgb_jpeg(images.read_regular_file(real), size,
                                reduced_decode=True), None
    except images.BadImageError as e:
      return None, str(e)
    except OSError as e:  # Unreadable file (permissions, a directory, a FIFO, a loop).
      reason = e.strerror or str(e)
      return None, f"cannot read {path.name} ({reason})"

  if not paths:
    return []
  workers = max(1, min(8, os.cpu_count() or 1))
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    return list(pool.map(convert, paths, chunksize=64))


def manual_dir(dl_manager: tfds.download.DownloadManager, required: Sequence[str],
               instructions: str, dataset: str) -> epath.Path:
  """The manual directory, checked to hold every `required` name (files or folders).

  Raises:
    DatasetError: the directory is missing or empty, or lacks a required name; the message
      lists every expected path and the download instructions.
  """
  expected = getattr(dl_manager, "_manual_dir", None)
  try:
    root = epath.Path(dl_manager.manual_dir)
  except AssertionError as e:  # TFDS: no manual dir, or it does not exist or is empty.
    where = epath.Path(expected) if expected else epath.Path("<manual_dir>")
    paths = "\n".join(f"  {where / name}" for name in required)
    raise errors.DatasetError(
        f"{dataset}: the manual directory {where} does not exist or is empty; expected:\n"
        f"{paths}\n(pass --manual_dir=<folder> to say where the files are).\n{instructions}"
    ) from e
  absent = [name for name in required if not (root / name).exists()]
  if absent:
    paths = "\n".join(f"  {root / name}" for name in absent)
    raise errors.DatasetError(
        f"{dataset}: required files are missing from the manual directory:\n{paths}\n"
        f"{instructions}")
  return root


# Escapes that keep one id on one line: the backslash itself and every character at which
# `str.splitlines` would break a line.
_LINE_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\v": "\\v", "\f": "\\f",
                 "\x1c": "\\x1c", "\x1d": "\\x1d", "\x1e": "\\x1e", "\x85": "\\x85",
                 "\u2028": "\\u2028", "\u2029": "\\u2029"}
_LINE_UNESCAPE = re.compile(r"\\(\\|n|r|v|f|x1c|x1d|x1e|x85|u2028|u2029)")
_UNESCAPES = {escaped[1:]: raw for raw, escaped in _LINE_ESCAPES.items()}


def escape_line(text: str) -> str:
  """`text` with backslashes and line breaks written as backslash escapes (`\\n`, ...)."""
  return "".join(_LINE_ESCAPES.get(c, c) for c in text)


def unescape_line(line: str) -> str:
  """The inverse of `escape_line`."""
  return _LINE_UNESCAPE.sub(lambda m: _UNESCAPES[m.group(1)], line)


def write_user_source_ids(data_path: epath.PathLike, user_source_ids: Sequence[str]) -> None:
  """Writes `user_source_ids.txt` beside the records: line u holds the source id of user u,
  with backslashes and line breaks escaped (`escape_line`), so that an id holding a newline
  cannot shift the lines after it; `read_user_source_ids` reads it back."""
  path = epath.Path(data_path)
  path.mkdir(parents=True, exist_ok=True)
  (path / USER_SOURCE_IDS_FILE).write_text(
      "".join(f"{escape_line(u)}\n" for u in user_source_ids), encoding="utf-8")


def read_user_source_ids(data_path: epath.PathLike) -> list[str]:
  """The source id of every user, in user order, from `user_source_ids.txt`."""
  text = (epath.Path(data_path) / USER_SOURCE_IDS_FILE).read_text(encoding="utf-8")
  return [unescape_line(line) for line in text.split("\n")[:-1]]


def log_and_print_statistics(name: str, stats: Mapping) -> None:
  text = statistics.format_statistics(name, stats)
  logging.info("%s", text)
  print(text, flush=True)


class FeedbackBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """What the raw-feedback builders share: the manual directory, the build, the statistics
  and the records. A subclass names its files and reads them (`build_catalog`)."""

  REQUIRED_FILES: Sequence[str] = ()  # In the manual directory, checked before reading.
  HOMEPAGE: str | None = None

  def build_catalog(self, root: epath.Path, name: str) -> FeedbackCatalog:
    raise NotImplementedError

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=records.catalog_features(None),
        homepage=self.HOMEPAGE,
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    name = f"{self.name}/{self.builder_config.name}"
    root = manual_dir(dl_manager, self.REQUIRED_FILES, self.MANUAL_DOWNLOAD_INSTRUCTIONS, name)
    catalog = self.build_catalog(root, name)
    self.info.features["category"].names = catalog.category_names
    self.info.metadata["statistics"] = catalog.statistics
    self.info.metadata["dropped_examples"] = catalog.dropped_examples
    write_user_source_ids(self.data_path, catalog.user_source_ids)
    log_and_print_statistics(name, catalog.statistics)
    return {records.CATALOG_SPLIT: self._generate_examples(catalog)}

  def _generate_examples(self, catalog: FeedbackCatalog):
    """Yields the catalog records in item order, releasing each image once yielded."""
    yield from records.catalog_examples(
        source_ids=catalog.source_ids,
        jpegs=records.ReleasingList(catalog.jpegs),
        categories=catalog.categories,
        users=catalog.users,
        items=catalog.items,
        splits=catalog.splits,
    )
