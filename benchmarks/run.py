"""Runs the benchmarks, prints the table and writes the JSON.

    python -m benchmarks.run [--only=input_pipeline,evaluation] [--size=tiny|full]
                             [--output=runs/benchmarks/full.json]

Flags are read in `main` only; `run_benchmarks` and `report` take plain arguments.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging

from benchmarks import common  # pylint: disable=g-import-not-at-top
from benchmarks import design_bench
from benchmarks import evaluation_bench
from benchmarks import input_pipeline_bench
from benchmarks import item_embeddings_bench
from benchmarks import training_feed_bench

BENCHMARKS = {
    input_pipeline_bench.NAME: input_pipeline_bench,
    training_feed_bench.NAME: training_feed_bench,
    evaluation_bench.NAME: evaluation_bench,
    design_bench.NAME: design_bench,
    item_embeddings_bench.NAME: item_embeddings_bench,
}

FLAGS = flags.FLAGS
flags.DEFINE_list("only", [], f"Benchmarks to run (default: all): {', '.join(BENCHMARKS)}.")
flags.DEFINE_enum("size", "full", list(common.SIZES),
                  "tiny: seconds (what the tests run); full: the sizes of benchmarks/README.md.")
flags.DEFINE_string("output", None, "Where the JSON goes (default: runs/benchmarks/<size>.json).")


def resolve(names: Sequence[str]) -> list[str]:
  """The benchmarks to run, in the table's order; all when `names` is empty."""
  unknown = [n for n in names if n not in BENCHMARKS]
  if unknown:
    raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}; known: "
                     f"{', '.join(BENCHMARKS)}")
  return [n for n in BENCHMARKS if not names or n in names]


def run_benchmarks(names: Sequence[str], size: str) -> list[common.BenchmarkResult]:
  """Runs the named benchmarks (all when empty) at `size`, one after the other."""
  common.check_size(size)
  results = []
  for name in resolve(names):
    module = BENCHMARKS[name]
    logging.info("benchmark %s (%s) ...", name, size)
    result = module.run(module.SIZES[size])
    logging.info("benchmark %s done in %.1f s", name, result.seconds)
    results.append(result)
  return results


def report(results: Sequence[common.BenchmarkResult], size: str, machine: dict,
           command: str, seconds: float) -> dict:
  """The JSON document: machine, command, size and every benchmark's rows and raw rates."""
  return {
      "size": size,
      "command": command,
      "machine": machine,
      "seconds": seconds,
      "benchmarks": [r.as_dict() for r in results],
  }


def write_json(document: dict, path: str | pathlib.Path) -> pathlib.Path:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  temporary = path.with_name(path.name + ".tmp")
  temporary.write_text(json.dumps(document, indent=2, default=float) + "\n")
  temporary.replace(path)
  return path


def main(argv: Sequence[str]) -> None:
  del argv
  names = resolve(FLAGS.only)
  output = FLAGS.output or f"runs/benchmarks/{FLAGS.size}.json"
  machine = common.machine_info()
  started = time.perf_counter()
  results = run_benchmarks(names, FLAGS.size)
  machine["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
  command = " ".join(["python -m benchmarks.run"] + sys.argv[1:])
  document = report(results, FLAGS.size, machine, command, time.perf_counter() - started)
  path = write_json(document, output)
  print(common.table(results))
  print()
  for result in results:
    for row in result.comparisons:
      if row.note:
        print(f"{row.name}: {row.note}")
  print(f"\n{machine['cpu_model']}, {machine['usable_cpus']} CPUs, TF {machine['tensorflow']}; "
        f"{document['seconds']:.0f} s; JSON: {path}")


if __name__ == "__main__":
  app.run(main)
