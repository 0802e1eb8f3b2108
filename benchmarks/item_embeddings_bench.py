"""Benchmark 5: catalog images/s through the CNN-F tower at inference.

A: `evaluation.embed_items` with the compiled embedding function `DvbprTask` uses, over an
   `ImageTable` that decodes on demand (the paper's catalogs at 224x224 do not fit the decoded
   cache), in batches of the preset's `eval_batch_size`: what every evaluation runs.
B: the same compiled function called on one batch of images already in memory, as many times
   as A has batches: the tower's compute alone.
"""

from __future__ import annotations

import dataclasses
import math
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import common
from benchmarks import synthetic
from dvbpr_tf import config as config_lib
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.evaluation import evaluator as evaluation
from dvbpr_tf.models import dvbpr

NAME = "item_embeddings"
TITLE = "Item embeddings: catalog images/s through the tower, pipeline vs images in memory"


@dataclasses.dataclass(frozen=True)
class Config:
  """Attributes:
    preset: the DVBPR preset giving the tower and `eval_batch_size` (`paper`: 224x224,
      full CNN-F, K = 50, batches of 256).
    num_items, source_size: the catalog's JPEGs and their side.
    cache_decoded: the image table's decoded cache (`never`: the paper catalogs at 224).
    repeats: A/B pairs measured.
    seed: weights and data.
  """

  preset: str = "paper"
  num_items: int = 512
  source_size: int = 300
  cache_decoded: str = "never"
  repeats: int = 3
  seed: int = 0


SIZES = {
    "tiny": Config(preset="smoke", num_items=128, source_size=48, repeats=2),
    "full": Config(),
}


def run(config: Config) -> common.BenchmarkResult:
  """Measures `embed_items` against the tower on an in-memory batch."""
  started = time.perf_counter()
  preset = config_lib.preset(config.preset).dvbpr
  batch_size = preset.train.eval_batch_size
  keras.utils.set_random_seed(config.seed)
  model = dvbpr.Dvbpr(1, preset.tower).build_for_input()
  embed = tf.function(lambda images: model.item_embeddings(images, False),
                      reduce_retracing=True)
  jpegs = synthetic.product_jpegs(config.num_items, config.source_size, config.seed)
  table = input_pipeline.ImageTable(jpegs, preset.pipeline.image_size, config.cache_decoded)
  first = next(iter(input_pipeline.item_dataset(table, batch_size)))["image"]
  embed(first).numpy()  # Traces for a full batch.
  num_batches = math.ceil(config.num_items / batch_size)

  cpu_seconds = {"pipeline": [], "memory": []}

  def pipeline() -> float:
    seconds, cpu = common.cpu_timed(lambda: evaluation.embed_items(embed, table, batch_size))
    cpu_seconds["pipeline"].append(cpu)
    return config.num_items / seconds

  def in_memory() -> float:
    seconds, cpu = common.cpu_timed(lambda: [embed(first).numpy() for _ in range(num_batches)])
    cpu_seconds["memory"].append(cpu)
    return num_batches * batch_size / seconds

  pipeline_rates, memory_rates = common.interleaved([pipeline, in_memory], config.repeats)
  unit = "images/s"
  size = preset.pipeline.image_size
  row = common.compare(
      NAME, common.Rate("embed_items (decode on demand)", unit, tuple(pipeline_rates)),
      common.Rate("tower on a batch in memory", unit, tuple(memory_rates)), None,
      note=f"{config.preset} tower at {size}x{size}, batches of {batch_size}, "
           f"{config.num_items} items")
  cpu_per_image = {k: float(np.median(v)) / n for (k, v), n in zip(
      cpu_seconds.items(), (config.num_items, num_batches * batch_size))}
  details = {"process_cpu_seconds": cpu_seconds,
             "cpu_time_ratio": cpu_per_image["memory"] / cpu_per_image["pipeline"],
             "image_table_cached": bool(table.cached), "batch_size": batch_size,
             "traces": int(embed.experimental_get_tracing_count())}
  return common.BenchmarkResult(NAME, TITLE, (row,), dataclasses.asdict(config), details,
                                time.perf_counter() - started)
