"""A built dataset in memory: item images (JPEG bytes), categories and interactions.

`load_catalog` builds the TFDS dataset if needed (offline, through the Python API), then reads
its `catalog` split once, without decoding images, into a `Catalog`. Everything downstream (the
input pipelines, evaluation, the baselines) works from a `Catalog`.

A build is written by TFDS into an `incomplete.*` folder renamed into place at the end, so a
killed build leaves only that leftover (reported, never read). A dataset folder that is there
but not whole (no `dataset_info.json`, shard files missing or shorter than recorded: a copy
cut short, a disk that filled up) is built again when it can be, and refused with a message
saying so when it cannot.

Two processes building one dataset into one data dir at once would race for the same final
folder, so a build takes the lock of its config folder (`<data_dir>/<builder>/<config>/.lock`,
the work dir's lock of `core/workdir.py`): a second process that finds the dataset missing
waits for the first (saying whose build it waits for) and then reads the finished build.
Reading a whole dataset takes no lock, so a read-only data dir stays readable.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import pathlib
import time
from typing import Mapping

from absl import logging
from etils import epath
from google.protobuf import json_format
import numpy as np
import tensorflow_datasets as tfds

from dvbpr_tf.core import errors
from dvbpr_tf.core import workdir as workdir_lib
from dvbpr_tf_datasets.common import records

TRAIN, VALIDATION, TEST = records.TRAIN, records.VALIDATION, records.TEST
SPLIT_CODES = {"train": TRAIN, "validation": VALIDATION, "test": TEST}

# User-facing dataset names -> (builder, config). `builder/config` is accepted as well.
DATASET_ALIASES: Mapping[str, tuple[str, str]] = {
    "fashion_mnist_shoppers": ("fashion_mnist_shoppers", "demo"),
    "amazon_fashion": ("dvbpr_authors", "amazon_fashion"),
    "amazon_women": ("dvbpr_authors", "amazon_women"),
    "amazon_men": ("dvbpr_authors", "amazon_men"),
    "tradesy": ("dvbpr_authors", "tradesy"),
    "hm_fashion": ("hm_fashion", "sample_1pct"),
    "fashion_catalog": ("fashion_catalog", "default"),
}
# Builder name -> the module that defines (and so registers) it.
BUILDER_MODULES: Mapping[str, str] = {
    "fashion_mnist_shoppers":
        "dvbpr_tf_datasets.fashion_mnist_shoppers.fashion_mnist_shoppers_dataset_builder",
    "dvbpr_authors": "dvbpr_tf_datasets.dvbpr_authors.dvbpr_authors_dataset_builder",
    "hm_fashion": "dvbpr_tf_datasets.hm_fashion.hm_fashion_dataset_builder",
    "fashion_catalog": "dvbpr_tf_datasets.fashion_catalog.fashion_catalog_dataset_builder",
}


class DatasetNotFoundError(errors.UserError, ValueError):
  """An unknown dataset or config name."""


class IncompleteDatasetError(errors.UserError):
  """A built dataset's folder is there but not whole."""


def resolve_dataset(name: str) -> tuple[str, str]:
  """Maps a user-facing name (`amazon_fashion`, `fashion_mnist_shoppers/tiny`) to
  (builder name, config name)."""
  if name in DATASET_ALIASES:
    return DATASET_ALIASES[name]
  if "/" in name:
    builder_name, config_name = name.split("/", 1)
    if builder_name in BUILDER_MODULES:
      return builder_name, config_name
    if builder_name in DATASET_ALIASES and config_name:  # e.g. amazon_fashion/64
      base_builder, base_config = DATASET_ALIASES[builder_name]
      return base_builder, f"{base_config}_{config_name}"
  raise DatasetNotFoundError(
      f"unknown dataset {name!r}; known: {', '.join(known_dataset_names())}")


def known_dataset_names() -> list[str]:
  names = list(DATASET_ALIASES)
  for builder_name in BUILDER_MODULES:
    for config in builder_class(builder_name).BUILDER_CONFIGS:
      names.append(f"{builder_name}/{config.name}")
  return names


def builder_class(builder_name: str):
  module = importlib.import_module(BUILDER_MODULES[builder_name])
  return module.Builder


def get_builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  builder_name, config_name = resolve_dataset(name)
  cls = builder_class(builder_name)
  configs = [c.name for c in cls.BUILDER_CONFIGS]
  if config_name not in configs:
    raise DatasetNotFoundError(
        f"dataset {builder_name!r} has no config {config_name!r}; configs: {', '.join(configs)}")
  try:
    return cls(config=config_name, data_dir=data_dir)
  except (ValueError, json_format.ParseError) as e:  # JSONDecodeError is a ValueError.
    # TFDS reads a built dataset's dataset_info.json and metadata.json when the builder is
    # made: a truncated one (a copy cut short, a full disk) fails there.
    root = epath.Path(data_dir) if data_dir else epath.Path(tfds.core.constants.DATA_DIR)
    raise _damaged(name, root / builder_name / config_name / str(cls.VERSION), e) from None


def _damaged(name: str, folder, error: Exception) -> IncompleteDatasetError:
  reason = " ".join(str(error).split())[:200]
  return IncompleteDatasetError(
      f"the built dataset {name!r} in {folder} cannot be read: its dataset_info.json or "
      f"metadata.json is damaged ({reason}); delete that folder and rerun (any command "
      "that reads it builds it again).")


@dataclasses.dataclass(frozen=True, eq=False)
class Catalog:
  """Items and interactions of one dataset, all indices dense.

  Attributes:
    name: `builder/config`.
    num_users, num_items: sizes.
    category_names: the category labels, indexed by category id.
    item_category: [num_items] category id of each item.
    source_ids: [num_items] the source's item ids (text).
    jpegs: [num_items] object array of JPEG bytes.
    users, items, splits: [M] every interaction: user, item, split code (TRAIN, VALIDATION,
      TEST).
    statistics: the build's statistics (`metadata.json`).
    data_path: where the TFRecords are.
  """

  name: str
  num_users: int
  num_items: int
  category_names: tuple[str, ...]
  item_category: np.ndarray
  source_ids: np.ndarray
  jpegs: np.ndarray
  users: np.ndarray
  items: np.ndarray
  splits: np.ndarray
  statistics: Mapping
  data_path: str

  @property
  def num_categories(self) -> int:
    return len(self.category_names)

  def interactions(self, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of one split: `train`, `validation` or `test`."""
    mask = self.splits == SPLIT_CODES[split]
    return self.users[mask], self.items[mask]

  @functools.cached_property
  def train_counts(self) -> np.ndarray:
    """[num_items] number of training observations of each item."""
    return np.bincount(self.items[self.splits == TRAIN], minlength=self.num_items)


def load_catalog(name: str, data_dir: str | None = None, manual_dir: str | None = None,
                 build: bool = True) -> Catalog:
  """Builds (if needed and `build`) and reads a dataset.

  Args:
    name: a user-facing dataset name (see `known_dataset_names`).
    data_dir: where TFDS keeps built datasets (TFDS's default when None).
    manual_dir: where the user's downloaded source files are.
    build: build the dataset when it is not there yet.
  """
  builder = get_builder(name, data_dir)
  data_path = epath.Path(builder.data_path)
  _report_leftovers(data_path)
  problem = incomplete_build(builder)
  if problem and not build:
    raise IncompleteDatasetError(
        f"the built dataset {name!r} in {data_path} is incomplete ({problem}): a build or a "
        "copy was cut short. Build it again: delete that folder, or run any command that "
        "reads it (e.g. --experiment=dataset), which rebuilds it.")
  if build and (problem or not builder.is_prepared()):
    with _build_lock(name, data_path):
      builder = get_builder(name, data_dir)  # Another process may have built it meanwhile.
      problem = incomplete_build(builder)
      if problem or not builder.is_prepared():
        _build(builder, name, manual_dir, problem)
        builder = get_builder(name, data_dir)  # Reads the new build's info.
  elif not builder.is_prepared():
    raise FileNotFoundError(
        f"dataset {name!r} is not built in {builder.data_dir_root}; build it first "
        "(any command that reads it builds it, or `--experiment=dataset`).")
  dataset = builder.as_dataset(
      split=records.CATALOG_SPLIT, shuffle_files=False,
      decoders={"image": tfds.decode.SkipDecoding()})
  arrays = records.read_catalog_arrays(dataset)
  try:
    metadata = builder.info.metadata or {}  # Read from metadata.json on first use.
  except ValueError as e:
    raise _damaged(name, builder.data_path, e) from None
  catalog = Catalog(
      name=f"{builder.name}/{builder.builder_config.name}",
      num_users=int(arrays["users"].max(initial=-1)) + 1,
      num_items=len(arrays["source_ids"]),
      category_names=tuple(builder.info.features["category"].names),
      item_category=arrays["categories"],
      source_ids=arrays["source_ids"],
      jpegs=arrays["jpegs"],
      users=arrays["users"],
      items=arrays["items"],
      splits=arrays["splits"],
      statistics=json.loads(json.dumps(dict(metadata.get("statistics", {})))),
      data_path=str(builder.data_path),
  )
  return catalog


def _build(builder: tfds.core.DatasetBuilder, name: str, manual_dir: str | None,
           problem: str | None) -> None:
  """Builds the dataset; `problem` (what `incomplete_build` found) replaces a damaged one."""
  mode = tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
  if problem:
    logging.warning("the built dataset %r in %s is incomplete (%s): a build or a copy was cut "
                    "short; building it again.", name, builder.data_path, problem)
    mode = tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS  # Replaces the dataset folder.
  logging.info("building the dataset %r in %s", name, builder.data_path)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir,
                                                   download_mode=mode))


# How often a process waiting for another's build of the same dataset tries the lock again,
# and how often it says it is still waiting.
BUILD_LOCK_POLL_SECONDS = 1.0
BUILD_LOCK_REPORT_SECONDS = 60.0


def _build_lock(name: str, data_path: epath.Path) -> workdir_lib.WorkdirLock:
  """The lock of the dataset's config folder, waiting while another live process builds it.

  Raises:
    errors.WriteError: the lock file cannot be written (a read-only --data_dir).
  """
  root = pathlib.Path(str(data_path)).parent
  waited, reported = 0.0, -BUILD_LOCK_REPORT_SECONDS
  while True:
    try:
      return workdir_lib.WorkdirLock.acquire(
          root, after_takeover="its unfinished build is never read; building again")
    except workdir_lib.WorkdirBusyError:
      if waited - reported >= BUILD_LOCK_REPORT_SECONDS:
        holder = workdir_lib.holder_of(root)
        logging.warning(
            "another process (pid %s on host %s, since %s) is building the dataset %r in %s: "
            "waiting for it to finish (%.0f s so far)", holder.get("pid", "?"),
            holder.get("host", "?"), holder.get("since", "?"), name, root, waited)
        reported = waited
      time.sleep(BUILD_LOCK_POLL_SECONDS)
      waited += BUILD_LOCK_POLL_SECONDS


def incomplete_build(builder: tfds.core.DatasetBuilder) -> str | None:
  """What is wrong with a built dataset's folder; None when it is whole or not there at all.

  Checks what TFDS would otherwise fail on with a traceback: `dataset_info.json` present and
  readable, and each split's shard files present, as many as recorded, and holding at least
  the recorded number of bytes.
  """
  path = epath.Path(builder.data_path)
  if not path.exists():
    return None
  info_path = path / "dataset_info.json"
  if not info_path.exists():
    return "no dataset_info.json"
  try:
    info = json.loads(info_path.read_text())
  except (OSError, ValueError) as e:
    return f"dataset_info.json does not read ({type(e).__name__})"
  splits = info.get("splits") or []
  if not splits:
    return "dataset_info.json records no split"
  for split in splits:
    name = split.get("name", "?")
    shards = sorted(path.glob(f"{builder.name}-{name}.*"))
    expected = len(split.get("shardLengths") or [])
    if len(shards) != expected:
      return f"split {name!r} has {len(shards)} of its {expected} shard files"
    size = sum(shard.stat().length for shard in shards)
    if size < int(split.get("numBytes") or 0):
      return (f"split {name!r} holds {size} bytes, fewer than the {split['numBytes']} "
              "recorded: a shard is truncated")
  return None


def _report_leftovers(data_path: epath.Path) -> None:
  """Logs the `incomplete.*` folders that killed TFDS builds left beside `data_path`."""
  parent = data_path.parent
  if not parent.exists():
    return
  leftovers = [p for p in parent.iterdir() if p.name.startswith("incomplete.")]
  if leftovers:
    logging.warning("%d leftover(s) of interrupted dataset builds in %s (never read; delete "
                    "them to free the space): %s", len(leftovers), parent,
                    ", ".join(p.name for p in leftovers))
