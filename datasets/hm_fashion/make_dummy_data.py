"""Writes `dummy_data/`: a tiny H&M layout (Kaggle's files and columns) for the builder tests.

- 14 customers with 64-hex ids, 12 of them in the 1% sample (`interactions.in_sample`; ids
  picked by their hash) and 2 outside it; the `sample_1pct` configs keep the 12.
- 36 articles with 10-digit ids with a leading zero, images 8x8 under
  `images/<first 3 digits>/<id>.jpg`, `articles.csv` with Kaggle's 25 columns (a quoted
  `detail_desc` holding commas and a line break).
- Messy on purpose: article 0100000033 has no row in articles.csv (category `unknown`);
  0100000034 has no image; 0100000035's image is truncated; 0100000030 is grayscale,
  0100000031 is CMYK and 0100000032 a PNG with alpha saved as `.jpg`; customer 10 buys an
  article twice; customer 11 has 4 articles (dropped); customer 9 has 5 articles, one without
  an image (dropped, so the customer falls below 5 and is dropped too); one row has a missing
  field and one an empty customer_id (both malformed).

Run from the repository root:

    python datasets/hm_fashion/make_dummy_data.py
"""

import csv
import hashlib
import io
import pathlib
import zlib

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
NUM_ARTICLES = 36
NO_METADATA, NO_IMAGE, TRUNCATED = 33, 34, 35
GRAYSCALE, CMYK, PNG_ALPHA = 30, 31, 32
GROUPS = ("Garment Upper body", "Garment Lower body", "Shoes", "Accessories")
ARTICLE_COLUMNS = (
    "article_id", "product_code", "prod_name", "product_type_no", "product_type_name",
    "product_group_name", "graphical_appearance_no", "graphical_appearance_name",
    "colour_group_code", "colour_group_name", "perceived_colour_value_id",
    "perceived_colour_value_name", "perceived_colour_master_id",
    "perceived_colour_master_name", "department_no", "department_name", "index_code",
    "index_name", "index_group_no", "index_group_name", "section_no", "section_name",
    "garment_group_no", "garment_group_name", "detail_desc")
TRANSACTION_COLUMNS = ("t_dat", "customer_id", "article_id", "price", "sales_channel_id")


def article_id(index: int) -> str:
  return f"0{100000000 + index}"


def customer_ids(count: int, in_sample: bool, fraction: float = 0.01) -> list[str]:
  """The first `count` sha256-hex ids whose CRC-32 puts them in (or out of) the sample."""
  ids, n = [], 0
  while len(ids) < count:
    candidate = hashlib.sha256(f"customer-{n}".encode()).hexdigest()
    n += 1
    if (zlib.crc32(candidate.encode()) < fraction * 4294967296.0) == in_sample:
      ids.append(candidate)
  return ids


def image_bytes(index: int) -> bytes:
  """8x8 image bytes of an article (the odd ones as listed in the module docstring)."""
  y, x = np.mgrid[0:8, 0:8]
  base = np.array([(37 * index) % 256, (91 * index + 50) % 256, (151 * index + 100) % 256])
  pixels = ((base[None, None, :] + 16 * x[..., None] + 8 * y[..., None]) % 256).astype(np.uint8)
  image = Image.fromarray(pixels, "RGB")
  out = io.BytesIO()
  if index == GRAYSCALE:
    image.convert("L").save(out, format="JPEG", quality=90)
  elif index == CMYK:
    image.convert("CMYK").save(out, format="JPEG", quality=90)
  elif index == PNG_ALPHA:
    rgba = image.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(out, format="PNG")
  else:
    image.save(out, format="JPEG", quality=90)
  data = out.getvalue()
  return data[:60] if index == TRUNCATED else data


def baskets() -> list[tuple[str, list[int]]]:
  """(customer id, article indices in purchase order) for every customer."""
  inside = customer_ids(12, True)
  outside = customer_ids(2, False)
  rng = np.random.default_rng(2022)
  result = []
  for c in range(9):  # 9 regular customers, 6 to 9 articles each, some odd articles.
    count = 6 + c % 4
    chosen = rng.choice(30, count, replace=False).tolist()
    if c < 6:
      chosen[-1] = (GRAYSCALE, CMYK, PNG_ALPHA, NO_METADATA, TRUNCATED, NO_METADATA)[c]
    result.append((inside[c], chosen))
  result.append((inside[9], [0, 1, 2, 3, NO_IMAGE]))  # Falls below 5 without the image.
  result.append((inside[10], [4, 5, 6, 7, 8, 5]))  # Buys article 5 twice.
  result.append((inside[11], [9, 10, 11, 12]))  # 4 articles: dropped.
  for customer in outside:
    result.append((customer, rng.choice(30, 6, replace=False).tolist()))
  return result


def write(out: pathlib.Path) -> None:
  out.mkdir(parents=True, exist_ok=True)
  with open(out / "transactions_train.csv", "w", newline="") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(TRANSACTION_COLUMNS)
    for c, (customer, articles) in enumerate(baskets()):
      for k, a in enumerate(articles):
        last_two = k >= len(articles) - 2
        day = f"2020-09-{23 + k % 2}" if last_two else f"2020-09-{1 + (c + k) % 22:02d}"
        writer.writerow([day, customer, article_id(a), f"0.0{c % 9 + 1}", 1 + k % 2])
    writer.writerow(["2020-09-22", customer_ids(1, True)[0], article_id(1), "0.05"])  # 4 fields
    writer.writerow(["2020-09-22", "", article_id(2), "0.05", "2"])  # empty customer_id
  with open(out / "articles.csv", "w", newline="") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(ARTICLE_COLUMNS)
    for a in range(NUM_ARTICLES):
      if a == NO_METADATA:
        continue
      row = {name: str(a % 7) for name in ARTICLE_COLUMNS}
      row.update(article_id=article_id(a), product_code=article_id(a)[:7],
                 prod_name=f"Article {a}", product_group_name=GROUPS[a % len(GROUPS)],
                 detail_desc=f"Soft jersey, {a} cm long,\nwith \"print\".")
      writer.writerow([row[name] for name in ARTICLE_COLUMNS])
  for a in range(NUM_ARTICLES):
    if a == NO_IMAGE:
      continue
    folder = out / "images" / article_id(a)[:3]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{article_id(a)}.jpg").write_bytes(image_bytes(a))


if __name__ == "__main__":
  write(HERE / "dummy_data")
