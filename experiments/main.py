"""The command line: `python -m experiments.main --experiment=... [flags]`.

Flags are read here and nowhere else; they become a `RunSpec` and config objects that the
library takes. Experiments:

  dataset          build a dataset (if needed) and print its statistics (and oracle AUC)
  recommendation   train DVBPR (or --model=<baseline>), evaluate it (exact and sampled AUC),
                   export a SavedModel (DVBPR)
  table3           the paper's Table III: every method, grid-searched, one table
  gan              train the category-conditional LSGAN, sample grids, nearest neighbours
  design           a user's top-3 real and top-3 generated items of a category (Fig. 5)
  tailoring        an item or image moved toward a user's taste (Fig. 6)
  table4           preference, quality, diversity of four image sources (Table IV)
  eta_sweep        the three metrics of synthesis over a range of eta (Figure 3)
  demo             the whole system on the embedded dataset (what `make demo` runs): DVBPR,
                   the GAN, one design figure and one tailoring strip
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging

EXPERIMENTS = ("dataset", "recommendation", "table3", "gan", "design", "tailoring", "table4",
               "eta_sweep", "demo")
MODELS = ("dvbpr", "rand", "poprank", "warp", "bpr_mf", "visrank", "fm", "vbpr")

FLAGS = flags.FLAGS
flags.DEFINE_enum("experiment", "demo", EXPERIMENTS, "What to run.")
flags.DEFINE_string(
    "dataset", None,
    "Dataset name (fashion_mnist_shoppers, amazon_fashion, amazon_women, amazon_men, tradesy, "
    "hm_fashion, fashion_catalog, or builder/config such as fashion_mnist_shoppers/tiny or "
    "hm_fashion/sample_10pct_time). Default: the embedded "
    "fashion_mnist_shoppers in the config that goes with --preset (smoke: tiny, demo: demo, "
    "paper: full).")
flags.DEFINE_enum("preset", "demo", ["smoke", "demo", "paper", "authors"],
                  "smoke: seconds, for tests; demo: minutes on a CPU; paper: the authors' "
                  "settings with the paper's K=50 (for a GPU); authors: the authors' code "
                  "exactly (K=100).")
flags.DEFINE_string("workdir", None, "Where the run writes everything (default: "
                    "runs/<experiment>, runs/recommendation_<model> for a baseline).")
flags.DEFINE_string("data_dir", None,
                    "Where TFDS keeps built datasets (default: $TFDS_DATA_DIR or "
                    "~/tensorflow_datasets).")
flags.DEFINE_string("manual_dir", None,
                    "Where your downloaded source files are (default: "
                    "<data_dir>/downloads/manual).")
flags.DEFINE_integer("seed", 0, "Random seed of the run (sampler, shuffling, evaluation).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "Where training runs: default (one device), mirrored (every GPU of this "
                  "machine), multi_worker (several machines; each runs this command with "
                  "its TF_CONFIG). --batch_size stays the global batch.")
flags.DEFINE_bool("mixed_precision", False,
                  "float16 compute, float32 variables, loss scaling (for GPUs; slower on a "
                  "CPU).")
flags.DEFINE_integer("virtual_cpus", 0,
                     "With --strategy=mirrored: split the CPU into this many logical devices "
                     "and mirror over them (to try the distributed path without GPUs).")
flags.DEFINE_bool("deterministic", False,
                  "Deterministic ops (tf.config.experimental.enable_op_determinism): the same "
                  "command gives the same numbers, also when resumed after an interruption "
                  "(slower on GPUs).")

flags.DEFINE_enum("model", "dvbpr", MODELS,
                  "With --experiment=recommendation: which recommender to train.")
flags.DEFINE_string("features", None,
                    "Pre-trained item features of VisRank, FM and VBPR: category_cnn (a CNN "
                    "trained on the dataset's images to predict the category; the default), "
                    "file:<path> (.npy aligned to item ids, .npz with source_ids, or the VBPR "
                    "binary format), keras:<Application>:<weights file>[:layer].")
flags.DEFINE_float("reg", None, "With --model=<baseline>: the regulariser (default: the "
                   "middle of the preset's grid).")

# Overrides of the preset, one per hyper-parameter (unset: the preset's value).
OVERRIDES = {  # flag -> (dotted config field, type, help)
    "embedding_dim": ("tower.embedding_dim", int, "K, the size of theta_u and Phi(image)."),
    "image_size": (("tower.input_size", "pipeline.image_size"), int,
                   "Side of the tower's square input image (224 in the paper)."),
    "width_multiplier": ("tower.width_multiplier", float,
                         "Scales every CNN-F filter and unit count (1.0 = the paper)."),
    "dropout": ("tower.dropout", float, "Dropout after fc6 and fc7."),
    "learning_rate": ("optimizer.learning_rate", float, "Adam's learning rate."),
    "batch_size": ("pipeline.batch_size", int, "Triplets per step."),
    "epochs": ("train.epochs", int, "Epochs (an epoch = training interactions / batch)."),
    "steps_per_epoch": ("train.steps_per_epoch", int, "Override the epoch length (>0)."),
    "steps_per_loop": ("train.steps_per_loop", int, "Steps per compiled call."),
    "checkpoint_every_steps": ("train.checkpoint_every_steps", int,
                               "Extra checkpoints inside an epoch (0: epoch ends only)."),
    "weight_decay": ("weight_decay", float, "lambda_1, on the tower's kernels."),
    "theta_decay": ("theta_decay", float, "lambda_2, on the batch's theta_u rows."),
    "cache_decoded": ("pipeline.cache_decoded", str,
                      "Keep decoded images in memory: auto, always or never."),
    "run_eagerly": ("train.run_eagerly", bool, "Run the training step eagerly (debugging)."),
}
for _name, (_field, _type, _help) in OVERRIDES.items():
  {int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string,
   bool: flags.DEFINE_bool}[_type](_name, None, _help + " Default: the preset's.")


def _spec():
  from experiments import common  # pylint: disable=g-import-not-at-top
  return common.RunSpec(
      experiment=FLAGS.experiment,
      dataset=FLAGS.dataset or common.default_dataset(FLAGS.preset),
      preset=FLAGS.preset,
      workdir=FLAGS.workdir or os.path.join(
          "runs", FLAGS.experiment + (f"_{FLAGS.model}" if FLAGS.model != "dvbpr" else "")),
      data_dir=FLAGS.data_dir,
      manual_dir=FLAGS.manual_dir,
      seed=FLAGS.seed,
      strategy=FLAGS.strategy,
      mixed_precision=FLAGS.mixed_precision,
      virtual_cpus=FLAGS.virtual_cpus,
  )


def _dvbpr_config(seed: int):
  from dvbpr_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  changes = {"pipeline.seed": seed}
  for name, (fields, _, _) in OVERRIDES.items():
    value = getattr(FLAGS, name)
    if value is not None:
      for field in (fields if isinstance(fields, tuple) else (fields,)):
        changes[field] = value
  return config_lib.override(config_lib.dvbpr_preset(FLAGS.preset), changes)


flags.DEFINE_integer("z_dim", None, "GAN: size of the latent z (authors 256, paper 100).")
flags.DEFINE_integer("sample_every_steps", None,
                     "GAN: steps between checkpoints with a sample grid in TensorBoard.")

flags.DEFINE_integer("user", None, "design/tailoring: the user id.")
flags.DEFINE_string("category", None, "design/tailoring: a category name or index.")
flags.DEFINE_integer("item", None, "tailoring: the catalog item to tailor.")
flags.DEFINE_string("image", None, "tailoring: an image file to tailor (with --category).")
flags.DEFINE_string("dvbpr_workdir", None, "design/tailoring: a trained DVBPR's work dir "
                    "(default: train one in <workdir>/dvbpr).")
flags.DEFINE_string("gan_workdir", None, "design/tailoring: a trained GAN's work dir "
                    "(default: train one in <workdir>/gan).")
flags.DEFINE_integer("num_starts", None, "design: m, the random starts (64).")
flags.DEFINE_integer("design_steps", None, "design: gradient steps (the authors' 10).")
flags.DEFINE_float("eta", None, "design/tailoring: weight of the realism term (1).")
flags.DEFINE_integer("trials", None, "table4: number of trials (smoke 3, demo 100, paper 1000).")
flags.DEFINE_string("quality", "classifier",
                    "table4: quality metric: classifier (a category CNN trained on the "
                    "dataset's real images; not the Inception Score) or "
                    "inception:<InceptionV3 ImageNet weights file> (the Inception Score).")
flags.DEFINE_enum("selection", None, ["softmax", "top"],
                  "design: top-k by softmax sampling (eq. 11) or the k best.")

# GAN overrides: flag -> field of gan_task.GanTrainConfig ("network." for the networks).
GAN_OVERRIDES = {
    "image_size": "network.image_size", "width_multiplier": "network.width_multiplier",
    "z_dim": "network.z_dim", "batch_size": "batch_size", "learning_rate": "learning_rate",
    "epochs": "epochs", "steps_per_epoch": "steps_per_epoch",
    "steps_per_loop": "steps_per_loop", "sample_every_steps": "sample_every_steps",
    "cache_decoded": "cache_decoded",
}


def _gan_config(seed: int):
  from dvbpr_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from dvbpr_tf import gan_task  # pylint: disable=g-import-not-at-top
  changes = {"seed": seed}
  for flag, field in GAN_OVERRIDES.items():
    if getattr(FLAGS, flag) is not None:
      changes[field] = getattr(FLAGS, flag)
  return config_lib.override(gan_task.gan_preset(FLAGS.preset), changes)


def _run_design(spec) -> None:
  from dvbpr_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from dvbpr_tf import design as design_lib  # pylint: disable=g-import-not-at-top
  from experiments import design  # pylint: disable=g-import-not-at-top
  request = design.DesignRequest(
      user=FLAGS.user, category=FLAGS.category, item=FLAGS.item, image=FLAGS.image,
      dvbpr_workdir=FLAGS.dvbpr_workdir, gan_workdir=FLAGS.gan_workdir)
  if spec.experiment in ("design", "table4", "eta_sweep"):
    changes = {"seed": spec.seed}
    for flag, field in (("num_starts", "num_starts"), ("design_steps", "steps"),
                        ("eta", "eta"), ("selection", "selection")):
      if getattr(FLAGS, flag) is not None:
        changes[field] = getattr(FLAGS, flag)
    config = config_lib.override(design_lib.DesignConfig(), changes)
    if spec.experiment == "design":
      design.run_design(spec, _dvbpr_config(spec.seed), _gan_config(spec.seed), config,
                        request)
    elif spec.experiment == "eta_sweep":
      from experiments import eta_sweep  # pylint: disable=g-import-not-at-top
      trials = FLAGS.trials or eta_sweep.TRIALS_FOR_PRESET[FLAGS.preset]
      eta_sweep.run(spec, _dvbpr_config(spec.seed), _gan_config(spec.seed), config, trials,
                    quality=FLAGS.quality, request=request)
    else:
      from experiments import table4  # pylint: disable=g-import-not-at-top
      trials = FLAGS.trials or table4.TRIALS_FOR_PRESET[FLAGS.preset]
      table4.run(spec, _dvbpr_config(spec.seed), _gan_config(spec.seed), config, trials,
                 FLAGS.quality, request)
  else:
    config = design_lib.TailorConfig()
    if FLAGS.eta is not None:
      config = config_lib.override(config, {"eta": FLAGS.eta})
    design.run_tailoring(spec, _dvbpr_config(spec.seed), _gan_config(spec.seed), config,
                         request)


def _baseline_config():
  from dvbpr_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  changes = {}
  if FLAGS.features:
    changes["features"] = FLAGS.features
  for flag, field in (("batch_size", "batch_size"), ("learning_rate", "learning_rate"),
                      ("epochs", "epochs"), ("steps_per_epoch", "steps_per_epoch")):
    if getattr(FLAGS, flag) is not None:
      changes[field] = getattr(FLAGS, flag)
  return config_lib.override(config_lib.baseline_preset(FLAGS.preset), changes)


# Allowed values of the numeric and free-text flags: flag -> (test, what is allowed). Checked
# before anything is imported or written, so a mistyped value costs a second, not a run.
_AT_LEAST_1 = (lambda v: v >= 1, "at least 1")
_AT_LEAST_0 = (lambda v: v >= 0, "at least 0")
_POSITIVE = (lambda v: v > 0 and v != float("inf"), "a finite number > 0")
_NON_NEGATIVE = (lambda v: 0 <= v < float("inf"), "a finite number >= 0")
FLAG_RANGES = {
    "embedding_dim": _AT_LEAST_1, "image_size": _AT_LEAST_1, "epochs": _AT_LEAST_1,
    "batch_size": (lambda v: v >= 1, "positive (at least 1)"),
    "steps_per_epoch": (lambda v: v >= 0, "at least 0 (0: the dataset's epoch length)"),
    "steps_per_loop": _AT_LEAST_1,
    "checkpoint_every_steps": (lambda v: v >= 0, "at least 0 (0: at epoch ends only)"),
    "width_multiplier": _POSITIVE, "learning_rate": _POSITIVE,
    "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "weight_decay": _NON_NEGATIVE, "theta_decay": _NON_NEGATIVE, "reg": _NON_NEGATIVE,
    "cache_decoded": (lambda v: v in ("auto", "always", "never"), "one of auto, always, never"),
    "z_dim": _AT_LEAST_1,
    "sample_every_steps": (lambda v: v >= 0, "at least 0 (0: at epoch ends only)"),
    "user": _AT_LEAST_0, "item": _AT_LEAST_0, "num_starts": _AT_LEAST_1,
    "design_steps": _AT_LEAST_0, "eta": _NON_NEGATIVE, "trials": _AT_LEAST_1,
    "virtual_cpus": _AT_LEAST_0, "seed": _AT_LEAST_0,
}
_LABELS = {"embedding_dim": "--embedding_dim (K)"}


def check_flags() -> None:
  """Refuses a flag value outside its allowed range, naming the flag and the range.

  Raises:
    errors.ConfigError: the first flag out of range.
  """
  from dvbpr_tf import errors  # pylint: disable=g-import-not-at-top
  for name, (allowed, text) in FLAG_RANGES.items():
    value = getattr(FLAGS, name)
    if value is not None and not allowed(value):
      label = _LABELS.get(name, f"--{name}")
      raise errors.ConfigError(f"{label} must be {text}, got {value}")


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from dvbpr_tf import errors  # pylint: disable=g-import-not-at-top
  try:
    check_flags()
  except errors.ConfigError as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    return 2
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if FLAGS.deterministic:
    tf.config.experimental.enable_op_determinism()
  tfds.disable_progress_bar()
  spec = _spec()
  try:
    if spec.experiment == "dataset":
      from experiments import dataset  # pylint: disable=g-import-not-at-top
      dataset.run(spec)
    elif spec.experiment == "gan":
      from experiments import gan  # pylint: disable=g-import-not-at-top
      gan.run(spec, _gan_config(spec.seed))
    elif spec.experiment in ("design", "tailoring", "table4", "eta_sweep"):
      _run_design(spec)
    elif spec.experiment == "table3":
      from experiments import table3  # pylint: disable=g-import-not-at-top
      table3.run(spec, _baseline_config(), _dvbpr_config(spec.seed))
    elif spec.experiment == "recommendation" and FLAGS.model != "dvbpr":
      from experiments import recommendation  # pylint: disable=g-import-not-at-top
      baseline = _baseline_config()
      dim = FLAGS.embedding_dim or baseline.dims[len(baseline.dims) // 2]
      reg = FLAGS.reg if FLAGS.reg is not None else baseline.regs[len(baseline.regs) // 2]
      recommendation.run_baseline(spec, FLAGS.model, baseline, dim, reg)
    elif spec.experiment == "recommendation":
      from experiments import recommendation  # pylint: disable=g-import-not-at-top
      recommendation.run(spec, _dvbpr_config(spec.seed))
    elif spec.experiment == "demo":
      from experiments import demo  # pylint: disable=g-import-not-at-top
      demo.run(spec, _dvbpr_config(spec.seed), _gan_config(spec.seed))
  except errors.EXPECTED_ERRORS as e:
    logging.error("%s", errors.describe(e))
    print(f"error: {errors.describe(e)}", file=sys.stderr, flush=True)
    return 2
  except (OSError, tf.errors.OpError) as e:
    message = errors.write_failure(e)  # A disk or permission error of a write; else a bug.
    if message is None:
      raise
    logging.error("%s", message)
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 2
  except KeyboardInterrupt:
    print("interrupted: what was saved is kept; rerun the same command to resume from the "
          "last checkpoint", file=sys.stderr, flush=True)
    return 130
  return 0


def run():
  app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
  run()
