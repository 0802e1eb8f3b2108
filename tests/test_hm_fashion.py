"""hm_fashion: the Kaggle layout, every messy case, a hand-worked build counted exactly."""

import json
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from dvbpr_tf_datasets.common import errors
from dvbpr_tf_datasets.common import feedback_catalog
from dvbpr_tf_datasets.common import interactions
from dvbpr_tf_datasets.common import records
from dvbpr_tf_datasets.hm_fashion import hm_fashion_dataset_builder as hm
from tests import feedback_files


def a(i: int) -> str:
  """Article id i in Kaggle's form: 10 digits, a leading zero."""
  return f"01{i:08d}"


# The hand-worked case. Transactions' columns are in another order than Kaggle's.
TRANSACTION_HEADER = ("article_id", "price", "customer_id", "sales_channel_id", "t_dat")
TRANSACTIONS = [
    # c1: a0..a4, a0 again (counts once), a8 (truncated image) -> 5 left, kept.
    (a(0), "0.01", "c1", "1", "2020-09-01"),
    (a(1), "0.01", "c1", "1", "2020-09-02"),
    (a(2), "0.01", "c1", "1", "2020-09-03"),
    (a(3), "0.01", "c1", "1", "2020-09-04"),
    (a(4), "0.01", "c1", "1", "2020-09-05"),
    (a(0), "0.01", "c1", "2", "2020-09-10"),
    (a(8), "0.01", "c1", "1", "2020-09-06"),
    # c2: a5 has no image -> 4 left: dropped in the first user filter.
    (a(0), "0.02", "c2", "1", "2020-09-01"),
    (a(1), "0.02", "c2", "1", "2020-09-01"),
    (a(2), "0.02", "c2", "1", "2020-09-01"),
    (a(3), "0.02", "c2", "1", "2020-09-01"),
    (a(5), "0.02", "c2", "1", "2020-09-01"),
    # c3: a6 is a zero-byte image -> a1 a2 a3 a4 a7 left, kept; a7 has no articles.csv row.
    # a3 lost its leading zero (written as a number) and is padded back.
    (a(1), "0.03", "c3", "2", "2020-09-01"),
    (a(2), "0.03", "c3", "2", "2020-09-02"),
    ("100000003", "0.03", "c3", "2", "2020-09-02"),  # Same day as a2, a later row.
    (a(4), "0.03", "c3", "2", "2020-09-03"),
    (a(6), "0.03", "c3", "2", "2020-09-09"),
    (a(7), "0.03", "c3", "2", "2020-09-03"),  # Same day as a4, a later row: c3's test item.
    # c4: 3 articles -> dropped; a9 is bought by c4 only, so it leaves the catalog.
    (a(0), "0.04", "c4", "1", "2020-09-01"),
    (a(1), "0.04", "c4", "1", "2020-09-01"),
    (a(9), "0.04", "c4", "1", "2020-09-01"),
]
MALFORMED = [
    (a(1), "0.05", "c1", "1"),  # 4 fields.
    (a(2), "0.05", "", "1", "2020-09-01"),  # Empty customer_id.
]
ARTICLE_HEADER = ("prod_name", "product_group_name", "index_name", "article_id", "detail_desc")
ARTICLES = [
    ("Tee", "Garment Upper body", "Ladieswear", a(0), "Jersey, soft,\nlong"),
    ("Sneaker", "Shoes", "Menswear", a(1), ""),
    ("Top", "Garment Upper body", "Ladieswear", a(2), "a \"quoted\" word"),
    ("Jeans", "Garment Lower body", "Divided", a(3), ""),
    ("Scarf", "", "Ladieswear", a(4), "no product group"),
    ("Sock", "Socks & Tights", "Menswear", a(5), ""),
    ("Cap", "Accessories", "Menswear", a(6), ""),
    ("Belt", "Accessories", "Menswear", a(8), ""),
    ("Bag", "Accessories", "Menswear", a(9), ""),
    ("Tee again", "Shoes", "Ladieswear", a(0), "a duplicate row: ignored"),
]
IMAGE_KINDS = {0: "rgb", 1: "cmyk", 2: "png_rgba", 3: "gray", 4: "rgb", 6: "empty", 7: "gray",
               8: "truncated", 9: "rgb"}  # a5: no image.


def write_layout(root: pathlib.Path, transactions=None, transaction_header=TRANSACTION_HEADER,
                 articles=None, article_header=ARTICLE_HEADER, image_kinds=None):
  feedback_files.write_csv(root / "transactions_train.csv", transaction_header,
                           TRANSACTIONS + MALFORMED if transactions is None else transactions)
  feedback_files.write_csv(root / "articles.csv", article_header,
                           ARTICLES if articles is None else articles)
  for i, kind in (IMAGE_KINDS if image_kinds is None else image_kinds).items():
    path = root / "images" / a(i)[:3] / f"{a(i)}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(feedback_files.image_bytes(i, kind))
  return root


def config(split_method="random", image_size=16, sample_fraction=1.0):
  return feedback_catalog.FeedbackConfig(name="test", split_method=split_method,
                                         image_size=image_size, sample_fraction=sample_fraction)


@pytest.fixture(scope="module")
def worked(tmp_path_factory):
  root = write_layout(tmp_path_factory.mktemp("hm"))
  return hm.build_catalog(root, config()), hm.build_catalog(root, config("time"))


def test_hand_worked_counts(worked):
  catalog, _ = worked
  stats = catalog.statistics
  # Kept: c1 (a0..a4) and c3 (a1 a2 a3 a4 a7): 2 users, 6 articles, 10 interactions.
  assert (stats["num_users"], stats["num_items"], stats["num_interactions"]) == (2, 6, 10)
  assert (stats["num_train"], stats["num_validation"], stats["num_test"]) == (6, 2, 2)
  assert stats["dropped"] == {
      "malformed_rows": 2,
      "duplicate_interactions": 1,  # c1 bought a0 twice.
      "items_without_image": 1,  # a5.
      "undecodable_images": 2,  # a6 (zero bytes), a8 (truncated).
      "interactions_of_dropped_items": 3,  # c2-a5, c3-a6, c1-a8.
      "users_below_5_items": 2,  # c2 (4 once a5 is gone), c4 (3).
      "interactions_of_users_below_5_items": 7,
      "items_whose_users_were_all_dropped": 1,  # a9.
      "articles_without_metadata": 1,  # a7: kept, category unknown.
      "items_with_empty_category": 1,  # a4: kept, category unknown.
      "duplicate_article_rows": 1,
  }
  assert stats["transactions_rows"] == 21 and stats["article_ids_zero_padded"] == 1
  assert stats["articles_rows"] == 10
  # Observations per item: a0 1, a1 2, a2 2, a3 2, a4 2, a7 1.
  assert stats["observations_per_item_mean"] == pytest.approx(10 / 6)
  assert stats["items_per_category"] == {"Garment Lower body": 1, "Garment Upper body": 2,
                                         "Shoes": 1, "unknown": 2}
  json.dumps(stats)  # Storable in metadata.json.


def test_ids_are_text_with_their_leading_zero(worked):
  catalog, _ = worked
  assert catalog.source_ids == [a(0), a(1), a(2), a(3), a(4), a(7)]
  assert catalog.user_source_ids == ["c1", "c3"]
  names = catalog.category_names
  assert [names[c] for c in catalog.categories] == [
      "Garment Upper body", "Shoes", "Garment Upper body", "Garment Lower body", "unknown",
      "unknown"]


def test_images_are_rgb_jpegs_of_the_config_size(worked):
  catalog, _ = worked
  for jpeg in catalog.jpegs:
    image = feedback_files.decode(jpeg)
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (16, 16))
  # a2 is a fully transparent PNG saved as .jpg: composited onto white.
  white = np.asarray(feedback_files.decode(catalog.jpegs[2]), np.int64)
  assert white.min() > 240


def test_random_split_is_leave_one_out(worked):
  catalog, _ = worked
  for code in (records.VALIDATION, records.TEST):
    assert np.bincount(catalog.users[catalog.splits == code], minlength=2).tolist() == [1, 1]


def test_time_split_puts_the_latest_new_article_in_test(worked):
  _, timed = worked
  held = {(timed.user_source_ids[u], timed.source_ids[i], int(s))
          for u, i, s in zip(timed.users, timed.items, timed.splits) if s != records.TRAIN}
  # c1's a0 was bought again on 09-10, but a repeat is not a new article: a4 (09-05) is
  # the test item. c3: a7 and a4 share 09-03, a7's row is later; a3 and a2 share 09-02.
  assert held == {("c1", a(4), records.TEST), ("c1", a(3), records.VALIDATION),
                  ("c3", a(7), records.TEST), ("c3", a(4), records.VALIDATION)}
  assert timed.statistics["split_method"] == "time"


def test_warnings_name_the_bad_ids(tmp_path, caplog):
  root = write_layout(tmp_path)
  with caplog.at_level("WARNING"):
    hm.build_catalog(root, config())
  text = caplog.text
  for expected in ("items_without_image = 1", a(5), "undecodable_images = 2", a(6), a(8),
                   "users_below_5_items = 2", "c2", "c4", "articles_without_metadata = 1",
                   a(7), "malformed_rows = 2", "line 23", "empty customer_id",
                   "padded to 10 digits"):
    assert expected in text, expected


def test_sample_keeps_the_customers_whose_hash_is_below_the_fraction(tmp_path):
  customers = [f"{n:064x}" for n in range(400)]
  kept = [c for c in customers if interactions.in_sample(c, 0.1)]
  assert 10 < len(kept) < 80
  rows = [(a(i), "0.01", c, "1", "2020-09-01") for c in customers for i in range(5)]
  root = write_layout(tmp_path, transactions=rows,
                      image_kinds={i: "rgb" for i in range(5)})
  catalog = hm.build_catalog(root, config(sample_fraction=0.1))
  assert catalog.user_source_ids == sorted(kept)
  assert catalog.statistics["transactions_rows"] == 2000
  assert catalog.statistics["transactions_rows_sampled"] == 5 * len(kept)


def test_kaggle_column_order_and_bad_dates(tmp_path):
  header = ("t_dat", "customer_id", "article_id", "price", "sales_channel_id")
  rows = [("2020-09-0" + str(i + 1), "c1", a(i), "0.01", "1") for i in range(5)]
  rows.append(("yesterday", "c1", a(5), "0.01", "1"))
  root = write_layout(tmp_path, transactions=rows, transaction_header=header,
                      image_kinds={i: "rgb" for i in range(6)})
  timed = hm.build_catalog(root, config("time"))
  assert timed.statistics["dropped"]["malformed_rows"] == 1
  assert timed.source_ids == [a(i) for i in range(5)]
  test_item = timed.items[timed.splits == records.TEST]
  assert [timed.source_ids[i] for i in test_item] == [a(4)]
  # The random split does not read t_dat at all.
  assert hm.build_catalog(root, config()).statistics["dropped"]["malformed_rows"] == 0


def test_missing_column_names_the_file_the_column_and_the_columns_found(tmp_path):
  root = write_layout(tmp_path, transaction_header=("article", "price", "customer_id",
                                                    "sales_channel_id", "t_dat"))
  with pytest.raises(errors.DatasetError) as e:
    hm.build_catalog(root, config())
  message = str(e.value)
  assert "transactions_train.csv" in message and "'article_id'" in message
  assert "'article'" in message and "'customer_id'" in message  # The columns found.


def test_missing_category_column(tmp_path):
  root = write_layout(tmp_path, article_header=("prod_name", "product_type_name", "index_name",
                                                "article_id", "detail_desc"))
  with pytest.raises(errors.DatasetError, match="articles.csv has no column "
                                                "'product_group_name'"):
    hm.build_catalog(root, config())


@pytest.mark.parametrize("remove", ["transactions_train.csv", "articles.csv", "images"])
def test_missing_required_file(tmp_path, remove):
  root = write_layout(tmp_path)
  target = root / remove
  if target.is_dir():
    for path in sorted(target.rglob("*"), reverse=True):
      path.unlink() if path.is_file() else path.rmdir()
    target.rmdir()
  else:
    target.unlink()
  with pytest.raises(errors.DatasetError, match=remove):
    hm.build_catalog(root, config())


def test_nothing_left_is_a_clear_error(tmp_path):
  rows = [(a(i), "0.01", "c1", "1", "2020-09-01") for i in range(4)]
  root = write_layout(tmp_path, transactions=rows)
  with pytest.raises(errors.DatasetError, match="no user is left with at least 5"):
    hm.build_catalog(root, config())


def test_tfds_build_stores_statistics_and_user_ids(tmp_path):
  manual = write_layout(tmp_path / "manual")
  builder = hm.Builder(config="full", data_dir=str(tmp_path / "data"))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  stats = builder.info.metadata["statistics"]
  assert stats["num_items"] == 6 and stats["dropped"]["undecodable_images"] == 2
  assert builder.info.metadata["dropped_examples"]["items_without_image"] == [a(5)]
  assert list(builder.info.features["category"].names)[-1] == "unknown"
  ids = (pathlib.Path(builder.data_path) / "user_source_ids.txt").read_text().split()
  assert ids == ["c1", "c3"]
  example = next(iter(builder.as_dataset(split="catalog").take(1)))
  assert example["source_id"].numpy().decode() == a(0)
  assert tuple(example["image"].shape) == (224, 224, 3)


def test_tfds_build_without_the_files_says_what_is_expected(tmp_path):
  manual = tmp_path / "manual"
  feedback_files.write_csv(manual / "articles.csv", ARTICLE_HEADER, ARTICLES)
  builder = hm.Builder(config="full", data_dir=str(tmp_path / "data"))
  with pytest.raises(errors.DatasetError) as e:
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  assert str(manual / "transactions_train.csv") in str(e.value)
  assert str(manual / "images") in str(e.value)
  assert "kaggle" in str(e.value).lower()
