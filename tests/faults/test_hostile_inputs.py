"""Hostile and messy inputs of the shop-data builders and of tailoring's --image: images
that declare too many pixels, high bit depths, EXIF rotations, FIFOs named like images,
names with line breaks, ids that name paths outside the data folder, and a file where a
folder should be. Each is skipped and counted, or refused in one line; never a traceback,
a hang or silently wrong data."""

import csv
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image
import pytest

from dvbpr_tf_datasets.common import errors
from dvbpr_tf_datasets.common import feedback_catalog
from dvbpr_tf_datasets.common import images
from dvbpr_tf_datasets.common import records
from dvbpr_tf_datasets.fashion_catalog import fashion_catalog_dataset_builder as fc
from dvbpr_tf_datasets.hm_fashion import hm_fashion_dataset_builder as hm
from tests import feedback_files
from tests import test_hm_fashion


def _bomb_png(width=30000, height=30000) -> bytes:
  """A valid PNG header that declares width x height grey pixels, with a tiny data chunk."""
  def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
  header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
          + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_refused_before_it_is_decoded():
  for convert in (lambda d: images.to_rgb_jpeg(d, 16), images.decode_rgb):
    with pytest.raises(images.BadImageError, match=r"^the image declares 30000x30000 pixels.*limit"):
      convert(_bomb_png())


def test_the_pixel_limit_is_a_setting():
  small = feedback_files.image_bytes(0, "rgb", size=64)  # 4096 pixels.
  try:
    images.set_max_pixels(4000)
    with pytest.raises(images.BadImageError, match="more than the limit of 4,000"):
      images.to_rgb_jpeg(small, 16)
    images.set_max_pixels(4096)
    assert images.to_rgb_jpeg(small, 16)
  finally:
    images.set_max_pixels(images.DEFAULT_MAX_PIXELS)
  with pytest.raises(ValueError, match="positive integer"):
    images.set_max_pixels(0)


def test_16_bit_pixels_are_scaled_not_clipped():
  ramp = (np.arange(16 * 16, dtype=np.uint32).reshape(16, 16) * 257).astype(np.uint16)
  out = io.BytesIO()
  Image.fromarray(ramp).save(out, "PNG")  # Mode I;16: 0..65535.
  decoded = images.decode_rgb(out.getvalue())
  assert decoded.shape == (16, 16, 3)
  np.testing.assert_array_equal(decoded[..., 0], np.arange(256).reshape(16, 16))
  stored = np.asarray(feedback_files.decode(images.to_rgb_jpeg(out.getvalue(), None)), float)
  assert np.abs(stored[..., 0] - np.arange(256).reshape(16, 16)).max() < 12  # JPEG's loss.


def test_exif_orientation_is_applied():
  pixels = np.zeros((8, 16, 3), np.uint8)  # Wide, a red left half.
  pixels[:, :8] = (255, 0, 0)
  exif = Image.Exif()
  exif[0x0112] = 6  # "Rotate 90 CW to view": the photo is stored on its side.
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, "JPEG", quality=95, exif=exif)
  upright = images.decode_rgb(out.getvalue())
  assert upright.shape == (16, 8, 3)  # Tall once rotated; the red half is now on top.
  assert upright[:6, :, 0].mean() > 200 and upright[-6:, :, 0].mean() < 60
  stored = feedback_files.decode(images.to_rgb_jpeg(out.getvalue(), None))
  assert stored.size == (8, 16)  # (width, height): not the sideways bytes passed through.


def test_only_regular_files_are_read(tmp_path):
  fifo = tmp_path / "x.jpg"
  os.mkfifo(fifo)
  with pytest.raises(OSError, match="not a regular file"):
    images.read_regular_file(fifo)  # Would block forever on a plain open().read().


def _fashion_catalog(root, rows, categories=None):
  (root / "images").mkdir(parents=True)
  for item in sorted({item for _, item in rows}):
    (root / "images" / f"{item}.jpg").write_bytes(feedback_files.image_bytes(len(item)))
  _write_quoted_csv(root / "interactions.csv", ("user_id", "item_id"), rows)
  if categories is not None:
    _write_quoted_csv(root / "categories.csv", ("item_id", "category"), categories)
  return root


def _write_quoted_csv(path, header, rows):
  """Every field quoted: a line break inside a field is then part of the field (what a
  spreadsheet writes), not the end of a row."""
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f, quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    writer.writerows(rows)


def _config():
  return feedback_catalog.FeedbackConfig(name="test", image_size=16)


def test_a_fifo_and_a_link_out_of_the_images_folder_are_skipped_and_counted(tmp_path):
  items = [f"i{n}" for n in range(8)]
  root = _fashion_catalog(tmp_path / "shop", [(u, i) for u in ("u1", "u2") for i in items])
  outside = tmp_path / "secret.jpg"
  outside.write_bytes(feedback_files.image_bytes(99))
  (root / "images" / "i4.jpg").unlink()
  (root / "images" / "i4.jpg").symlink_to(outside)
  (root / "images" / "i5.jpg").unlink()
  os.mkfifo(root / "images" / "i5.jpg")
  catalog = fc.build_catalog(root, _config())
  assert catalog.statistics["dropped"]["undecodable_images"] == 2
  reasons = " ".join(catalog.dropped_examples["undecodable_images"])
  assert "outside the images folder" in reasons and "not a regular file" in reasons
  assert "i4" not in catalog.source_ids and "i5" not in catalog.source_ids


def test_line_breaks_in_names_and_ids_cannot_shift_what_is_stored(tmp_path):
  items = [f"i{n}" for n in range(5)]
  users = ["u\nnext", "u\r2", "back\\slash", "plain"]
  categories = [("i0", "Tops\nand more"), ("i1", "Tops and more"), ("i2", "Shoes\r"),
                ("i3", "Bags\u2028x"), ("i4", " Bags x ")]
  root = _fashion_catalog(tmp_path / "shop", [(u, i) for u in users for i in items],
                          categories)
  catalog = fc.build_catalog(root, _config())
  assert catalog.category_names == ["Bags x", "Shoes", "Tops and more"]
  names = [catalog.category_names[c] for c in catalog.categories]
  assert names == ["Tops and more", "Tops and more", "Shoes", "Bags x", "Bags x"]
  feedback_catalog.write_user_source_ids(tmp_path / "data", catalog.user_source_ids)
  lines = (tmp_path / "data" / feedback_catalog.USER_SOURCE_IDS_FILE).read_text().splitlines()
  assert len(lines) == len(users)  # Line u is user u, whatever the ids hold.
  assert feedback_catalog.read_user_source_ids(tmp_path / "data") == catalog.user_source_ids
  assert sorted(catalog.user_source_ids) == sorted(users)
  assert records.clean_label("a\r\n\tb  ") == "a b"


def test_hm_article_ids_cannot_name_a_path(tmp_path):
  a = test_hm_fashion.a
  root = test_hm_fashion.write_layout(tmp_path / "hm")
  outside = tmp_path / "outside.jpg"
  outside.write_bytes(feedback_files.image_bytes(5))
  hostile = [(str(outside.with_suffix("")), "0.01", "c1", "1", "2020-09-01"),
             ("../../outside", "0.01", "c1", "1", "2020-09-01"),
             ("12345abcde", "0.01", "c1", "1", "2020-09-01")]
  feedback_files.write_csv(root / "transactions_train.csv", test_hm_fashion.TRANSACTION_HEADER,
                           test_hm_fashion.TRANSACTIONS + hostile)
  catalog = hm.build_catalog(root, test_hm_fashion.config())
  assert catalog.statistics["dropped"]["malformed_rows"] == 3
  assert all(len(s) == 10 and s.isdigit() for s in catalog.source_ids)
  assert a(0) in catalog.source_ids
  examples = " ".join(catalog.dropped_examples["malformed_rows"])
  assert "is not 10 digits" in examples and "../../outside" in examples


@pytest.mark.parametrize("build, root_of", [
    (fc.build_catalog, lambda tmp: _fashion_catalog(tmp / "shop", [("u", "i")])),
    (hm.build_catalog, lambda tmp: test_hm_fashion.write_layout(tmp / "hm"))])
def test_a_file_where_the_images_folder_should_be_is_a_read_error(tmp_path, build, root_of):
  root = root_of(tmp_path)
  folder = root / "images"
  for path in sorted(folder.rglob("*"), reverse=True):
    path.unlink() if not path.is_dir() else path.rmdir()
  folder.rmdir()
  folder.write_text("not a folder")
  with pytest.raises(errors.DatasetError) as e:
    build(root, _config())
  assert str(e.value).startswith(f"cannot read the images folder {folder}: it is a file")
  assert "write" not in str(e.value)
