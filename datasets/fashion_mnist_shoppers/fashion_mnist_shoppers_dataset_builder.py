"""fashion_mnist_shoppers: real Fashion-MNIST garments, dyed, bought by simulated shoppers.

The embedded default dataset of the project. See README.md beside this file for exactly what
is real and what is simulated, and `simulation.py` for the model itself.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import socket
import threading
import urllib.parse

from absl import logging
from etils import epath
import numpy as np
from PIL import Image
import tensorflow as tf
import tensorflow_datasets as tfds

from dvbpr_tf_datasets.common import errors
from dvbpr_tf_datasets.common import images as image_utils
from dvbpr_tf_datasets.common import records
from dvbpr_tf_datasets.common import splits as split_utils
from dvbpr_tf_datasets.common import statistics
from dvbpr_tf_datasets.fashion_mnist_shoppers import simulation

FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"  # apt-get install dataset-fashion-mnist
DOWNLOAD_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# Without a network, the download gives up after this many seconds in all (resolving the host
# and connecting to it), instead of TFDS's retries per file.
DOWNLOAD_DEADLINE_SECONDS = 15.0

FINE_NAMES = ("t_shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
              "sneaker", "bag", "ankle_boot")
# A coarse grouping close to Amazon Fashion's tops / bottoms / shoes split.
COARSE_NAMES = ("tops", "bottoms", "dresses", "shoes", "bags")
FINE_TO_COARSE = np.array([0, 1, 0, 2, 0, 3, 0, 3, 4, 3])

PLANTED_MODEL_FILE = simulation.PLANTED_MODEL_FILE


@dataclasses.dataclass(eq=False)
class ShoppersConfig(tfds.core.BuilderConfig):
  """A catalog size, an image size and the shopper model (see simulation.ShopperModel)."""

  num_images: int = 10_000
  image_size: int = 64
  grouping: str = "fine"  # `fine`: the 10 Fashion-MNIST classes; `coarse`: 5 groups.
  users_per_image: float = 0.25
  extra_interactions_mean: float = 3.0
  taste_strength: float = 1.0
  taste_spread: float = 0.5
  popularity_sigma: float = 1.0
  seed: int = 0

  def shopper_model(self) -> simulation.ShopperModel:
    return simulation.ShopperModel(
        num_images=self.num_images,
        users_per_image=self.users_per_image,
        extra_interactions_mean=self.extra_interactions_mean,
        taste_strength=self.taste_strength,
        taste_spread=self.taste_spread,
        popularity_sigma=self.popularity_sigma,
        seed=self.seed,
    )

  @property
  def category_names(self):
    return FINE_NAMES if self.grouping == "fine" else COARSE_NAMES


class Builder(tfds.core.GeneratorBasedBuilder):
  """Fashion-MNIST products with simulated visually-minded shoppers."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      ShoppersConfig(name="tiny", description="200 images at 32x32, for tests (seconds).",
                     num_images=200, image_size=32),
      ShoppersConfig(name="demo", description="10,000 images at 64x64: the default run.",
                     num_images=10_000, image_size=64),
      ShoppersConfig(name="demo_coarse", grouping="coarse", num_images=10_000, image_size=64,
                     description="The demo catalog with 5 coarse categories "
                                 "(tops, bottoms, dresses, shoes, bags)."),
      ShoppersConfig(name="full", description="All 70,000 images at 64x64.",
                     num_images=70_000, image_size=64),
  ]
  DEFAULT_CONFIG_NAME = "demo"
  # `dvbpr_tf_datasets` is a namespace package (see setup.py), from which TFDS cannot infer
  # these two paths by itself.
  pkg_dir_path = epath.Path(__file__).parent
  code_path = epath.Path(__file__)
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  The Fashion-MNIST files ({', '.join(FASHION_MNIST_FILES)}) are looked for, in order, in the
  manual directory (`--manual_dir`), in {DEBIAN_DIR} (Debian: `apt-get install
  dataset-fashion-mnist`), and finally downloaded from {DOWNLOAD_URL} when a network exists.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=records.catalog_features(self.builder_config.category_names),
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    gray, labels, source = _load_fashion_mnist(dl_manager)
    if config.num_images > len(gray):
      raise errors.DatasetError(
          f"config {config.name!r} wants {config.num_images} images but {source} holds "
          f"{len(gray)}: use a smaller config or the complete Fashion-MNIST files.")
    rng = np.random.default_rng(config.seed)
    chosen = np.sort(rng.choice(len(gray), config.num_images, replace=False))
    rendered = simulation.render_products(gray[chosen], config.image_size, rng)
    jpegs = [image_utils.encode_jpeg(Image.fromarray(image)) for image in rendered]
    # The style is a function of the pixels a model will see: the decoded JPEGs.
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(j)).convert("RGB")) for j in jpegs])
    style = simulation.standardise(simulation.raw_style(decoded))
    shoppers = simulation.simulate_shoppers(style, config.shopper_model(), rng)

    # Keep only the images somebody picked; re-index them densely.
    kept = np.unique(shoppers.items)
    new_index = np.full(len(chosen), -1, np.int64)
    new_index[kept] = np.arange(len(kept))
    items = new_index[shoppers.items]
    users = shoppers.users
    num_users, num_items = len(shoppers.ideal), len(kept)
    split = split_utils.leave_one_out(users, num_users, seed=config.seed + 1)
    split_utils.check_split(users, items, split, num_users)

    fine = labels[chosen][kept]
    categories = fine if config.grouping == "fine" else FINE_TO_COARSE[fine]
    stats = statistics.interaction_statistics(
        num_users=num_users, num_items=num_items, users=users, items=items, splits=split,
        categories=categories, category_names=config.category_names,
        dropped={"unpicked_images": len(chosen) - num_items})
    stats["source"] = source
    stats["simulation"] = dataclasses.asdict(config.shopper_model())
    stats["simulation"]["image_size"] = config.image_size
    stats["simulation"]["style_names"] = list(simulation.STYLE_NAMES)
    self.info.metadata["statistics"] = stats
    report = statistics.format_statistics(f"{self.name}/{config.name}", stats)
    logging.info("%s", report)
    print(report, flush=True)

    planted = io.BytesIO()
    np.savez(planted, ideal=shoppers.ideal, style=style[kept],
             log_popularity=shoppers.log_popularity[kept],
             taste_strength=np.float64(shoppers.taste_strength),
             fashion_mnist_index=chosen[kept])
    self.data_path.mkdir(parents=True, exist_ok=True)
    (self.data_path / PLANTED_MODEL_FILE).write_bytes(planted.getvalue())

    return {
        records.CATALOG_SPLIT: records.catalog_examples(
            source_ids=[f"fmnist-{i}" for i in chosen[kept]],
            jpegs=[jpegs[i] for i in kept],
            categories=categories, users=users, items=items, splits=split),
    }

  def _generate_examples(self):  # pragma: no cover - examples come from _split_generators.
    raise NotImplementedError


def _load_fashion_mnist(dl_manager):
  """Returns (images uint8 [n, 28, 28], labels [n], where they came from); train then test."""
  places = []
  try:
    places.append(dl_manager.manual_dir)
  except (AssertionError, ValueError):
    pass  # No manual directory given, or it is empty.
  places.append(epath.Path(DEBIAN_DIR))
  for place in places:
    if all((place / name).exists() for name in FASHION_MNIST_FILES):
      paths = {name: place / name for name in FASHION_MNIST_FILES}
      source = str(place)
      break
  else:
    try:
      check_reachable(DOWNLOAD_URL, DOWNLOAD_DEADLINE_SECONDS)
      paths = dl_manager.download({n: DOWNLOAD_URL + n for n in FASHION_MNIST_FILES})
    except Exception as e:  # pylint: disable=broad-except  # Any network failure.
      raise FileNotFoundError(
          "Fashion-MNIST was not found in " + " or ".join(str(p) for p in places)
          + f" and could not be downloaded ({_reason(e)}). Install it with "
          "`apt-get install dataset-fashion-mnist`, or put the files "
          f"{', '.join(FASHION_MNIST_FILES)} in a folder given as --manual_dir.") from e
    source = DOWNLOAD_URL
  parts = [(_read_idx(paths[f"{s}-images-idx3-ubyte.gz"], 2051),
            _read_idx(paths[f"{s}-labels-idx1-ubyte.gz"], 2049)) for s in ("train", "t10k")]
  images = np.concatenate([p[0] for p in parts])
  labels = np.concatenate([p[1] for p in parts]).astype(np.int64)
  if images.ndim != 3 or len(images) != len(labels) or labels.max(initial=0) > 9:
    raise errors.DatasetError(f"the Fashion-MNIST files in {source} do not match each other")
  return images, labels, source


def check_reachable(url: str, deadline_seconds: float) -> None:
  """Resolves `url`'s host and opens a TCP connection to it, all within `deadline_seconds`.

  The name lookup has no timeout of its own, so the probe runs in a daemon thread that is
  abandoned at the deadline.

  Raises:
    OSError: the host cannot be resolved or reached (TimeoutError at the deadline).
  """
  parts = urllib.parse.urlsplit(url)
  port = parts.port or (443 if parts.scheme == "https" else 80)
  outcome = {}

  def probe():
    try:
      socket.create_connection((parts.hostname, port), timeout=deadline_seconds).close()
      outcome["ok"] = True
    except OSError as e:
      outcome["error"] = e

  thread = threading.Thread(target=probe, name="fashion-mnist-probe", daemon=True)
  thread.start()
  thread.join(deadline_seconds)
  if outcome.get("ok"):
    return
  raise outcome.get("error") or TimeoutError(
      f"no answer from {parts.hostname}:{port} within {deadline_seconds:g}s")


def _reason(error: BaseException) -> str:
  if isinstance(error, socket.gaierror):
    return f"cannot resolve the host: {error.strerror or error}"
  if isinstance(error, OSError) and error.strerror:
    return f"{type(error).__name__}: {error.strerror}"
  return f"{type(error).__name__}: {error}"


def _read_idx(path, magic: int) -> np.ndarray:
  """Reads a gzipped IDX file (the MNIST format)."""
  with tf.io.gfile.GFile(str(path), "rb") as f:
    data = gzip.GzipFile(fileobj=f).read()
  header = np.frombuffer(data[:4], ">i4")[0] if len(data) >= 4 else -1
  if header != magic:
    raise errors.DatasetError(f"{path} is not an IDX file of the expected kind "
                     f"(magic {header}, expected {magic})")
  ndim = magic & 0xFF
  dims = np.frombuffer(data[4:4 + 4 * ndim], ">i4")
  array = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
  if array.size != int(np.prod(dims)):
    raise errors.DatasetError(f"{path} is truncated: {array.size} bytes of data for shape {tuple(dims)}")
  return array.reshape(dims)
