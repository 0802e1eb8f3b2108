"""fashion_catalog: anyone's implicit feedback with product images, as a TFDS catalog.

The generic form of `hm_fashion`. The manual directory holds:

- `interactions.csv`: `user_id,item_id[,timestamp]` (columns in any order, other columns
  ignored), one row per purchase, click or review;
- `images/`: one image per item, named `<item_id>.jpg` or `<item_id>.png` (`.jpeg` and
  upper-case extensions accepted);
- `categories.csv` (optional): `item_id,category`.

The same rules as `hm_fashion` apply (`dvbpr_tf_datasets.common.feedback_catalog`): a pair
counts once, items without a usable image are dropped with their interactions, users with
fewer than 5 distinct items are dropped, items without a category are `unknown`. README.md
beside this file has a worked example.
"""

from __future__ import annotations

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from dvbpr_tf_datasets.common import csv_tables
from dvbpr_tf_datasets.common import drops as drops_lib
from dvbpr_tf_datasets.common import errors
from dvbpr_tf_datasets.common import feedback_catalog
from dvbpr_tf_datasets.common import interactions

INTERACTIONS_FILE = "interactions.csv"
CATEGORIES_FILE = "categories.csv"
IMAGES_DIR = "images"
# Image extensions looked for, in order of preference when an item has several files.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put your data in the manual directory (`--manual_dir`, by default
`<data_dir>/downloads/manual/`):

  interactions.csv   header user_id,item_id[,timestamp]; one row per interaction
                     (timestamp: Unix seconds or ISO 8601; needed by the `time` configs)
  images/            <item_id>.jpg or <item_id>.png, one per item
  categories.csv     optional; header item_id,category

Ids are text (leading zeros are kept). See datasets/fashion_catalog/README.md.
"""


def _configs() -> list[feedback_catalog.FeedbackConfig]:
  configs = []
  for name, size, what in (
      ("default", 64, "images at 64x64 (CPU runs)"),
      ("size224", 224, "images at 224x224 (the paper's input size)"),
      ("original", None, "images at their own size (RGB JPEGs kept byte for byte)"),
  ):
    configs.append(feedback_catalog.FeedbackConfig(
        name=name, image_size=size, split_method="random",
        description=f"{what}; the paper's random leave-one-out split."))
    configs.append(feedback_catalog.FeedbackConfig(
        name="time" if name == "default" else f"{name}_time", image_size=size,
        split_method="time",
        description=f"{what}; time split: each user's latest new item is the test item, the "
                    "one before the validation item (needs a timestamp column)."))
  return configs


class Builder(feedback_catalog.FeedbackBuilder):
  """Your own interactions and product images (see README.md)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = _configs()
  DEFAULT_CONFIG_NAME = "default"
  # `dvbpr_tf_datasets` is a namespace package (see setup.py), from which TFDS cannot infer
  # these two paths by itself.
  pkg_dir_path = epath.Path(__file__).parent
  code_path = epath.Path(__file__)
  REQUIRED_FILES = (INTERACTIONS_FILE, IMAGES_DIR)

  def build_catalog(self, root: epath.Path, name: str) -> feedback_catalog.FeedbackCatalog:
    return build_catalog(root, self.builder_config, name=name)


def build_catalog(root: epath.PathLike, config: feedback_catalog.FeedbackConfig,
                  name: str = "fashion_catalog") -> feedback_catalog.FeedbackCatalog:
  """Reads the layout of the module docstring under `root` into a catalog.

  Args:
    root: the folder holding interactions.csv, images/ and optionally categories.csv.
    config: split, image size (and sample fraction, 1.0 in every predefined config).
    name: for messages.

  Raises:
    DatasetError: a required file or column is missing (a time split without a `timestamp`
      column included), or nothing is left after filtering.
  """
  root = epath.Path(root)
  interactions_path = csv_tables.require_file(root / INTERACTIONS_FILE)
  images_dir = csv_tables.require_file(root / IMAGES_DIR, "images folder")
  drops = drops_lib.DropLog(name)
  log, counts = read_interactions(interactions_path, config, drops)
  image_files, image_counts = list_images(images_dir, drops)
  counts.update(image_counts)
  categories_path = root / CATEGORIES_FILE
  if categories_path.exists():
    categories = read_categories(categories_path, set(log.item_names), drops)
    counts["categories_file"] = True
  else:
    logging.info("%s: no %s; every item gets the category '%s'.", name, CATEGORIES_FILE,
                 feedback_catalog.UNKNOWN_CATEGORY)
    categories = {item: feedback_catalog.UNKNOWN_CATEGORY for item in log.item_names}
    counts["categories_file"] = False
  return feedback_catalog.build_catalog(
      log, image_path=image_files.get, images_root=images_dir,
      categories=categories,
      missing_category_reason="items_without_category", config=config, drops=drops,
      extra_statistics=counts)


def read_interactions(path: epath.Path, config: feedback_catalog.FeedbackConfig,
                      drops: drops_lib.DropLog) -> tuple[interactions.InteractionLog, dict]:
  """Streams `interactions.csv` into an InteractionLog.

  Returns:
    The log and counts: `interaction_rows` (well-formed rows), `interaction_rows_sampled`,
    `sample_fraction`.

  Raises:
    DatasetError: a required column is missing (`timestamp` for a time split).
  """
  with_time = config.split_method == "time"
  header = csv_tables.read_header(path)
  if with_time and "timestamp" not in {h.lower() for h in header}:
    raise errors.DatasetError(
        f"{path} has no column 'timestamp' (columns found: {', '.join(header)}), which the "
        f"time split of config {config.name!r} needs. Add a timestamp column (Unix seconds or "
        "ISO 8601 dates), or use a config with the random split (default).")
  columns = ("user_id", "item_id") + (("timestamp",) if with_time else ())
  parse_time = interactions.TimestampParser()
  fraction = config.sample_fraction
  log = interactions.InteractionLog()
  rows = sampled = 0
  for line, values in csv_tables.iter_rows(path, columns, drops=drops):
    rows += 1
    if fraction < 1.0 and not interactions.in_sample(values[0], fraction):
      continue
    time = 0.0
    if with_time:
      try:
        time = parse_time(values[2])
      except ValueError:
        drops.add(csv_tables.MALFORMED_ROWS, 1,
                  [f"{path.name} line {line} (timestamp {values[2]!r} is not a number or an "
                   "ISO 8601 date)"])
        continue
    sampled += 1
    log.add(values[0], values[1], time)
  return log, {"sample_fraction": fraction, "interaction_rows": rows,
               "interaction_rows_sampled": sampled}


def list_images(images_dir: epath.Path,
                drops: drops_lib.DropLog) -> tuple[dict[str, epath.Path], dict]:
  """item id -> image file, from one listing of the folder.

  An item with several files (`a.jpg` and `a.png`) uses the first of IMAGE_EXTENSIONS; the
  others are counted under `duplicate_image_files`.

  Returns:
    The mapping and counts: `image_files`, `other_files_in_images_folder` (other extensions,
    folders; ignored).
  """
  drops.declare("duplicate_image_files",
                "image files ignored: the item has a file of a preferred extension")
  rank = {ext: r for r, ext in enumerate(IMAGE_EXTENSIONS)}
  found: dict[str, tuple[int, epath.Path]] = {}
  others = files = 0
  for path in sorted(images_dir.iterdir(), key=lambda p: p.name):
    suffix = path.suffix.lower()
    if suffix not in rank or path.is_dir():
      others += 1
      continue
    files += 1
    item = path.name[:-len(suffix)]
    if item in found:
      kept = found[item]
      if rank[suffix] < kept[0]:
        found[item] = (rank[suffix], path)
        path = kept[1]
      drops.add("duplicate_image_files", 1, [path.name])
    else:
      found[item] = (rank[suffix], path)
  return {item: path for item, (_, path) in found.items()}, {
      "image_files": files, "other_files_in_images_folder": others}


def read_categories(path: epath.Path, wanted: set[str],
                    drops: drops_lib.DropLog) -> dict[str, str]:
  """item id -> category for the `wanted` items (first row wins)."""
  drops.declare("duplicate_category_rows",
                "rows of categories.csv ignored: the item id appeared on an earlier row")
  categories: dict[str, str] = {}
  seen: set[str] = set()
  for line, (item, category) in csv_tables.iter_rows(
      path, ("item_id", "category"), nonempty=("item_id",), drops=drops):
    if item in seen:
      drops.add("duplicate_category_rows", 1, [f"{item} ({path.name} line {line})"])
      continue
    seen.add(item)
    if item in wanted:
      categories[item] = category
  return categories
