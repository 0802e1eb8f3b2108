"""fashion_catalog: the README's worked example, messy images and rows, clear errors."""

import pathlib
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from dvbpr_tf_datasets.common import errors
from dvbpr_tf_datasets.common import feedback_catalog
from dvbpr_tf_datasets.common import records
from dvbpr_tf_datasets.fashion_catalog import fashion_catalog_dataset_builder as fc
from tests import feedback_files
from tests.conftest import REPO

README = REPO / "datasets" / "fashion_catalog" / "README.md"


def config(split_method="random", image_size=16):
  return feedback_catalog.FeedbackConfig(name="test", split_method=split_method,
                                         image_size=image_size)


def write_readme_example(root: pathlib.Path) -> pathlib.Path:
  """The worked example of README.md, its CSV text taken from the README itself."""
  interactions_csv, categories_csv = re.findall(r"```csv\n(.*?)```", README.read_text(),
                                                re.S)
  (root / "images").mkdir(parents=True)
  (root / "interactions.csv").write_text(interactions_csv)
  (root / "categories.csv").write_text(categories_csv)
  for n in range(42, 49):
    (root / "images" / f"00{n}.jpg").write_bytes(feedback_files.image_bytes(n))
  (root / "images" / "0049.png").write_bytes(feedback_files.image_bytes(49, "png"))
  return root


def test_the_readme_example_builds_as_the_readme_says(tmp_path):
  root = write_readme_example(tmp_path)
  catalog = fc.build_catalog(root, config())
  stats = catalog.statistics
  assert (stats["num_users"], stats["num_items"], stats["num_interactions"]) == (2, 8, 10)
  assert catalog.user_source_ids == ["ana", "ben"]
  assert catalog.source_ids == [f"00{n}" for n in range(42, 50)]
  assert catalog.category_names == ["dresses", "shoes", "tops", "unknown"]
  dropped = {k: v for k, v in stats["dropped"].items() if v}
  assert dropped == {"duplicate_interactions": 1, "items_without_image": 1,
                     "interactions_of_dropped_items": 1, "users_below_5_items": 2,
                     "interactions_of_users_below_5_items": 6, "items_without_category": 1}

  timed = fc.build_catalog(root, config("time"))
  held = {(timed.user_source_ids[u], timed.source_ids[i], int(s))
          for u, i, s in zip(timed.users, timed.items, timed.splits) if s != records.TRAIN}
  assert held == {("ana", "0046", records.TEST), ("ana", "0045", records.VALIDATION),
                  ("ben", "0049", records.TEST), ("ben", "0048", records.VALIDATION)}


def _messy(root: pathlib.Path, header=("user_id", "item_id", "timestamp")) -> pathlib.Path:
  """u1 and u2 with 5-6 items each over every awkward image kind; see the comments."""
  kinds = {"007": "rgb", "008": "gray", "009": "cmyk", "010": "png_rgba", "011": "png",
           "012": "truncated", "013": "empty", "014": "text", "015": "rgb"}
  for item, kind in kinds.items():
    ext = ".png" if kind.startswith("png") or kind == "text" else ".jpg"
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "images" / f"{item}{ext}").write_bytes(feedback_files.image_bytes(int(item), kind))
  (root / "images" / "015.PNG").write_bytes(feedback_files.image_bytes(1, "png"))  # Duplicate.
  (root / "images" / "notes.txt").write_text("ignored")
  rows = []
  for n, item in enumerate(["007", "008", "009", "010", "011", "012"]):  # 012 truncated.
    rows.append({"user_id": "u1", "item_id": item, "timestamp": str(1000 + n)})
  for n, item in enumerate(["007", "008", "013", "014", "015", "016"]):  # 3 bad: 3 left.
    rows.append({"user_id": "u2", "item_id": item, "timestamp": str(2000 + n)})
  for n, item in enumerate(["007", "009", "010", "011", "015"]):
    rows.append({"user_id": "u3", "item_id": item, "timestamp": str(3000 + n)})
  feedback_files.write_csv(root / "interactions.csv", header,
                           [[row[h] for h in header] for row in rows])
  with open(root / "interactions.csv", "a") as f:
    f.write("u1,007\n")  # A missing field.
    f.write(",008,5\n" if header[0] == "user_id" else "5,008,\n")  # An empty user_id.
  return root


@pytest.mark.parametrize("header", [("user_id", "item_id", "timestamp"),
                                    ("timestamp", "item_id", "user_id")])
def test_messy_images_and_rows(tmp_path, header):
  catalog = fc.build_catalog(_messy(tmp_path, header), config())
  stats = catalog.statistics
  assert catalog.user_source_ids == ["u1", "u3"]
  assert catalog.source_ids == ["007", "008", "009", "010", "011", "015"]
  dropped = {k: v for k, v in stats["dropped"].items() if v}
  assert dropped == {
      "malformed_rows": 2,
      "items_without_image": 1,  # 016.
      "undecodable_images": 3,  # 012 truncated, 013 empty, 014 not an image.
      "interactions_of_dropped_items": 4,  # u2-016, u1-012, u2-013, u2-014.
      "users_below_5_items": 1,  # u2: 3 left once the images are read.
      "interactions_of_users_below_5_items": 3,
      "duplicate_image_files": 1,  # 015.PNG beside 015.jpg.
  }
  assert stats["other_files_in_images_folder"] == 1
  assert stats["categories_file"] is False
  assert catalog.category_names == ["unknown"]
  for jpeg in catalog.jpegs:
    image = feedback_files.decode(jpeg)
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (16, 16))
  # 015 is the .jpg (preferred), not the .PNG drawn with another seed.
  expected = feedback_files.decode(feedback_files.image_bytes(15, "rgb")).resize((16, 16))
  got = np.asarray(feedback_files.decode(catalog.jpegs[5]), np.float64)
  assert np.abs(got - np.asarray(expected.convert("RGB"), np.float64)).mean() < 12


def test_original_size_keeps_rgb_jpegs_byte_for_byte(tmp_path):
  root = _messy(tmp_path)
  catalog = fc.build_catalog(root, config(image_size=None))
  assert catalog.jpegs[0] == (root / "images" / "007.jpg").read_bytes()
  assert feedback_files.decode(catalog.jpegs[1]).mode == "RGB"  # 008 was grayscale.


def test_time_split_needs_a_timestamp_column(tmp_path):
  root = _messy(tmp_path, header=("user_id", "item_id", "timestamp"))
  feedback_files.write_csv(root / "interactions.csv", ("user_id", "item_id"),
                           [("u1", f"{n:03d}") for n in range(7, 12)])
  with pytest.raises(errors.DatasetError, match="no column 'timestamp'.*time split"):
    fc.build_catalog(root, config("time"))
  assert fc.build_catalog(root, config()).statistics["num_users"] == 1


def test_categories_file_rows(tmp_path):
  root = _messy(tmp_path)
  feedback_files.write_csv(root / "categories.csv", ("category", "item_id"), [
      ("tops", "007"), ("shoes", "008"), ("", "009"), ("bags", "007"), ("tops", "999")])
  catalog = fc.build_catalog(root, config())
  names = [catalog.category_names[c] for c in catalog.categories]
  assert names == ["tops", "shoes", "unknown", "unknown", "unknown", "unknown"]
  dropped = catalog.statistics["dropped"]
  assert dropped["items_with_empty_category"] == 1  # 009.
  assert dropped["items_without_category"] == 3  # 010, 011, 015.
  assert dropped["duplicate_category_rows"] == 1  # The second 007.


@pytest.mark.parametrize("remove, message", [("interactions.csv", "interactions.csv"),
                                             ("images", "images folder")])
def test_missing_required_file(tmp_path, remove, message):
  root = _messy(tmp_path)
  target = root / remove
  if target.is_dir():
    for path in target.iterdir():
      path.unlink()
    target.rmdir()
  else:
    target.unlink()
  with pytest.raises(errors.DatasetError, match=message):
    fc.build_catalog(root, config())


def test_missing_column(tmp_path):
  root = _messy(tmp_path)
  feedback_files.write_csv(root / "interactions.csv", ("customer", "item_id"), [("u1", "007")])
  with pytest.raises(errors.DatasetError,
                     match=r"has no column 'user_id'; the columns found are 'customer', "
                           r"'item_id'"):
    fc.build_catalog(root, config())


def test_tfds_build_of_an_empty_manual_dir_lists_the_expected_files(tmp_path):
  (tmp_path / "manual").mkdir()
  builder = fc.Builder(config="default", data_dir=str(tmp_path / "data"))
  with pytest.raises(errors.DatasetError) as e:
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "manual")))
  for name in ("interactions.csv", "images"):
    assert str(tmp_path / "manual" / name) in str(e.value)
