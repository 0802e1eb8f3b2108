"""Writes `dummy_data/`: a tiny `fashion_catalog` layout for the builder tests.

- `interactions.csv` (`user_id,item_id,timestamp`, Unix seconds): 12 users, items `000`..`031`
  (ids with leading zeros, kept as text);
- `images/`: 8x8 images, `.jpg` for even items and `.png` for odd ones;
- `categories.csv` (`item_id,category`): tops, bottoms or shoes.

Messy on purpose: item `028` has no image; `029.png` is not an image and `030.jpg` is empty
(both dropped with their interactions); `031` has no row in categories.csv (`unknown`);
`024` is grayscale, `025` a PNG with alpha, `026` a CMYK JPEG; user `u10` takes an item
twice; `u11` has 4 items (dropped); one row has an extra field.

Run from the repository root:

    python datasets/fashion_catalog/make_dummy_data.py
"""

import csv
import io
import pathlib

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
NUM_ITEMS = 32
NO_IMAGE, NOT_AN_IMAGE, EMPTY_IMAGE, NO_CATEGORY = 28, 29, 30, 31
GRAYSCALE, PNG_ALPHA, CMYK = 24, 25, 26
CATEGORIES = ("tops", "bottoms", "shoes")


def item_id(index: int) -> str:
  return f"{index:03d}"


def image_file(index: int) -> tuple[str, bytes]:
  """(file name, bytes) of an item's image (the odd ones as in the module docstring)."""
  y, x = np.mgrid[0:8, 0:8]
  base = np.array([(53 * index) % 256, (97 * index + 30) % 256, (11 * index + 200) % 256])
  pixels = ((base[None, None, :] + 16 * x[..., None] + 8 * y[..., None]) % 256).astype(np.uint8)
  image = Image.fromarray(pixels, "RGB")
  out = io.BytesIO()
  ext = ".jpg" if index % 2 == 0 else ".png"
  if index == NOT_AN_IMAGE:
    return item_id(index) + ext, b"this is not a PNG file"
  if index == EMPTY_IMAGE:
    return item_id(index) + ext, b""
  if index == GRAYSCALE:
    image = image.convert("L")
  elif index == PNG_ALPHA:
    image = image.convert("RGBA")
    image.putalpha(100)
  elif index == CMYK:
    image = image.convert("CMYK")
  image.save(out, format="JPEG" if ext == ".jpg" else "PNG", quality=90)
  return item_id(index) + ext, out.getvalue()


def interactions() -> list[tuple[str, int, int]]:
  """(user, item index, timestamp) rows."""
  rng = np.random.default_rng(7)
  rows = []
  time = 1_600_000_000
  odd = (NO_IMAGE, NOT_AN_IMAGE, EMPTY_IMAGE, NO_CATEGORY, GRAYSCALE, PNG_ALPHA, CMYK)
  for u in range(10):
    chosen = rng.choice(24, 6 + u % 3, replace=False).tolist()
    if u < len(odd):
      chosen.append(odd[u])
    for item in chosen:
      time += int(rng.integers(60, 86_400))
      rows.append((f"u{u:02d}", item, time))
  rows.append(("u10", 3, time + 1))
  for item in (4, 5, 6, 7, 3):  # Item 3 again, later: counts once.
    time += 3600
    rows.append(("u10", item, time))
  for item in (8, 9, 10, 11):
    time += 3600
    rows.append(("u11", item, time))
  return rows


def write(out: pathlib.Path) -> None:
  (out / "images").mkdir(parents=True, exist_ok=True)
  with open(out / "interactions.csv", "w", newline="") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(["user_id", "item_id", "timestamp"])
    for user, item, time in interactions():
      writer.writerow([user, item_id(item), time])
    writer.writerow(["u00", item_id(1), 1_600_000_000, "extra"])
  with open(out / "categories.csv", "w", newline="") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(["item_id", "category"])
    for index in range(NUM_ITEMS):
      if index != NO_CATEGORY:
        writer.writerow([item_id(index), CATEGORIES[index % len(CATEGORIES)]])
  for index in range(NUM_ITEMS):
    if index != NO_IMAGE:
      name, data = image_file(index)
      (out / "images" / name).write_bytes(data)


if __name__ == "__main__":
  write(HERE / "dummy_data")
