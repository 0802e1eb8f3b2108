"""The command line: `python -m experiments.main --experiment=... [flags]`.

Flags are read here and nowhere else; they become a `RunSpec` and config objects that the
library takes. Experiments:

  dataset          build a dataset (if needed) and print its statistics (and oracle AUC)
  recommendation   train DVBPR (or --model=<baseline>), evaluate it (exact and sampled AUC),
                   export a SavedModel (DVBPR)
  recommend        serve a trained DVBPR: the top-k items of every user (--users, --k) from
                   its SavedModel, written as a resumable CSV (experiments/batch_recommend.py)
  add_items        new products recommendable at once, without retraining: their images
                   (--items) embedded by a trained DVBPR, a new export of the old catalog plus
                   them (experiments/add_items.py)
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
               "eta_sweep", "demo", "recommend", "add_items")
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
flags.DEFINE_float("reg", None, "With --model=<baseline>: the regulariser (default: the "
                   "middle of the preset's grid).")

flags.DEFINE_string(
    "params_override", None,
    "Dotted fields of the configuration tree to change, comma-separated, e.g. "
    "'gan.learning_rate=2e-4,dvbpr.tower.embedding_dim=50' (tuples: values separated by ';'). "
    "See dvbpr_tf/config.py for the tree.")

# Shortcuts for the usual hyper-parameters. Each names the field it sets in each part of the
# tree; a run changes the part(s) its experiment trains, and a shortcut that would change
# two parts at once (--learning_rate with --experiment=demo: DVBPR's and the GAN's) is
# refused with the --params_override that says which.
SHORTCUTS = {  # flag -> (type, help, {part: field or fields})
    "embedding_dim": (int, "K, the size of theta_u and Phi(image).",
                      {"dvbpr": "tower.embedding_dim"}),
    "image_size": (int, "Side of the square input image (224 in the paper).",
                   {"dvbpr": ("tower.input_size", "pipeline.image_size"),
                    "gan": "network.image_size"}),
    "width_multiplier": (float, "Scales every filter and unit count (1.0 = the paper).",
                         {"dvbpr": "tower.width_multiplier", "gan": "network.width_multiplier"}),
    "dropout": (float, "Dropout after fc6 and fc7.", {"dvbpr": "tower.dropout"}),
    "learning_rate": (float, "Adam's learning rate.",
                      {"dvbpr": "optimizer.learning_rate", "gan": "learning_rate",
                       "baselines": "learning_rate"}),
    "batch_size": (int, "Examples per step (the global batch).",
                   {"dvbpr": "pipeline.batch_size", "gan": "batch_size",
                    "baselines": "batch_size"}),
    "epochs": (int, "Epochs.", {"dvbpr": "train.epochs", "gan": "epochs",
                                "baselines": "epochs"}),
    "steps_per_epoch": (int, "Override the epoch length (>0).",
                        {"dvbpr": "train.steps_per_epoch", "gan": "steps_per_epoch",
                         "baselines": "steps_per_epoch"}),
    "steps_per_loop": (int, "Steps per compiled call.",
                       {"dvbpr": "train.steps_per_loop", "gan": "steps_per_loop",
                        "baselines": "steps_per_loop"}),
    "checkpoint_every_steps": (int, "Extra checkpoints inside an epoch (0: epoch ends only).",
                               {"dvbpr": "train.checkpoint_every_steps"}),
    "weight_decay": (float, "lambda_1, on the tower's kernels.", {"dvbpr": "weight_decay"}),
    "theta_decay": (float, "lambda_2, on the batch's theta_u rows.", {"dvbpr": "theta_decay"}),
    "cache_decoded": (str, "Keep decoded images in memory: auto, always or never.",
                      {"dvbpr": "pipeline.cache_decoded", "gan": "cache_decoded"}),
    "run_eagerly": (bool, "Run the training step eagerly (debugging).",
                    {"dvbpr": "train.run_eagerly"}),
    "jit_compile": (bool, "Compile the training step with XLA (for an accelerator).",
                    {"dvbpr": "train.jit_compile", "gan": "jit_compile",
                     "baselines": "jit_compile"}),
    "z_dim": (int, "GAN: size of the latent z (authors 256, paper 100).",
              {"gan": "network.z_dim"}),
    "sample_every_steps": (int, "GAN: steps between checkpoints with a sample grid.",
                           {"gan": "sample_every_steps"}),
    "features": (str, "Pre-trained item features of VisRank, FM and VBPR: category_cnn (a CNN "
                 "trained on the dataset's images to predict the category; the default), "
                 "file:<path> (.npy aligned to item ids, .npz with source_ids, or the VBPR "
                 "binary format), keras:<Application>:<weights file>[:layer].",
                 {"baselines": "features"}),
    "num_starts": (int, "design: m, the random starts (64).",
                   {"design": "synthesis.num_starts"}),
    "design_steps": (int, "design: gradient steps (the authors' 10).",
                     {"design": "synthesis.steps"}),
    "eta": (float, "design/tailoring: weight of the realism term (1).",
            {"design": "synthesis.eta", "tailoring": "tailoring.eta"}),
    "selection": (str, "design: top-k by softmax sampling (eq. 11: softmax) or the k best "
                  "(top).", {"design": "synthesis.selection"}),
    "trials": (int, "table4 / eta_sweep: number of trials (per eta).",
               {"table4": "table4_trials", "eta_sweep": "eta_sweep_trials"}),
    "quality": (str, "table4 / eta_sweep: quality metric: classifier (a category CNN trained "
                "on the dataset's real images; not the Inception Score) or "
                "inception:<InceptionV3 ImageNet weights file> (the Inception Score).",
                {"design": "quality"}),
}
for _name, (_type, _help, _fields) in SHORTCUTS.items():
  {int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string,
   bool: flags.DEFINE_bool}[_type](
       _name, None, f"{_help} Sets {', '.join(sorted(_fields))}'s field. Default: the "
       "preset's.")

# The parts of the tree each experiment trains or runs (a shortcut changes its field there).
# Parts named `table4`, `eta_sweep`, `tailoring` are fields of the `design` part that only
# that experiment uses.
PARTS = {
    "dataset": (), "recommendation": ("dvbpr",), "recommend": ("dvbpr",),
    "add_items": ("dvbpr",),
    "table3": ("baselines", "dvbpr"),
    "gan": ("gan",), "design": ("design", "dvbpr", "gan"),
    "tailoring": ("tailoring", "dvbpr", "gan"), "table4": ("design", "table4", "dvbpr", "gan"),
    "eta_sweep": ("design", "eta_sweep", "dvbpr", "gan"), "demo": ("dvbpr", "gan", "design"),
}
TREE_PART = {"table4": "design", "eta_sweep": "design", "tailoring": "design"}

flags.DEFINE_integer(
    "max_image_pixels", 64_000_000,
    "The most pixels (width x height) an input image may declare: dataset builds skip and "
    "count a larger one, tailoring --image refuses it (a decompression bomb declares "
    "30000x30000 in 100 KB).")
flags.DEFINE_integer("user", None, "design/tailoring: the user id.")
flags.DEFINE_string("category", None, "design/tailoring: a category name or index.")
flags.DEFINE_integer("item", None, "tailoring: the catalog item to tailor.")
flags.DEFINE_string("image", None, "tailoring: an image file to tailor (with --category).")
flags.DEFINE_string("dvbpr_workdir", None, "design/tailoring/recommend/add_items: a trained "
                    "DVBPR's work dir (default: train one in <workdir>/dvbpr).")
flags.DEFINE_string(
    "users", "all",
    "recommend: whose recommendations to write: all, or user ids separated by commas. The ids "
    "are your own user ids (those in the dataset's user_source_ids.txt) when the dataset has "
    "that file (fashion_catalog, hm_fashion), else the dataset's user ids 0..num_users-1; "
    "the CSV's user column holds the same ids. (--experiment=recommend serves a trained DVBPR; "
    "--experiment=recommendation trains one.)")
flags.DEFINE_integer("k", 20, "recommend: items per user (1..the catalog's items); a user "
                     "with fewer unseen items gets them all.")
flags.DEFINE_string(
    "items", None,
    "add_items: the new items, a folder of images (<id>.jpg/.jpeg/.png; the file name without "
    "extension is the item's id) or a CSV with the header id,path,category (path relative to "
    "the CSV's folder or absolute; category one of the dataset's or empty). The new export "
    "(<workdir>/export/dvbpr) keeps the old items' ids 0..N-1; the new items get N.. in the "
    "order listed.")
flags.DEFINE_string("gan_workdir", None, "design/tailoring: a trained GAN's work dir "
                    "(default: train one in <workdir>/gan).")


def _parts() -> tuple[str, ...]:
  parts = PARTS[FLAGS.experiment]
  if FLAGS.experiment == "recommendation" and FLAGS.model != "dvbpr":
    parts = ("baselines",)
  return parts


def shortcut_changes() -> tuple[dict, dict]:
  """The tree's dotted fields the shortcut flags set for this experiment, and, for error
  messages, field -> the flag that set it.

  Raises:
    errors.ConfigError: a shortcut that this experiment has no field for, or that would
      change two parts of the tree.
  """
  from dvbpr_tf.core import errors  # pylint: disable=g-import-not-at-top
  changes, flag_of = {}, {}
  parts = _parts()
  for name, (_, _, fields) in SHORTCUTS.items():
    value = getattr(FLAGS, name)
    if value is None:
      continue
    if name == "embedding_dim" and parts == ("baselines",):
      continue  # The single baseline's K (see main).
    hit = [part for part in parts if part in fields]
    if not hit:
      raise errors.ConfigError(
          f"--{name} has no effect with --experiment={FLAGS.experiment}"
          + (f" (it sets {', '.join(sorted(fields))}'s field)" if fields else ""))
    if len(hit) > 1:
      paths = [f"{TREE_PART.get(p, p)}.{_first(fields[p])}" for p in hit]
      raise errors.ConfigError(
          f"--{name} would change {' and '.join(paths)} with --experiment="
          f"{FLAGS.experiment}; say which, e.g. --params_override={paths[0]}={value}")
    part = hit[0]
    targets = fields[part] if isinstance(fields[part], tuple) else (fields[part],)
    for field in targets:
      path = f"{TREE_PART.get(part, part)}.{field}"
      changes[path] = value
      flag_of[path] = f"--{name}"
  return changes, flag_of


def _flag_for_path(path: str) -> str:
  """The flag that chose `path`: --data_dir or --manual_dir when it lies under them (the
  dataset builds write there), else --workdir."""
  data_dir = FLAGS.data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser(
      "~/tensorflow_datasets")
  for flag, root in (("--manual_dir", FLAGS.manual_dir), ("--data_dir", data_dir)):
    if root and os.path.abspath(path).startswith(os.path.abspath(root)):
      return flag
  return "--workdir"


def _first(fields):
  return fields[0] if isinstance(fields, tuple) else fields


def experiment_config():
  """The resolved tree: the preset, the run's seed everywhere, --dataset, the shortcuts,
  --params_override (last, so it wins). Every value is checked by the tree's own checks.

  Raises:
    errors.ConfigError: a value out of range (naming the flag that set it), an unknown
      field, a shortcut that does not apply.
  """
  from dvbpr_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from dvbpr_tf.core import errors  # pylint: disable=g-import-not-at-top
  tree = config_lib.preset(FLAGS.preset)
  changes, flag_of = shortcut_changes()
  changes = {"seed": FLAGS.seed, **({"dataset": FLAGS.dataset} if FLAGS.dataset else {}),
             **changes, **config_lib.parse_overrides(FLAGS.params_override)}
  try:
    tree = config_lib.with_seed(tree, changes.pop("seed"))
    return config_lib.override(tree, changes)
  except errors.ConfigError as e:
    flag = flag_of.get(e.field or "")
    if flag is None and (e.field or "").rpartition(".")[2] == "seed":
      flag = "--seed"
    if flag and e.requirement:
      raise errors.ConfigError(f"{flag} ({e.field}) {e.requirement}", field=e.field,
                               requirement=e.requirement) from None
    raise


def _spec(tree):
  from dvbpr_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from dvbpr_tf.core import checks  # pylint: disable=g-import-not-at-top
  from experiments import common  # pylint: disable=g-import-not-at-top
  checks.integer("--virtual_cpus", FLAGS.virtual_cpus, 0, 1024)
  checks.integer("--max_image_pixels", FLAGS.max_image_pixels, 1, 2**40)
  from dvbpr_tf_datasets.common import images  # pylint: disable=g-import-not-at-top
  images.set_max_pixels(FLAGS.max_image_pixels)
  return common.RunSpec(
      experiment=FLAGS.experiment,
      dataset=tree.dataset,
      preset=FLAGS.preset,
      workdir=FLAGS.workdir or os.path.join(
          "runs", FLAGS.experiment + (f"_{FLAGS.model}" if FLAGS.model != "dvbpr" else "")),
      data_dir=FLAGS.data_dir,
      manual_dir=FLAGS.manual_dir,
      seed=FLAGS.seed,
      strategy=FLAGS.strategy,
      mixed_precision=FLAGS.mixed_precision,
      virtual_cpus=FLAGS.virtual_cpus,
      tree=config_lib.as_dict(tree),
  )


def _request():
  """What design, tailoring, recommend and add_items were asked for (ids and items checked
  against the data later)."""
  from dvbpr_tf.core import checks  # pylint: disable=g-import-not-at-top
  from dvbpr_tf.core import errors  # pylint: disable=g-import-not-at-top
  for name in ("user", "item"):
    if getattr(FLAGS, name) is not None:
      checks.integer(f"--{name}", getattr(FLAGS, name), 0)
  if FLAGS.experiment == "recommend":
    checks.integer("--k", FLAGS.k, 1)
    if not (FLAGS.users or "").strip():
      raise errors.ConfigError("--users must be 'all' or user ids separated by commas, e.g. "
                               "--users=0,5,17")
    from experiments import batch_recommend  # pylint: disable=g-import-not-at-top
    return batch_recommend.BatchRequest(users=FLAGS.users, k=FLAGS.k,
                                        dvbpr_workdir=FLAGS.dvbpr_workdir)
  if FLAGS.experiment == "add_items":
    if not (FLAGS.items or "").strip():
      raise errors.ConfigError("--experiment=add_items needs --items: a folder of images or a "
                               "CSV with the header id,path,category")
    from experiments import add_items  # pylint: disable=g-import-not-at-top
    return add_items.AddItemsRequest(items=FLAGS.items, dvbpr_workdir=FLAGS.dvbpr_workdir)
  if FLAGS.experiment not in ("design", "tailoring", "table4", "eta_sweep"):
    return None
  from experiments import design  # pylint: disable=g-import-not-at-top
  return design.DesignRequest(
      user=FLAGS.user, category=FLAGS.category, item=FLAGS.item, image=FLAGS.image,
      dvbpr_workdir=FLAGS.dvbpr_workdir, gan_workdir=FLAGS.gan_workdir)


def _run(spec, tree, request) -> None:
  """Runs the experiment the flags name with the resolved tree."""
  experiment = spec.experiment
  if experiment == "dataset":
    from experiments import dataset  # pylint: disable=g-import-not-at-top
    dataset.run(spec)
  elif experiment == "gan":
    from experiments import gan  # pylint: disable=g-import-not-at-top
    gan.run(spec, tree.gan)
  elif experiment == "design":
    from experiments import design  # pylint: disable=g-import-not-at-top
    design.run_design(spec, tree.dvbpr, tree.gan, tree.design.synthesis, request)
  elif experiment == "tailoring":
    from experiments import design  # pylint: disable=g-import-not-at-top
    design.run_tailoring(spec, tree.dvbpr, tree.gan, tree.design.tailoring, request)
  elif experiment == "table4":
    from experiments import table4  # pylint: disable=g-import-not-at-top
    table4.run(spec, tree.dvbpr, tree.gan, tree.design.synthesis, tree.design.table4_trials,
               tree.design.quality, request)
  elif experiment == "eta_sweep":
    from experiments import eta_sweep  # pylint: disable=g-import-not-at-top
    eta_sweep.run(spec, tree.dvbpr, tree.gan, tree.design.synthesis,
                  tree.design.eta_sweep_trials, etas=tree.design.etas,
                  quality=tree.design.quality, request=request)
  elif experiment == "table3":
    from experiments import table3  # pylint: disable=g-import-not-at-top
    table3.run(spec, tree.baselines, tree.dvbpr)
  elif experiment == "recommendation" and FLAGS.model != "dvbpr":
    from experiments import recommendation  # pylint: disable=g-import-not-at-top
    baseline = tree.baselines
    dim = FLAGS.embedding_dim or baseline.dims[len(baseline.dims) // 2]
    reg = FLAGS.reg if FLAGS.reg is not None else baseline.regs[len(baseline.regs) // 2]
    recommendation.run_baseline(spec, FLAGS.model, baseline, dim, reg)
  elif experiment == "recommendation":
    from experiments import recommendation  # pylint: disable=g-import-not-at-top
    recommendation.run(spec, tree.dvbpr)
  elif experiment == "recommend":
    from experiments import batch_recommend  # pylint: disable=g-import-not-at-top
    batch_recommend.run(spec, tree.dvbpr, request)
  elif experiment == "add_items":
    from experiments import add_items  # pylint: disable=g-import-not-at-top
    add_items.run(spec, tree.dvbpr, request)
  elif experiment == "demo":
    from experiments import demo  # pylint: disable=g-import-not-at-top
    demo.run(spec, tree.dvbpr, tree.gan, tree.design)


def _refuse(message) -> int:
  """Logs and prints the one `error:` line of a failure the user can fix; the exit code 2."""
  logging.error("%s", message)
  print(f"error: {message}", file=sys.stderr, flush=True)
  return 2


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from dvbpr_tf.core import errors  # pylint: disable=g-import-not-at-top
  try:
    tree = experiment_config()  # Checked before anything is written.
    spec, request = _spec(tree), _request()
  except errors.ConfigError as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    return 2
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if FLAGS.deterministic:
    tf.config.experimental.enable_op_determinism()
  tfds.disable_progress_bar()
  from dvbpr_tf.training import preemption  # pylint: disable=g-import-not-at-top
  try:
    # SIGTERM (a scheduler's stop) raises preemption.Stopped, as SIGINT raises
    # KeyboardInterrupt; a training loop stops at a checkpoint instead (TrainingStopped).
    with preemption.raise_on_sigterm():
      # The run's strategy first, before TensorFlow touches a device: virtual CPUs and a
      # multi-worker cluster can only be set up then (it is made once; later calls reuse it).
      spec.make_strategy()
      _run(spec, tree, request)
  except preemption.Stopped as e:  # One line: where it stopped and how to resume.
    print(e, file=sys.stderr, flush=True)
    return e.exit_code
  except errors.EXPECTED_ERRORS as e:
    # A failed write names the flag that chose its path (--data_dir for a dataset's lock).
    return _refuse(errors.write_failure(e, flag_for=_flag_for_path)
                   if isinstance(e, errors.WriteError) else errors.describe(e))
  except (OSError, tf.errors.OpError, RuntimeError) as e:
    # A disk or permission error of a write (TFDS wraps some in a RuntimeError); else a bug.
    message = errors.write_failure(e, flag_for=_flag_for_path)
    if message is None:
      raise
    return _refuse(message)
  except KeyboardInterrupt:
    print("interrupted: what was saved is kept; rerun the same command to resume from the "
          "last checkpoint", file=sys.stderr, flush=True)
    return 130
  return 0


def run():
  app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
  run()
