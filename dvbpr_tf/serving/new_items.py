"""New catalog items, read from a folder of images or a CSV, for a catalog that grows without
retraining (`--experiment=add_items` embeds them with the trained tower and exports the old
catalog plus these).

Two layouts of `path`:

- a folder: every `<id>.jpg`, `<id>.jpeg` or `<id>.png` in it (extension in any case; the
  file name without its extension is the item's source id), in the order of the file names;
  no categories. Hidden files and sub-folders are skipped, other files are skipped and named
  in a warning; a link that resolves outside the folder is refused, as the dataset builders
  refuse one in their `images/` folder.
- a CSV (`.csv`): a header with `id` and `path` and, optionally, `category` (other columns
  ignored), one item per row in row order; `path` relative to the CSV's folder or absolute;
  `category` one of the dataset's category names (blanks around and inside it collapsed, as
  the builders store them) or empty (no category: -1).

Images are turned into what a catalog stores by the caller's `convert` (the builders' RGB JPEG
conversion: any size and mode, grey, CMYK, palette, alpha composited onto white, EXIF
rotation applied, resized to the catalog's stored size when it has one), so that a new item
goes through the same decoding as a catalog item when it is embedded. `serving` may not
import the builders, which is why the conversion is the caller's.

Everything is checked before any image is used, each failure one `errors.UserError` naming
what was wrong: a missing path, an empty folder or CSV, a CSV without the columns, an empty id
or path, an unknown category, a source id that the catalog already has or that is listed
twice, a file that is not a decodable image (all of them, up to `SHOWN`, with the reason).
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import os
import pathlib
import time
from typing import Callable, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from dvbpr_tf.core import errors

# File name extensions of a folder's images: those of the fashion_catalog builder's images/.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
CSV_COLUMNS = ("id", "path", "category")  # `category` may be left out.
NO_CATEGORY = -1
SHOWN = 10  # Names shown in one error message.
SIZE_SAMPLE = 256  # Catalog images whose size `stored_image_size` reads.
LOG_EVERY_SECONDS = 10.0
WORKERS = 8  # Threads converting images (Pillow releases the GIL while it decodes).

# bytes -> the stored image bytes; raises ValueError (not an image) or OSError (unreadable).
Convert = Callable[[bytes], bytes]
# A path -> its bytes; raises OSError (missing, not a regular file, no permission).
Read = Callable[[str], bytes]


@dataclasses.dataclass(frozen=True)
class ListedItem:
  """One new item as its folder or CSV names it, before its image is read.

  Attributes:
    source_id: the item's own id (text).
    path: its image file.
    category: the category id (index into the dataset's category names), or NO_CATEGORY.
    where: how a message names the item (`new.jpg`, `items.csv line 4`).
  """

  source_id: str
  path: pathlib.Path
  category: int
  where: str


@dataclasses.dataclass(frozen=True)
class NewItems:
  """New items ready to embed, in the order they get their ids.

  Attributes:
    source_ids: [n] their source ids.
    categories: int64 [n] category ids (NO_CATEGORY: none given).
    jpegs: [n] the stored image bytes (`convert`'s output).
    layout: `folder` or `csv`.
    skipped: files of a folder that were not read (not images by their extension).
  """

  source_ids: tuple[str, ...]
  categories: np.ndarray
  jpegs: tuple[bytes, ...]
  layout: str
  skipped: tuple[str, ...] = ()

  def __len__(self) -> int:
    return len(self.source_ids)


def read_new_items(path: str | os.PathLike, *, category_names: Sequence[str],
                   existing_ids: Sequence[str], read: Read, convert: Convert,
                   workers: int = WORKERS) -> NewItems:
  """The new items of `path` (a folder or a CSV, see the module docstring), checked.

  Args:
    path: the folder or the CSV.
    category_names: the dataset's categories (a CSV's `category` names one of them).
    existing_ids: the catalog's source ids (a new item may not reuse one).
    read: reads a file's bytes, refusing what is not a regular file (a FIFO would block).
    convert: image bytes -> the stored image bytes (ValueError: not a usable image).
    workers: threads reading and converting images.

  Raises:
    errors.UserError: see the module docstring.
  """
  listed, layout, skipped = list_items(path, category_names)
  check_ids(listed, existing_ids, path)
  jpegs = load_images(listed, read, convert, workers)
  return NewItems(tuple(item.source_id for item in listed),
                  np.asarray([item.category for item in listed], np.int64).reshape(-1),
                  tuple(jpegs), layout, tuple(skipped))


def list_items(path: str | os.PathLike, category_names: Sequence[str]
               ) -> tuple[list[ListedItem], str, list[str]]:
  """(items, `folder` or `csv`, skipped file names) of `path`, not yet read.

  Raises:
    errors.UserError: a missing path, neither a folder nor a .csv, nothing listed, a CSV
      without its columns, an empty id or path, an unknown category.
  """
  path = pathlib.Path(path).expanduser()
  if path.is_dir():
    items, skipped = _list_folder(path)
    layout = "folder"
  elif path.is_file() and path.suffix.lower() == ".csv":
    items, skipped, layout = _list_csv(path, category_names), [], "csv"
  elif path.exists():
    raise errors.UserError(f"--items {path} is neither a folder of images nor a .csv file; "
                           "give a folder of <id>.jpg/.png files or a CSV with the header "
                           "id,path,category")
  else:
    raise errors.UserError(f"--items {path} does not exist; give a folder of <id>.jpg/.png "
                           "files or a CSV with the header id,path,category")
  if not items:
    more = (f"; {len(skipped)} other file{'s' if len(skipped) > 1 else ''} skipped, e.g. "
            f"{', '.join(skipped[:3])}" if skipped else "")
    what = (f"no image files ({', '.join(IMAGE_EXTENSIONS)}{more})" if layout == "folder"
            else "no item rows")
    raise errors.UserError(f"--items {path} holds {what}: there is nothing to add")
  if skipped:
    logging.warning("--items %s: %d files skipped, not images by their extension (%s): %s",
                    path, len(skipped), ", ".join(IMAGE_EXTENSIONS),
                    ", ".join(skipped[:SHOWN]) + (" ..." if len(skipped) > SHOWN else ""))
  return items, layout, skipped


def _list_folder(folder: pathlib.Path) -> tuple[list[ListedItem], list[str]]:
  inside = os.path.realpath(folder)
  items, skipped = [], []
  for entry in sorted(folder.iterdir(), key=lambda p: p.name):
    if entry.name.startswith(".") or entry.is_dir():
      continue
    suffix = entry.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
      skipped.append(entry.name)
      continue
    real = os.path.realpath(entry)
    if os.path.commonpath([inside, real]) != inside:
      raise errors.UserError(f"--items {folder}: {entry.name} resolves outside the folder "
                             f"({real}); copy the image into the folder instead of linking it")
    items.append(ListedItem(entry.name[:-len(suffix)], entry, NO_CATEGORY, entry.name))
  return items, skipped


def _clean(text: str) -> str:
  """Blanks around and inside collapsed to single spaces (as the builders store names)."""
  return " ".join(text.split())


def _list_csv(path: pathlib.Path, category_names: Sequence[str]) -> list[ListedItem]:
  lookup = {_clean(name): code for code, name in enumerate(category_names)}
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      reader = csv.reader(f)
      rows = [(reader.line_num, row) for row in reader]  # The line a row ends on.
  except UnicodeDecodeError as e:
    raise errors.UserError(f"--items {path} is not UTF-8 text ({e.reason} at byte "
                           f"{e.start}); save it as UTF-8 CSV") from e
  except csv.Error as e:
    raise errors.UserError(f"--items {path} is not a readable CSV ({e})") from e
  while rows and not any(field.strip() for field in rows[0][1]):
    rows.pop(0)  # Blank lines before the header.
  if not rows:
    raise errors.UserError(f"--items {path} is empty: it needs the header id,path,category "
                           "and one row per new item")
  found = rows[0][1]
  header = [name.strip().lower() for name in found]
  missing = [name for name in CSV_COLUMNS[:2] if name not in header]
  if missing:
    raise errors.UserError(
        f"--items {path} has no column {' and no column '.join(map(repr, missing))} "
        f"(columns found: {', '.join(found) or 'none'}); its header must be "
        "id,path,category (category optional)")
  column = {name: header.index(name) for name in CSV_COLUMNS if name in header}
  items = []
  for line, row in rows[1:]:
    if not any(field.strip() for field in row):
      continue  # A blank line.
    where = f"{path.name} line {line}"
    source_id, file = _field(row, column, "id"), _field(row, column, "path")
    if not source_id or not file:
      raise errors.UserError(f"--items {where} has an empty {'id' if not source_id else 'path'}"
                             "; every row needs an id and the path of its image")
    category = NO_CATEGORY
    name = _clean(_field(row, column, "category"))
    if name:
      if name not in lookup:
        known = ", ".join(repr(n) for n in list(category_names)[:20])
        raise errors.UserError(
            f"--items {where}: unknown category {name!r}; the dataset's categories are "
            f"{known}{' ...' if len(category_names) > 20 else ''} (or leave it empty)")
      category = lookup[name]
    image = pathlib.Path(file).expanduser()
    items.append(ListedItem(source_id, image if image.is_absolute() else path.parent / image,
                            category, f"{where} ({file})"))
  return items


def _field(row: Sequence[str], column: dict[str, int], name: str) -> str:
  """The row's value of a column, blanks around it dropped ("" for a missing column or a
  short row)."""
  index = column.get(name)
  return row[index].strip() if index is not None and index < len(row) else ""


def check_ids(items: Sequence[ListedItem], existing_ids: Sequence[str], path) -> None:
  """Refuses a source id listed twice or already in the catalog (naming them)."""
  seen: dict[str, str] = {}
  repeated = []
  for item in items:
    if item.source_id in seen:
      repeated.append(f"{item.source_id!r} ({seen[item.source_id]} and {item.where})")
    else:
      seen[item.source_id] = item.where
  if repeated:
    raise errors.UserError(f"--items {path} names an id more than once: "
                           f"{_some(repeated)}; each new item needs its own id")
  existing = set(map(str, existing_ids))
  taken = [f"{item.source_id!r} ({item.where})" for item in items if item.source_id in existing]
  if taken:
    raise errors.UserError(
        f"--items {path} names ids the catalog already has: {_some(taken)}; a new item needs "
        "a new id (the catalog's items are recommendable already)")


def _some(names: Sequence[str]) -> str:
  more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
  return ", ".join(names[:SHOWN]) + more


def load_images(items: Sequence[ListedItem], read: Read, convert: Convert,
                workers: int = WORKERS) -> list[bytes]:
  """The stored bytes of every item's image, in order (several threads).

  Raises:
    errors.UserError: naming every file that could not be read or is not a usable image.
  """
  def one(item: ListedItem):
    try:
      return convert(read(os.fspath(item.path))), None
    except ValueError as e:  # Not an image, truncated, too many pixels.
      return None, f"{item.where}: {e}"
    except OSError as e:  # Missing, a folder, a FIFO, no permission.
      return None, f"{item.where}: cannot read {item.path} ({e.strerror or e})"

  started, logged, out, bad = time.time(), time.time(), [], []
  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
    for n, (data, error) in enumerate(pool.map(one, items), start=1):
      if error is not None:
        bad.append(error)
      out.append(data)
      if time.time() - logged >= LOG_EVERY_SECONDS:
        logged = time.time()
        logging.info("add_items: %d/%d images read (%.0f images/s)", n, len(items),
                     n / max(logged - started, 1e-9))
  if bad:
    raise errors.UserError(
        f"{len(bad)} of the new items' files {'is' if len(bad) == 1 else 'are'} not a usable "
        f"image: {'; '.join(bad[:SHOWN])}{' ...' if len(bad) > SHOWN else ''}; fix or remove "
        "them and rerun")
  return out


def stored_image_size(jpegs: Sequence[bytes], sample: int = SIZE_SAMPLE) -> int | None:
  """The side of the square images a catalog stores (read from the headers of up to `sample`
  images spread over it), or None when they are not all one square size (a dataset that
  keeps each image at its own size)."""
  if not len(jpegs):
    return None
  picks = np.unique(np.linspace(0, len(jpegs) - 1, min(sample, len(jpegs))).astype(np.int64))
  try:
    sizes = {tuple(tf.io.extract_jpeg_shape(jpegs[int(i)])[:2].numpy()) for i in picks}
  except tf.errors.InvalidArgumentError:  # Not JPEGs: nothing to say about their size.
    return None
  if len(sizes) == 1:
    height, width = sizes.pop()
    if height == width:
      return int(height)
  return None
