"""The datasets released by the DVBPR authors (Kang et al., ICDM 2017), as TFDS catalogs.

Each authors' file is one pickled `.npy` (see `safe_pickle`): per-user training, validation and
test interactions and, per item, the product JPEG and (Amazon) its category. This builder
keeps the authors' split exactly and writes the project's record schema
(`dvbpr_tf_datasets.common.records`): one `catalog` split, one record per item, the
interactions inside the item records.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Sequence

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from dvbpr_tf_datasets.common import images
from dvbpr_tf_datasets.common import records
from dvbpr_tf_datasets.common import splits as splits_lib
from dvbpr_tf_datasets.common import statistics
from dvbpr_tf_datasets.dvbpr_authors import safe_pickle

UNKNOWN_CATEGORY = "unknown"

_SPLIT_FIELDS = (
    ("user_train", records.TRAIN),
    ("user_validation", records.VALIDATION),
    ("user_test", records.TEST),
)

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
The authors of DVBPR (Wang-Cheng Kang, Chen Fang, Zhaowen Wang, Julian McAuley) distribute
their four preprocessed datasets as pickled NumPy files. Download them from the links in the
README of the authors' DVBPR GitHub repository (kang205/DVBPR), which point to Julian
McAuley's data page at UCSD (the McAuley lab's recommender-systems datasets). Each file is
2-6 GB. Keep the file names exactly as released and place the files you need directly in the
manual directory (by default `<data_dir>/downloads/manual/`, or the `manual_dir` of
`tfds.download.DownloadConfig`):

  AmazonFashion6ImgPartitioned.npy   -> configs amazon_fashion, amazon_fashion_64, _224
  AmazonWomenWithImgPartitioned.npy  -> configs amazon_women,   amazon_women_64,   _224
  AmazonMenWithImgPartitioned.npy    -> configs amazon_men,     amazon_men_64,     _224
  TradesyImgPartitioned.npy          -> configs tradesy,        tradesy_64,        _224

The files are pickles: this builder reads them with a restricted unpickler that admits only
builtin containers and NumPy array reconstruction, never with np.load(allow_pickle=True).
"""


@dataclasses.dataclass(eq=False, kw_only=True)
class DvbprAuthorsConfig(tfds.core.BuilderConfig):
  """One authors' file, stored at one image size.

  TFDS's `BuilderConfig` is a non-frozen dataclass, so `frozen=True` cannot be declared on a
  subclass; the two fields below are made read-only after construction instead.

  Attributes:
    filename: the authors' `.npy` file, looked up in the manual directory.
    image_size: None keeps each source image as it is when it is an RGB JPEG (others are
      converted to RGB JPEG at their own size); an int stores `image_size`x`image_size` RGB
      JPEGs.
  """

  filename: str
  image_size: int | None = None

  def __setattr__(self, name: str, value: Any) -> None:
    if name in ("filename", "image_size") and name in self.__dict__:
      raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
    super().__setattr__(name, value)


_SOURCES = (
    ("amazon_fashion", "AmazonFashion6ImgPartitioned.npy", "Amazon Fashion (6 categories)"),
    ("amazon_women", "AmazonWomenWithImgPartitioned.npy", "Amazon Women"),
    ("amazon_men", "AmazonMenWithImgPartitioned.npy", "Amazon Men"),
    ("tradesy", "TradesyImgPartitioned.npy", "Tradesy.com (no categories)"),
)


def _configs() -> list[DvbprAuthorsConfig]:
  configs = []
  for name, filename, title in _SOURCES:
    configs.append(DvbprAuthorsConfig(
        name=name, filename=filename, image_size=None,
        description=f"{title} from {filename}, images at their original size.",
    ))
  for size, use in ((64, "CPU runs, the GAN"),
                    (224, "the paper's input size: training decodes them with no resize")):
    for name, filename, title in _SOURCES:
      configs.append(DvbprAuthorsConfig(
          name=f"{name}_{size}", filename=filename, image_size=size,
          description=f"{title} from {filename}, images resized to {size}x{size} ({use}).",
      ))
  return configs


class Builder(tfds.core.GeneratorBasedBuilder):
  """The DVBPR authors' released datasets (Amazon Fashion/Women/Men, Tradesy)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: the authors' split kept exactly; undecodable images skipped.",
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = _configs()
  # Where README.md, CITATIONS.bib, checksums.tsv and dummy_data/ live. TFDS would infer both
  # paths with importlib.resources from the top-level package, which fails for
  # `dvbpr_tf_datasets`: a namespace package (no __init__.py) whose editable install adds a
  # non-directory path hook to its __path__ (NotADirectoryError from MultiplexedPath).
  # (Same workaround as in fashion_mnist_shoppers.)
  pkg_dir_path = epath.Path(__file__).parent
  code_path = epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=records.catalog_features(None),
        homepage="https://github.com/kang205/DVBPR",
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    path = _manual_file(dl_manager, config.filename)
    logging.info("Loading %s with the restricted unpickler.", path)
    data = safe_pickle.load_authors_dataset(path)
    catalog = build_catalog(data, image_size=config.image_size, source=config.filename)
    del data  # build_catalog consumed the items; the rest is small.

    self.info.features["category"].names = catalog.category_names
    self.info.metadata["statistics"] = catalog.statistics
    self.info.metadata["skipped_item_source_ids"] = catalog.skipped_item_source_ids
    self.info.metadata["dropped_user_source_ids"] = catalog.dropped_user_source_ids
    text = statistics.format_statistics(f"{self.name}/{config.name}", catalog.statistics)
    logging.info("%s", text)
    print(text)
    return {records.CATALOG_SPLIT: self._generate_examples(catalog)}

  def _generate_examples(self, catalog: "Catalog"):
    """Yields the catalog records in item order, releasing each image once yielded."""
    yield from records.catalog_examples(
        source_ids=catalog.source_ids,
        jpegs=records.ReleasingList(catalog.jpegs),
        categories=catalog.categories,
        users=catalog.users,
        items=catalog.items,
        splits=catalog.splits,
    )


def _manual_file(dl_manager, filename: str) -> epath.Path:
  """The path of `filename` in the manual directory; raises if it is not there."""
  try:
    manual_dir = dl_manager.manual_dir
  except AssertionError as e:  # TFDS: the manual directory does not exist or is empty.
    expected = getattr(dl_manager, "_manual_dir", None)
    where = f" at {epath.Path(expected) / filename}" if expected else ""
    raise FileNotFoundError(
        f"The authors' file {filename} was not found{where}: {e}"
    ) from e
  path = epath.Path(manual_dir) / filename
  if not path.exists():
    raise FileNotFoundError(
        f"The authors' file was not found at {path}. Download {filename} as described below "
        f"and place it at that path (or pass another manual_dir).\n"
        f"{_MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )
  return path


@dataclasses.dataclass
class Catalog:
  """A converted authors' file, ready to be written as catalog records.

  Items are in the authors' index order; dense item `i` is the authors' item
  `source_ids[i]`. Interactions are parallel arrays of dense ids, sorted by (item, user).
  """

  source_ids: list[str]
  jpegs: list[bytes]
  categories: np.ndarray  # [N] int64
  category_names: list[str]
  users: np.ndarray  # [M] int64
  items: np.ndarray  # [M] int64
  splits: np.ndarray  # [M] int8
  num_users: int
  statistics: dict
  skipped_item_source_ids: list[int]
  dropped_user_source_ids: list[int]


def build_catalog(
    data: safe_pickle.AuthorsDataset, *, image_size: int | None, source: str
) -> Catalog:
  """Converts a loaded authors' file into a `Catalog`.

  The images are converted one at a time and each item's entry in `data.items` is replaced by
  None once read, so the source and the converted images are never both held in full
  (`data.items` is consumed).

  - Items whose image does not decode are skipped (warning, `dropped.undecodable_image_items`);
    the remaining items get dense ids 0..N-1 in the authors' index order.
  - Interactions on skipped items or on items absent from `Item` are dropped
    (`dropped.interactions_on_missing_items`).
  - A (user, item) pair listed more than once is kept once (`dropped.duplicate_interactions`);
    the held-out copy wins over a training copy (test over validation over train), so the
    authors' validation and test items stay as they chose them.
  - A user left without exactly one validation and one test interaction is dropped with all
    their interactions (`dropped.users_without_heldout_item`,
    `dropped.interactions_of_users_without_heldout_item`): promoting a training interaction
    would change the authors' split. Users keep their authors' index as dense id unless a user
    is dropped; then the kept users are renumbered in the authors' order.

  Args:
    data: from `safe_pickle.load_authors_dataset`.
    image_size: None keeps RGB JPEGs as they are; an int resizes to `image_size`x`image_size`.
    source: the file name, for messages.

  Raises:
    safe_pickle.AuthorsFormatError: a user or item is not in the authors' format; the message
      says which and what was found.
  """
  kept_index, jpegs, raw_categories, skipped = _convert_items(data.items, image_size, source)
  categories, category_names, category_source, without_category = _category_table(
      raw_categories, source
  )
  del raw_categories

  a_users, a_items, a_splits, source_users = _read_interactions(data, source)
  dropped: dict[str, int] = {"undecodable_image_items": len(skipped)}
  kept_index = np.asarray(kept_index, np.int64)

  # Interactions on items that are not in the catalog.
  pos = np.searchsorted(kept_index, a_items)
  on_kept = pos < len(kept_index)
  on_kept[on_kept] = kept_index[pos[on_kept]] == a_items[on_kept]
  dropped["interactions_on_missing_items"] = int(np.sum(~on_kept))
  absent = np.setdiff1d(a_items[~on_kept], np.asarray(skipped, np.int64))
  a_users, a_splits, d_items = a_users[on_kept], a_splits[on_kept], pos[on_kept]

  # Duplicate (user, item) pairs: keep one, the held-out copy first (TEST > VALIDATION > TRAIN).
  order = np.lexsort((-a_splits.astype(np.int64), d_items, a_users))
  a_users, d_items, a_splits = a_users[order], d_items[order], a_splits[order]
  first = np.ones(len(a_users), bool)
  first[1:] = (a_users[1:] != a_users[:-1]) | (d_items[1:] != d_items[:-1])
  dropped["duplicate_interactions"] = int(np.sum(~first))
  a_users, d_items, a_splits = a_users[first], d_items[first], a_splits[first]

  # Users without exactly one validation and one test interaction.
  source_users = np.asarray(sorted(source_users), np.int64)
  has_heldout = np.ones(len(source_users), bool)
  for code in (records.VALIDATION, records.TEST):
    held = a_users[a_splits == code]
    counts = np.zeros(len(source_users), np.int64)
    np.add.at(counts, np.searchsorted(source_users, held), 1)
    has_heldout &= counts == 1
  kept_users = source_users[has_heldout]
  dropped_users = source_users[~has_heldout]
  keep = np.isin(a_users, kept_users)
  dropped["users_without_heldout_item"] = int(len(dropped_users))
  dropped["interactions_of_users_without_heldout_item"] = int(np.sum(~keep))
  for u in dropped_users[:20]:
    logging.warning("%s: user %d dropped: their validation or test item is missing.", source, u)
  a_users, d_items, a_splits = a_users[keep], d_items[keep], a_splits[keep]

  users = np.searchsorted(kept_users, a_users).astype(np.int64)
  order = np.lexsort((users, d_items))
  users, items, splits = users[order], d_items[order].astype(np.int64), a_splits[order]
  num_users = len(kept_users)
  splits_lib.check_split(users, items, splits, num_users)

  stats = statistics.interaction_statistics(
      num_users=num_users,
      num_items=len(kept_index),
      users=users,
      items=items,
      splits=splits,
      categories=categories,
      category_names=category_names,
      dropped=dropped,
  )
  stats.update({
      "source_file": source,
      "source_usernum": int(data.usernum),
      "source_itemnum": int(data.itemnum),
      "source_users_listed": int(len(source_users)),
      "absent_items_referenced": int(len(absent)),
      "category_source": category_source,
      "items_without_category": int(without_category),
      "users_renumbered": bool(not np.array_equal(kept_users, np.arange(num_users))),
      "items_renumbered": bool(not np.array_equal(kept_index, np.arange(len(kept_index)))),
  })
  if data.usernum != len(source_users):
    logging.warning("%s: usernum is %d but %d users are listed.", source, data.usernum,
                    len(source_users))
  if data.itemnum != len(kept_index) + len(skipped):
    logging.warning("%s: itemnum is %d but Item holds %d items.", source, data.itemnum,
                    len(kept_index) + len(skipped))
  return Catalog(
      source_ids=[str(i) for i in kept_index],
      jpegs=jpegs,
      categories=categories,
      category_names=category_names,
      users=users,
      items=items,
      splits=splits.astype(np.int8),
      num_users=num_users,
      statistics=stats,
      skipped_item_source_ids=[int(i) for i in skipped],
      dropped_user_source_ids=[int(u) for u in dropped_users],
  )


_INT64 = np.iinfo(np.int64)


def _index(key: Any, what: str, source: str) -> int:
  """`key` as an int; AuthorsFormatError unless it is an integer in the int64 range."""
  if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)):
    raise safe_pickle.AuthorsFormatError(
        f"{source}: {what} should be an integer index, found {safe_pickle.describe(key)} "
        f"({key!r:.60})."
    )
  index = int(key)
  if not _INT64.min <= index <= _INT64.max:
    # The indices are stored as int64; a huge int is not printed (str() of it can fail).
    bits = index.bit_length()
    shown = str(index) if bits <= 256 else f"an integer of {bits} bits"
    raise safe_pickle.AuthorsFormatError(
        f"{source}: {what} is {shown}, outside the int64 range ({_INT64.min}..{_INT64.max}) "
        "that the catalog stores indices in; the authors' indices are 0..usernum-1 and "
        "0..itemnum-1: the file is damaged or not an authors' file."
    )
  return index


def _entries(container: Any, name: str, source: str, release: bool = False) -> Iterator:
  """Yields (index, value) of a dict keyed by index or of a list, in index order.

  With `release`, each entry is replaced by None in `container` once yielded (lists and
  dicts; a tuple cannot be changed and is left as it is).
  """
  if isinstance(container, dict):
    keys = sorted(container, key=lambda k: _index(k, f"a key of {name}", source))
    for key in keys:
      value = container[key]
      if release:
        container[key] = None
      yield int(key), value
  else:
    mutable = release and isinstance(container, list)
    for i in range(len(container)):
      value = container[i]
      if mutable:
        container[i] = None
      yield i, value


def _required_field(record, key: str, where: str, expected: str):
  """record[key] of an authors' dict (str or bytes keys); AuthorsFormatError saying what
  was found otherwise."""
  if not isinstance(record, dict):
    raise safe_pickle.AuthorsFormatError(
        f"{where} should be a dict with {expected}, found {safe_pickle.describe(record)}.")
  try:
    return safe_pickle.get_field(record, key)
  except KeyError:
    raise safe_pickle.AuthorsFormatError(
        f"{where} has no '{key}' key (keys: {sorted(map(repr, record))}).") from None


def _convert_items(items: Any, image_size: int | None, source: str):
  """Converts each item's image; returns kept indices, JPEGs, raw categories, skipped indices."""
  kept, jpegs, raw_categories, skipped = [], [], [], []
  for index, record in _entries(items, "Item", source, release=True):
    where = f"{source}: Item[{index}]"
    image = _required_field(record, "imgs", where, "'imgs' (and 'c')")
    try:
      data = safe_pickle.as_bytes(image)
    except TypeError as e:
      raise safe_pickle.AuthorsFormatError(f"{where}['imgs']: {e}.") from e
    category = safe_pickle.get_field(record, "c", None)
    del record, image
    try:
      jpeg = images.to_rgb_jpeg(data, image_size)
    except images.BadImageError as e:
      logging.warning("%s skipped: its image does not decode (%s).", where, e)
      skipped.append(index)
      continue
    kept.append(index)
    jpegs.append(jpeg)
    raw_categories.append((index, category))
  return kept, jpegs, raw_categories, skipped


def _category_table(raw: Sequence[tuple[int, Any]], source: str):
  """Category index per kept item, the names, a description of the source, #unknown.

  One-hot `'c'` -> argmax, names `c0..c{n-1}`; text `'c'` (a taxonomy, joined with ' > ', or
  ' | ' between several paths) -> the text, names sorted; no `'c'` (Tradesy) or an all-zero
  vector -> `unknown`.
  """
  kind, width = None, None
  values = []
  for index, c in raw:
    item_kind, value = _parse_category(c, f"{source}: Item[{index}]['c']")
    if item_kind is not None:
      if kind is None:
        kind = item_kind
      elif item_kind != kind:
        raise safe_pickle.AuthorsFormatError(
            f"{source}: Item[{index}]['c'] is {item_kind} but earlier items have {kind} "
            "categories; expected one kind for the whole file."
        )
      if item_kind == "one-hot":
        n, value = value
        if width is None:
          width = n
        elif n != width:
          raise safe_pickle.AuthorsFormatError(
              f"{source}: Item[{index}]['c'] has {n} entries, earlier items {width}."
          )
    values.append(value)
  unknown = sum(v is None for v in values)
  if kind == "one-hot":
    names = [f"c{i}" for i in range(width)] + ([UNKNOWN_CATEGORY] if unknown else [])
    codes = [width if v is None else v for v in values]
    description = f"one-hot 'c' ({width}-way)"
  elif kind == "text":
    names = sorted({v for v in values if v is not None} | ({UNKNOWN_CATEGORY} if unknown else set()))
    lookup = {name: i for i, name in enumerate(names)}
    codes = [lookup[UNKNOWN_CATEGORY if v is None else v] for v in values]
    description = "text 'c' (taxonomy)"
  else:
    names = [UNKNOWN_CATEGORY]
    codes = [0] * len(values)
    description = "none (no 'c' key)"
  return np.asarray(codes, np.int64), names, description, unknown


def _parse_category(c: Any, where: str):
  """('one-hot', (width, index or None)), ('text', name) or (None, None) when absent."""
  if c is None:
    return None, None
  if isinstance(c, (str, bytes, bytearray)):
    return "text", _clean(safe_pickle.as_text(c))
  if isinstance(c, np.ndarray) and c.dtype.kind in "biuf":
    return "one-hot", _one_hot(c, where)
  if isinstance(c, (list, tuple, np.ndarray)):
    flat = list(np.asarray(c, dtype=object).ravel()) if isinstance(c, np.ndarray) else list(c)
    if flat and all(isinstance(x, (int, float, np.integer, np.floating)) and
                    not isinstance(x, (bool, np.bool_)) for x in flat):
      return "one-hot", _one_hot(np.asarray(flat, np.float64), where)
    try:
      return "text", _clean(_join_taxonomy(flat))
    except TypeError as e:
      raise safe_pickle.AuthorsFormatError(
          f"{where} is neither a one-hot vector nor text: {e}."
      ) from e
  raise safe_pickle.AuthorsFormatError(
      f"{where} is neither a one-hot vector nor text, found {safe_pickle.describe(c)}."
  )


def _one_hot(vector: np.ndarray, where: str):
  vector = np.asarray(vector, np.float64).ravel()
  if vector.size == 0:
    raise safe_pickle.AuthorsFormatError(f"{where} is an empty vector.")
  if not np.any(vector > 0):
    return len(vector), None
  return len(vector), int(np.argmax(vector))


def _join_taxonomy(parts: list) -> str:
  if all(isinstance(p, (str, bytes, bytearray)) for p in parts):
    return " > ".join(safe_pickle.as_text(p) for p in parts)
  paths = []
  for p in parts:
    if isinstance(p, (str, bytes, bytearray)):
      paths.append(safe_pickle.as_text(p))
    elif isinstance(p, (list, tuple, np.ndarray)):
      paths.append(_join_taxonomy(list(p)))
    else:
      raise TypeError(f"found {safe_pickle.describe(p)} inside the category")
  return " | ".join(paths)


def _clean(name: str) -> str:
  name = records.clean_label(name)  # No newlines: ClassLabel names are one per line.
  return name or UNKNOWN_CATEGORY


def _read_interactions(data: safe_pickle.AuthorsDataset, source: str):
  """The authors' interactions as arrays (authors' user, authors' item, split code).

  Returns also the set of users listed in any of the three parts.

  Raises:
    safe_pickle.AuthorsFormatError: an entry is not a list of {'productid': int} dicts, or a
      validation/test list holds more than one interaction.
  """
  users, items, codes = [], [], []
  listed = set()
  for name, code in _SPLIT_FIELDS:
    container = getattr(data, name)
    for user, entries in _entries(container, name, source):
      listed.add(user)
      where = f"{source}: {name}[{user}]"
      if isinstance(entries, np.ndarray) and entries.dtype == object:
        entries = list(entries.ravel())
      if not isinstance(entries, (list, tuple)):
        raise safe_pickle.AuthorsFormatError(
            f"{where} should be a list of {{'productid': item}} dicts, found "
            f"{safe_pickle.describe(entries)}."
        )
      if code != records.TRAIN and len(entries) > 1:
        raise safe_pickle.AuthorsFormatError(
            f"{where} holds {len(entries)} interactions; the authors' format has exactly one."
        )
      for k, entry in enumerate(entries):
        product = _required_field(entry, "productid", f"{where}[{k}]", "'productid'")
        users.append(user)
        items.append(_index(product, f"{name}[{user}][{k}]['productid']", source))
        codes.append(code)
  return (
      np.asarray(users, np.int64),
      np.asarray(items, np.int64),
      np.asarray(codes, np.int8),
      listed,
  )
