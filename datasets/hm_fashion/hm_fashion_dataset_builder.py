"""H&M Personalized Fashion Recommendations (Kaggle, 2022) as a TFDS catalog.

Reads the competition's files from the manual directory: `transactions_train.csv` (about 31
million purchases), `articles.csv` (one row per article) and `images/`. A purchase is implicit
feedback; repeated purchases of an article by a customer count once; customers with fewer than
5 distinct articles are dropped (the paper's rule); the category is `product_group_name`.
The transactions are streamed row by row; a config can keep a stable-hash subsample of the
customers so that a CPU can train on the result. The shared rules (what is dropped and why)
are in `dvbpr_tf_datasets.common.feedback_catalog`; README.md beside this file describes the
layout and the configs.
"""

from __future__ import annotations

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from dvbpr_tf_datasets.common import csv_tables
from dvbpr_tf_datasets.common import drops as drops_lib
from dvbpr_tf_datasets.common import feedback_catalog
from dvbpr_tf_datasets.common import interactions

TRANSACTIONS_FILE = "transactions_train.csv"
ARTICLES_FILE = "articles.csv"
IMAGES_DIR = "images"
ARTICLE_ID_DIGITS = 10  # Kaggle's article ids are 10 digits with a leading zero.
CATEGORY_COLUMN = "product_group_name"

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download the data of the Kaggle competition "H&M Personalized Fashion Recommendations"
(https://www.kaggle.com/competitions/h-and-m-personalized-fashion-recommendations/data; accept
the competition's rules first, e.g. `kaggle competitions download -c
h-and-m-personalized-fashion-recommendations`), unzip it, and put these in the manual
directory (`--manual_dir`, by default `<data_dir>/downloads/manual/`):

  transactions_train.csv   t_dat, customer_id, article_id, price, sales_channel_id
  articles.csv             article_id, product_group_name, ... (25 columns)
  images/                  images/<first 3 digits of the article id>/<article id>.jpg

customers.csv and sample_submission.csv are not used.
"""


def _configs() -> list[feedback_catalog.FeedbackConfig]:
  configs = []
  for name, fraction, size, what in (
      ("sample_1pct", 0.01, 64, "1% of the customers, images at 64x64 (CPU runs)"),
      ("sample_10pct", 0.10, 64, "10% of the customers, images at 64x64"),
      ("full", 1.0, 224, "every customer, images at 224x224 (the paper's input size; GPU)"),
  ):
    configs.append(feedback_catalog.FeedbackConfig(
        name=name, sample_fraction=fraction, image_size=size, split_method="random",
        description=f"{what}; the paper's random leave-one-out split."))
    configs.append(feedback_catalog.FeedbackConfig(
        name=f"{name}_time", sample_fraction=fraction, image_size=size, split_method="time",
        description=f"{what}; time split: each customer's latest new article is the test "
                    "item, the one before the validation item."))
  return configs


class Builder(feedback_catalog.FeedbackBuilder):
  """H&M purchases with article images and product groups (Kaggle, 2022)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = _configs()
  DEFAULT_CONFIG_NAME = "sample_1pct"
  # `dvbpr_tf_datasets` is a namespace package (see setup.py), from which TFDS cannot infer
  # these two paths by itself.
  pkg_dir_path = epath.Path(__file__).parent
  code_path = epath.Path(__file__)
  REQUIRED_FILES = (TRANSACTIONS_FILE, ARTICLES_FILE, IMAGES_DIR)
  HOMEPAGE = "https://www.kaggle.com/competitions/h-and-m-personalized-fashion-recommendations"

  def build_catalog(self, root: epath.Path, name: str) -> feedback_catalog.FeedbackCatalog:
    return build_catalog(root, self.builder_config, name=name)


def build_catalog(root: epath.PathLike, config: feedback_catalog.FeedbackConfig,
                  name: str = "hm_fashion") -> feedback_catalog.FeedbackCatalog:
  """Reads the Kaggle layout under `root` into a catalog (see the module docstring).

  Args:
    root: the folder holding transactions_train.csv, articles.csv and images/.
    config: sample, split and image size.
    name: for messages.

  Raises:
    DatasetError: a required file or column is missing, or nothing is left after filtering.
  """
  root = epath.Path(root)
  for required in (TRANSACTIONS_FILE, ARTICLES_FILE):
    csv_tables.require_file(root / required)
  images_dir = csv_tables.require_file(root / IMAGES_DIR, "images folder")
  drops = drops_lib.DropLog(name)
  log, counts = read_transactions(root / TRANSACTIONS_FILE, config, drops)
  categories, article_counts = read_articles(root / ARTICLES_FILE, set(log.item_names), drops)
  counts.update(article_counts)
  padded = counts["article_ids_zero_padded"]
  if padded:
    logging.warning("%s: %d article ids had lost their leading zeros (e.g. read as numbers "
                    "by a spreadsheet) and were padded to %d digits.", name, padded,
                    ARTICLE_ID_DIGITS)

  def image_path(article: str) -> epath.Path | None:
    path = images_dir / article[:3] / f"{article}.jpg"
    return path if path.exists() else None

  return feedback_catalog.build_catalog(
      log, image_path=image_path, images_root=images_dir,
      categories=categories,
      missing_category_reason="articles_without_metadata", config=config, drops=drops,
      extra_statistics=counts | {"category_column": CATEGORY_COLUMN})


def normalize_article_id(article: str) -> str:
  """The article id as Kaggle writes it: a purely numeric id shorter than 10 digits lost its
  leading zeros on the way (a spreadsheet, `pd.read_csv` without `dtype=str`) and gets them
  back; any other id is kept as it is."""
  if len(article) < ARTICLE_ID_DIGITS and _is_ascii_digits(article):
    return article.zfill(ARTICLE_ID_DIGITS)
  return article


def valid_article_id(article: str) -> bool:
  """Whether `article` (after `normalize_article_id`) is an H&M id: exactly 10 ASCII digits.
  Anything else (`../x`, `/etc/passwd`, letters) is a malformed row: the id names the image
  file, so it must never be able to name a path outside `images/`."""
  return len(article) == ARTICLE_ID_DIGITS and _is_ascii_digits(article)


def _is_ascii_digits(text: str) -> bool:
  return text.isascii() and text.isdigit()


def read_transactions(path: epath.Path, config: feedback_catalog.FeedbackConfig,
                      drops: drops_lib.DropLog) -> tuple[interactions.InteractionLog, dict]:
  """Streams `transactions_train.csv` into an InteractionLog (sampled customers only).

  Returns:
    The log and counts: `transactions_rows` (well-formed rows), `transactions_rows_sampled`,
    `article_ids_zero_padded`, `sample_fraction`.
  """
  with_time = config.split_method == "time"
  columns = ("customer_id", "article_id") + (("t_dat",) if with_time else ())
  parse_time = interactions.TimestampParser()
  fraction = config.sample_fraction
  in_sample = interactions.in_sample
  log = interactions.InteractionLog()
  rows = sampled = padded = 0
  for line, values in csv_tables.iter_rows(path, columns, drops=drops):
    rows += 1
    customer = values[0]
    if fraction < 1.0 and not in_sample(customer, fraction):
      continue
    article = values[1]
    if len(article) < ARTICLE_ID_DIGITS:
      fixed = normalize_article_id(article)
      padded += fixed != article
      article = fixed
    if not valid_article_id(article):
      drops.add(csv_tables.MALFORMED_ROWS, 1,
                [f"{path.name} line {line} (article_id {article!r} is not 10 digits)"])
      continue
    time = 0.0
    if with_time:
      try:
        time = parse_time(values[2])
      except ValueError:
        drops.add(csv_tables.MALFORMED_ROWS, 1,
                  [f"{path.name} line {line} (t_dat {values[2]!r} is not a date)"])
        continue
    sampled += 1
    log.add(customer, article, time)
  return log, {"sample_fraction": fraction, "transactions_rows": rows,
               "transactions_rows_sampled": sampled, "article_ids_zero_padded": padded}


def read_articles(path: epath.Path, wanted: set[str],
                  drops: drops_lib.DropLog) -> tuple[dict[str, str], dict]:
  """article id -> product_group_name for the `wanted` articles (first row wins).

  Returns:
    The mapping and counts: `articles_rows` (well-formed rows).
  """
  drops.declare("duplicate_article_rows",
                "rows of articles.csv ignored: the article id appeared on an earlier row")
  categories: dict[str, str] = {}
  seen: set[str] = set()
  rows = 0
  for line, (article, group) in csv_tables.iter_rows(
      path, ("article_id", CATEGORY_COLUMN), nonempty=("article_id",), drops=drops):
    rows += 1
    article = normalize_article_id(article)
    if not valid_article_id(article):
      drops.add(csv_tables.MALFORMED_ROWS, 1,
                [f"{path.name} line {line} (article_id {article!r} is not 10 digits)"])
      continue
    if article in seen:
      drops.add("duplicate_article_rows", 1, [f"{article} ({path.name} line {line})"])
      continue
    seen.add(article)
    if article in wanted:
      categories[article] = group
  return categories, {"articles_rows": rows}
