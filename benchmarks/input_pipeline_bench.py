"""Benchmark 1: BPR training images delivered at 224x224 per second, the project's tf.data
pipeline against the authors' loader.

A: `input_pipeline.triplet_dataset` over an `ImageTable`, exactly as `DvbprTask.dataset`
   builds it, with the JPEGs decoded on demand (`cache_decoded="never"`). That is what the
   pipeline does at 224 on the paper's catalogs: Amazon Fashion's 234,892 items decoded at
   224x224 would take 35 GB, over the table's 4 GiB budget.
A' (second row): the same pipeline with the decoded cache (`cache_decoded="always"`), what
   the table does when the decoded catalog fits its budget (the demo data, or a machine given
   a larger `cache_limit_bytes`).
A'' (third row): decode on demand of the same images stored at 224x224 (re-encoded once, as
   the `<dataset>_224` builder configs store them, e.g. `amazon_fashion/224`), so that the
   pipeline decodes and never resizes: what feeding an accelerator at the paper's size costs
   per image. Goal 1.5x the authors' loader (which resizes every image it loads).
B: the authors' DVBPR/main.py loader, re-created: four `threading.Thread` workers, each
   sampling a (u, i, j) triplet in Python, decoding both images with PIL (open, convert RGB,
   resize to 224, numpy uint8) and putting the example on a bounded `queue.Queue`
   (capacity 5 batches, as their `FIFOQueue(batch_size*5)`); the consumer takes `batch_size`
   examples and stacks them into a batch. Their code called `resize((224, 224))` without a
   filter, which in the Pillow of 2017 (< 7.0) meant NEAREST; the same loader with today's
   default (bicubic) is measured as well, in the details.

Both sides read the same JPEGs (product-like, about 300x300, generated here) from memory, as
the authors' loader read them from their .npy file. Images counted: two per example (the
positive and the negative).
"""

from __future__ import annotations

import dataclasses
import io
import os
import queue
import random
import threading
import time

import numpy as np
from PIL import Image
import tensorflow as tf

from benchmarks import common
from benchmarks import synthetic
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.data import sampler as sampler_lib
from dvbpr_tf_datasets.common import images as images_lib

NAME = "input_pipeline"
TITLE = "Input pipeline: BPR images/s at 224x224, tf.data vs the authors' 4-thread PIL loader"
GOAL_RATIO = 3.0
STORED_GOAL_RATIO = 1.5  # Images stored at the training size (the `_224` configs).


@dataclasses.dataclass(frozen=True)
class Config:
  """Attributes:
    num_images: distinct JPEGs in the catalog.
    source_size: their side in pixels.
    image_size: the side delivered to the model.
    batch_size: examples per batch (each example: two images).
    warmup_batches, batches: batches taken before timing, and timed, per repeat. The warm-up
      must exceed the authors' queue (`queue_batches`) and tf.data's prefetch buffer, so
      that the timed batches are produced while timed, not served from a full buffer.
    repeats: A/B pairs measured.
    num_users, items_per_user: the random training interactions the samplers draw from.
    num_threads: the authors' loader threads (their `numldprocess = 4`).
    queue_batches: the authors' queue capacity in batches (`FIFOQueue(batch_size * 5)`).
    diagnostic_images: images decoded for the decoding-alone diagnostics.
    seed: data and sampling seed.
  """

  num_images: int = 1024
  source_size: int = 300
  image_size: int = 224
  batch_size: int = 128
  warmup_batches: int = 6
  batches: int = 8
  repeats: int = 3
  num_users: int = 2000
  items_per_user: int = 6
  num_threads: int = 4
  queue_batches: int = 5
  diagnostic_images: int = 256
  seed: int = 0


SIZES = {
    "tiny": Config(num_images=48, source_size=96, image_size=64, batch_size=16, batches=3,
                   repeats=2, num_users=50, diagnostic_images=16),
    "full": Config(),
}


def _user_items(config: Config) -> list[list[int]]:
  rng = np.random.default_rng(config.seed)
  return [sorted(rng.choice(config.num_images, config.items_per_user, replace=False).tolist())
          for _ in range(config.num_users)]


# --- B: the authors' loader -------------------------------------------------------------


class AuthorsLoader:
  """The authors' training feed (DVBPR/main.py `sample` and `load_image_async`), re-created.

  Args:
    jpegs: the catalog's JPEG bytes.
    user_items: each user's training items.
    image_size: side of the resized images.
    batch_size: examples per batch.
    num_threads: worker threads.
    queue_capacity: examples the bounded queue holds.
    resample: PIL filter of `Image.resize` (their code named none: NEAREST in 2017's Pillow).
    seed: the samplers' seed.
  """

  def __init__(self, jpegs, user_items, image_size: int, batch_size: int, num_threads: int = 4,
               queue_capacity: int = 640, resample=Image.Resampling.NEAREST, seed: int = 0):
    self.jpegs, self.user_items = list(jpegs), user_items
    self.image_size, self.batch_size, self.resample = image_size, batch_size, resample
    self.queue: queue.Queue = queue.Queue(maxsize=queue_capacity)
    self._stop = threading.Event()
    self._threads = [threading.Thread(target=self._work, args=(random.Random(seed + k),),
                                      daemon=True) for k in range(num_threads)]

  def _sample(self, rng: random.Random) -> tuple[int, int, int]:
    """Their `sample`: u uniform, i uniform in u's items, j uniform outside them."""
    u = rng.randrange(len(self.user_items))
    items = self.user_items[u]
    i = items[rng.randrange(len(items))]
    seen = set(items)
    while True:
      j = rng.randrange(len(self.jpegs))
      if j not in seen:
        return u, i, j

  def _load(self, item: int) -> np.ndarray:
    image = Image.open(io.BytesIO(self.jpegs[item])).convert("RGB")
    return np.uint8(np.asarray(image.resize((self.image_size, self.image_size),
                                            self.resample)))

  def _work(self, rng: random.Random) -> None:
    while not self._stop.is_set():
      u, i, j = self._sample(rng)
      example = (u, i, j, self._load(i), self._load(j))
      while not self._stop.is_set():
        try:
          self.queue.put(example, timeout=0.1)
          break
        except queue.Full:
          continue

  def __enter__(self) -> "AuthorsLoader":
    for thread in self._threads:
      thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self._stop.set()
    for thread in self._threads:
      thread.join()

  def next_batch(self) -> dict[str, np.ndarray]:
    """Their `dequeue_many(batch_size)`: the next `batch_size` examples, stacked."""
    examples = [self.queue.get() for _ in range(self.batch_size)]
    return {"user": np.array([e[0] for e in examples]),
            "pos": np.array([e[1] for e in examples]),
            "neg": np.array([e[2] for e in examples]),
            "pos_image": np.stack([e[3] for e in examples]),
            "neg_image": np.stack([e[4] for e in examples])}


# --- Measurements -----------------------------------------------------------------------


def _images_per_second(next_batch, config: Config) -> float:
  for _ in range(config.warmup_batches):
    next_batch()
  start = time.perf_counter()
  for _ in range(config.batches):
    next_batch()
  return 2 * config.batches * config.batch_size / (time.perf_counter() - start)


def _measure_tf(sampler: sampler_lib.TripletSampler, table: input_pipeline.ImageTable,
                pipeline: input_pipeline.PipelineConfig, config: Config) -> float:
  iterator = iter(input_pipeline.triplet_dataset(sampler, table, pipeline, start=0))
  rate = _images_per_second(lambda: next(iterator), config)
  del iterator  # Stops the pipeline's background work before the other side runs.
  return rate


def _measure_authors(jpegs, user_items, config: Config, resample) -> float:
  with AuthorsLoader(jpegs, user_items, config.image_size, config.batch_size,
                     config.num_threads, config.queue_batches * config.batch_size, resample,
                     config.seed) as loader:
    return _images_per_second(loader.next_batch, config)


def _decode_variants(jpegs, config: Config) -> dict:
  """Images/s of decoding alone, through tf.data (parallel map, as the pipeline) for three
  decoders, and through PIL on one thread: where the pipeline's time goes, and what a decoder
  without the antialiased resize would deliver (a diagnostic, not the project's code)."""
  size = config.image_size
  variants = {
      "tf_decode_jpeg_only": lambda j: tf.io.decode_jpeg(j, channels=3),
      "tf_project_decode_image": lambda j: input_pipeline.decode_image(j, size),
      "tf_decode_bilinear_no_antialias": lambda j: tf.cast(tf.image.resize(
          tf.io.decode_jpeg(j, channels=3), [size, size], antialias=False), tf.uint8),
  }
  sample = list(jpegs[:config.diagnostic_images])

  def through_tf_data(decode) -> float:
    dataset = tf.data.Dataset.from_tensor_slices(sample).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE).batch(len(sample))
    next(iter(dataset))  # Traces.
    return len(sample) / common.timed(lambda: next(iter(dataset)))

  def through_pil(resample) -> float:
    def load(jpeg):
      image = Image.open(io.BytesIO(jpeg)).convert("RGB")
      return np.asarray(image.resize((size, size), resample))
    return len(sample) / common.timed(lambda: [load(j) for j in sample])

  result = {name: through_tf_data(decode) for name, decode in variants.items()}
  result["pil_nearest_one_thread"] = through_pil(Image.Resampling.NEAREST)
  result["pil_bicubic_one_thread"] = through_pil(Image.Resampling.BICUBIC)
  return {"unit": "images/s", **result}


def run(config: Config) -> common.BenchmarkResult:
  """Measures the pipeline against the authors' loader."""
  started = time.perf_counter()
  jpegs = synthetic.product_jpegs(config.num_images, config.source_size, config.seed)
  user_items = _user_items(config)
  users = np.repeat(np.arange(config.num_users), config.items_per_user)
  sampler = sampler_lib.TripletSampler(users, np.concatenate(user_items), config.num_users,
                                       config.num_images, seed=config.seed)
  on_demand = input_pipeline.PipelineConfig(image_size=config.image_size,
                                            batch_size=config.batch_size,
                                            cache_decoded="never")
  cached = dataclasses.replace(on_demand, cache_decoded="always")
  table = input_pipeline.ImageTable.from_config(jpegs, on_demand)
  tick = time.perf_counter()
  cached_table = input_pipeline.ImageTable.from_config(jpegs, cached)
  cache_seconds = time.perf_counter() - tick
  # As a `_224` build stores them: resized once (Pillow, antialiased), JPEG quality 95.
  stored = [images_lib.to_rgb_jpeg(j, config.image_size) for j in jpegs]
  stored_table = input_pipeline.ImageTable.from_config(stored, on_demand)
  plain = dataclasses.replace(on_demand, resize="bilinear")
  plain_table = input_pipeline.ImageTable.from_config(jpegs, plain)

  nearest, bicubic = Image.Resampling.NEAREST, Image.Resampling.BICUBIC
  (tf_rates, authors_rates, cached_rates, bicubic_rates, stored_rates,
   plain_rates) = common.interleaved([
       lambda: _measure_tf(sampler, table, on_demand, config),
       lambda: _measure_authors(jpegs, user_items, config, nearest),
       lambda: _measure_tf(sampler, cached_table, cached, config),
       lambda: _measure_authors(jpegs, user_items, config, bicubic),
       lambda: _measure_tf(sampler, stored_table, on_demand, config),
       lambda: _measure_tf(sampler, plain_table, plain, config)], config.repeats)

  unit = "images/s"
  authors = common.Rate("authors' loader (PIL, NEAREST)", unit, tuple(authors_rates))
  rows = (
      common.compare(
          NAME, common.Rate("tf.data, decode on demand", unit, tuple(tf_rates)), authors,
          GOAL_RATIO, note="catalog scale: the decoded catalog exceeds the cache budget"),
      common.compare(
          f"{NAME}_cached", common.Rate("tf.data, decoded cache", unit, tuple(cached_rates)),
          authors, GOAL_RATIO,
          note="when the decoded catalog fits the ImageTable budget (demo data)"),
      common.compare(
          f"{NAME}_stored_at_size",
          common.Rate(f"tf.data, decode on demand, stored at {config.image_size}", unit,
                      tuple(stored_rates)),
          authors, STORED_GOAL_RATIO,
          note="the `_224` builder configs: decode only, no resize"),
      common.compare(
          f"{NAME}_plain_bilinear",
          common.Rate("tf.data, decode on demand, plain bilinear resize", unit,
                      tuple(plain_rates)),
          authors, None,
          note="PipelineConfig.resize='bilinear' (mild downscales); no goal of its own"),
  )
  details = {
      "authors_loader_bicubic": common.Rate("authors' loader (PIL, bicubic: today's default)",
                                            unit, tuple(bicubic_rates)).as_dict(),
      "decoded_cache_build_seconds": cache_seconds,
      "mean_jpeg_bytes": float(np.mean([len(j) for j in jpegs])),
      "mean_stored_jpeg_bytes": float(np.mean([len(j) for j in stored])),
      "cpu_cores": os.cpu_count(),
      "images_per_second_per_core": {
          "decode_on_demand": float(np.median(tf_rates)) / (os.cpu_count() or 1),
          "stored_at_size": float(np.median(stored_rates)) / (os.cpu_count() or 1),
          "plain_bilinear": float(np.median(plain_rates)) / (os.cpu_count() or 1),
          "authors_loader": float(np.median(authors_rates)) / (os.cpu_count() or 1)},
      "decoding_alone": _decode_variants(jpegs, config),
  }
  return common.BenchmarkResult(NAME, TITLE, rows, dataclasses.asdict(config), details,
                                time.perf_counter() - started)
