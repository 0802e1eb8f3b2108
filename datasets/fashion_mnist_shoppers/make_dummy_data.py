"""Writes `dummy_data/`: tiny files in the Fashion-MNIST IDX format, for the builder tests.

The images are drawn shapes (not Fashion-MNIST photographs): 200 "train" and 40 "t10k"
28x28 images with labels 0..9. Run from the repository root:

    python datasets/fashion_mnist_shoppers/make_dummy_data.py
"""

import gzip
import pathlib

import numpy as np
from PIL import Image, ImageDraw

HERE = pathlib.Path(__file__).resolve().parent


def _shape(rng: np.random.Generator, label: int) -> np.ndarray:
  image = Image.new("L", (28, 28), 0)
  draw = ImageDraw.Draw(image)
  ink = int(rng.integers(120, 256))
  w, h = int(rng.integers(8, 22)), int(rng.integers(8, 24))
  x0, y0 = (28 - w) // 2, (28 - h) // 2
  if label % 3 == 0:
    draw.rectangle([x0, y0, x0 + w, y0 + h], fill=ink)
  elif label % 3 == 1:
    draw.ellipse([x0, y0, x0 + w, y0 + h], fill=ink)
  else:
    draw.polygon([(14, y0), (x0, y0 + h), (x0 + w, y0 + h)], fill=ink)
  noise = rng.integers(0, 40, (28, 28))
  return np.clip(np.asarray(image, np.int64) - noise * (np.asarray(image) > 0), 0, 255)


def _write_idx(path: pathlib.Path, array: np.ndarray, magic: int) -> None:
  header = np.array([magic, *array.shape], ">i4").tobytes()
  # mtime=0 keeps the files byte-identical from run to run.
  with gzip.GzipFile(path, "wb", mtime=0) as f:
    f.write(header + array.astype(np.uint8).tobytes())


def main() -> None:
  rng = np.random.default_rng(2017)
  out = HERE / "dummy_data"
  out.mkdir(exist_ok=True)
  for prefix, count in (("train", 200), ("t10k", 40)):
    labels = np.arange(count) % 10
    images = np.stack([_shape(rng, int(label)) for label in labels])
    _write_idx(out / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
    _write_idx(out / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)


if __name__ == "__main__":
  main()
