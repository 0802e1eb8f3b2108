"""Training steps on whatever device TensorFlow finds: DVBPR and the GAN, batch in memory.

    python -m benchmarks.device_bench --model=dvbpr --precision=float32|mixed|xla \
        [--preset=paper] [--steps=20] [--output=FILE.json]
    python -m benchmarks.device_bench --model=gan --preset=authors [...]

One process per measurement (the mixed-precision policy is global to a process):
`benchmarks/device.sh` runs them in turn with the other benchmarks. Each takes one real batch
of the model's own input pipeline (synthetic product JPEGs, `benchmarks/synthetic.py`), holds
it in memory, traces and warms up the compiled loop (`for _ in tf.range(n)`, as the Trainer
runs it), then times `--steps` steps three times and reports the median rate: the step's
compute alone, what a host that feeds it fast enough would see.
"""

from __future__ import annotations

import json
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from benchmarks import synthetic
from dvbpr_tf import config as config_lib
from dvbpr_tf.training import dvbpr_task
from dvbpr_tf.training import gan_task

PRECISIONS = ("float32", "mixed", "xla")


def measure(model: str, preset: str, precision: str, steps: int, num_items: int = 256,
            num_users: int = 128, repeats: int = 3) -> dict:
  """{model, preset, precision, device, batch, rate (median), rates, unit, first_call_s}."""
  if precision not in PRECISIONS:
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
  keras.mixed_precision.set_global_policy(
      "mixed_float16" if precision == "mixed" else "float32")
  tree = config_lib.preset(preset)
  jpegs = synthetic.product_jpegs(num_items, 300, 0)
  catalog = synthetic.catalog(jpegs, num_users)
  if model == "dvbpr":
    task = dvbpr_task.DvbprTask(catalog, config_lib.override(
        tree.dvbpr, {"pipeline.cache_decoded": "never"}))
  elif model == "gan":
    task = gan_task.GanTask(catalog, tree.gan)
  else:
    raise ValueError(f"model must be 'dvbpr' or 'gan', got {model!r}")
  step = tf.function(task.train_step, jit_compile=True) if precision == "xla" else \
      task.train_step

  @tf.function
  def loop(iterator, num_steps):
    total = tf.constant(0.0)
    for _ in tf.range(num_steps):
      total += tf.cast(step(next(iterator))[task.metric_names[0]], tf.float32)
    return total

  batch = next(iter(task.dataset(0)))
  iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
  tick = time.perf_counter()
  loop(iterator, tf.constant(2, tf.int64)).numpy()
  first = time.perf_counter() - tick
  rates = []
  for _ in range(repeats):
    tick = time.perf_counter()
    loop(iterator, tf.constant(steps, tf.int64)).numpy()
    rates.append(steps * task.examples_per_step / (time.perf_counter() - tick))
  gpus = tf.config.list_physical_devices("GPU")
  device = (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
            if gpus else "CPU")
  return {"model": model, "preset": preset, "precision": precision, "device": device,
          "batch": task.examples_per_step, "unit": f"{task.example_unit}/s",
          "rate": float(np.median(rates)), "rates": rates, "steps": steps,
          "first_call_seconds": first}


FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_enum("model", "dvbpr", ["dvbpr", "gan"], "Which training step.")
  flags.DEFINE_string("preset", "paper", "The configuration preset (dvbpr: paper; gan: authors).")
  flags.DEFINE_enum("precision", "float32", list(PRECISIONS), "float32, mixed (mixed_float16) "
                    "or xla (float32 under jit_compile).")
  flags.DEFINE_integer("steps", 20, "Timed steps per repeat.")
  flags.DEFINE_string("output", None, "Where the JSON goes (default: stdout only).")


def main(argv) -> None:
  del argv
  result = measure(FLAGS.model, FLAGS.preset, FLAGS.precision, FLAGS.steps)
  text = json.dumps(result, indent=2)
  print(text)
  if FLAGS.output:
    path = pathlib.Path(FLAGS.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


if __name__ == "__main__":
  define_flags()
  app.run(main)
