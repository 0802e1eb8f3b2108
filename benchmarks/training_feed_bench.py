"""Benchmark 2: DVBPR training pairs/s fed by the real pipeline against the compute-only bound.

A: `DvbprTask.train_step` in a compiled loop (`for _ in tf.range(n)`, as the `Trainer` runs
   it) fed by `DvbprTask.dataset`, the project's training pipeline, with JPEGs decoded on
   demand: at 224x224 the decoded Amazon Fashion catalog (35 GB) exceeds the image table's
   budget, so this is how the paper preset trains. Decoding runs on the same CPU cores as the
   step.
B: the same compiled loop fed by one real batch held in memory
   (`tf.data.Dataset.from_tensors(batch).repeat()`): the step's compute alone.

Ratio A / B (goal >= 0.9: the pipeline does not starve the model). Each A repeat starts a
fresh pipeline and takes one batch before timing starts, so that the timed steps include the
decoding of the batches they consume (a pipeline kept alive across repeats would fill its
prefetch buffer while B runs). At the paper preset one step takes tens of seconds on 2 CPU
cores, so the full size times only a few steps per repeat.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import tensorflow as tf

from benchmarks import common
from benchmarks import synthetic
from dvbpr_tf import config as config_lib
from dvbpr_tf.training import dvbpr_task

NAME = "training_feed"
TITLE = "Training feed: DVBPR pairs/s, real pipeline vs batches already in memory"
GOAL_RATIO = 0.9


@dataclasses.dataclass(frozen=True)
class Config:
  """Attributes:
    preset: the DVBPR preset (`paper`: 224x224, full CNN-F, batch 128).
    num_items, source_size: the catalog's JPEGs and their side.
    num_users: users of the random interactions.
    cache_decoded: the image table's decoded cache (`never`: the paper catalogs at 224).
    steps: timed steps per repeat.
    repeats: A/B pairs measured.
    seed: data seed.
  """

  preset: str = "paper"
  num_items: int = 512
  source_size: int = 300
  num_users: int = 256
  cache_decoded: str = "never"
  steps: int = 3
  repeats: int = 3
  seed: int = 0


SIZES = {
    "tiny": Config(preset="smoke", num_items=64, source_size=48, num_users=32, repeats=2),
    "full": Config(),
}


def run(config: Config) -> common.BenchmarkResult:
  """Measures the training step fed by the pipeline and by memory."""
  started = time.perf_counter()
  model_config = config_lib.override(config_lib.preset(config.preset).dvbpr,
                                     {"pipeline.cache_decoded": config.cache_decoded,
                                      "seed": config.seed})
  jpegs = synthetic.product_jpegs(config.num_items, config.source_size, config.seed)
  catalog = synthetic.catalog(jpegs, config.num_users, seed=config.seed)
  task = dvbpr_task.DvbprTask(catalog, model_config)

  @tf.function
  def loop(iterator, num_steps):
    total = tf.constant(0.0)
    for _ in tf.range(num_steps):
      total += task.train_step(next(iterator))["loss"]
    return total

  batch = next(iter(task.dataset(0)))
  in_memory = iter(tf.data.Dataset.from_tensors(batch).repeat())
  steps = tf.constant(config.steps, tf.int64)
  tick = time.perf_counter()
  loop(in_memory, tf.constant(1, tf.int64)).numpy()  # Traces and builds.
  first_step_seconds = time.perf_counter() - tick
  pairs = config.steps * task.examples_per_step

  cpu_seconds = {"pipeline": [], "memory": []}

  def fed_by_pipeline() -> float:
    iterator = iter(task.dataset(0))
    next(iterator)  # Starts the pipeline's workers; they decode ahead from here on.
    seconds, cpu = common.cpu_timed(lambda: loop(iterator, steps).numpy())
    del iterator
    cpu_seconds["pipeline"].append(cpu)
    return pairs / seconds

  def fed_from_memory() -> float:
    seconds, cpu = common.cpu_timed(lambda: loop(in_memory, steps).numpy())
    cpu_seconds["memory"].append(cpu)
    return pairs / seconds

  pipeline_rates, memory_rates = common.interleaved([fed_by_pipeline, fed_from_memory],
                                                    config.repeats)
  unit = "pairs/s"
  row = common.compare(
      NAME, common.Rate("step fed by tf.data (decode on demand)", unit, tuple(pipeline_rates)),
      common.Rate("same step, batch in memory", unit, tuple(memory_rates)), GOAL_RATIO,
      note=f"{config.preset} preset, batch {model_config.pipeline.batch_size}, "
           f"{model_config.pipeline.image_size}x{model_config.pipeline.image_size}")
  details = {
      "process_cpu_seconds": cpu_seconds,
      # CPU per pair, memory-fed over pipeline-fed: the ratio two idle cores would give if
      # decoding only added its own CPU time (no stalls of the step's threads).
      "cpu_time_ratio": float(np.median(cpu_seconds["memory"])
                              / np.median(cpu_seconds["pipeline"])),
      "first_step_seconds_with_tracing": first_step_seconds,
      "traces": int(loop.experimental_get_tracing_count()),
      "image_table_cached": bool(task.table.cached),
      "batch_size": model_config.pipeline.batch_size,
      "image_size": model_config.pipeline.image_size,
  }
  return common.BenchmarkResult(NAME, TITLE, (row,), dataclasses.asdict(config), details,
                                time.perf_counter() - started)
