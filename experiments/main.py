"""The command line: `python -m experiments.main --experiment=... [flags]`.

Flags are read here and nowhere else; they become a `RunSpec` and config objects that the
library takes. Experiments:

  dataset   build a dataset (if needed) and print its statistics (and oracle AUC)
  demo      the main job on the embedded dataset (what `make demo` runs)
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging

EXPERIMENTS = ("dataset", "demo")

FLAGS = flags.FLAGS
flags.DEFINE_enum("experiment", "demo", EXPERIMENTS, "What to run.")
flags.DEFINE_string(
    "dataset", None,
    "Dataset name (fashion_mnist_shoppers, amazon_fashion, amazon_women, amazon_men, tradesy, "
    "or builder/config such as fashion_mnist_shoppers/tiny). Default: the embedded "
    "fashion_mnist_shoppers in the config that goes with --preset (smoke: tiny, demo: demo, "
    "paper: full).")
flags.DEFINE_enum("preset", "demo", ["smoke", "demo", "paper"],
                  "smoke: seconds, for tests; demo: minutes on a CPU; paper: the authors' "
                  "settings (for a GPU).")
flags.DEFINE_string("workdir", None, "Where the run writes everything (default: runs/<experiment>).")
flags.DEFINE_string("data_dir", None,
                    "Where TFDS keeps built datasets (default: $TFDS_DATA_DIR or "
                    "~/tensorflow_datasets).")
flags.DEFINE_string("manual_dir", None,
                    "Where your downloaded source files are (default: "
                    "<data_dir>/downloads/manual).")
flags.DEFINE_integer("seed", 0, "Random seed of the run.")


def _spec():
  from experiments import common  # pylint: disable=g-import-not-at-top
  return common.RunSpec(
      experiment=FLAGS.experiment,
      dataset=FLAGS.dataset or common.default_dataset(FLAGS.preset),
      preset=FLAGS.preset,
      workdir=FLAGS.workdir or os.path.join("runs", FLAGS.experiment),
      data_dir=FLAGS.data_dir,
      manual_dir=FLAGS.manual_dir,
      seed=FLAGS.seed,
  )


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from dvbpr_tf import errors  # pylint: disable=g-import-not-at-top
  tfds.disable_progress_bar()
  spec = _spec()
  try:
    if spec.experiment in ("dataset", "demo"):
      from experiments import dataset  # pylint: disable=g-import-not-at-top
      dataset.run(spec)
  except errors.EXPECTED_ERRORS as e:
    logging.error("%s", e)
    print(f"error: {e}", file=sys.stderr, flush=True)
    return 2
  return 0


def run():
  app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
  run()
