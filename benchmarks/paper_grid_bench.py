"""The paper's Table III grid at the paper's scale: how long the baselines take on 2 cores.

    python -m benchmarks.paper_grid_bench [--size=full|tiny] [--methods=rand,poprank,...]
        [--output=runs/benchmarks/paper_grid.json]

A synthetic catalog with Amazon Fashion's sizes (64,583 users, 234,892 items, 513,367
interactions; `synthetic.long_tailed_split`: Zipf item popularity, every item bought once or
more, log-normal user activity, leave-one-out split) and, for FM and VBPR, a 4,096-d
non-negative feature matrix as VBPR's CNN features (`synthetic.item_features`; no images).
Each grid-searched baseline runs the paper's grid, reg in {0, 0.001, 0.01, 0.1, 1, 10, 30} x
K in {10, 30, 50}, up to 20 epochs with early stopping (patience 5), each epoch judged on the
exact validation AUC of a fixed, seeded subset of validation users (`selection_users`), the
winner then evaluated on every user (exact AUC all and cold, top-K, sampled AUC); RAND and
PopRank are evaluated once. Times per method include everything (building, tracing,
training, checkpoints, evaluation).

FM and VBPR over 4,096-d features are bound by arithmetic: a pair costs about
4 x F x K multiply-adds (f_i V for its two items, and the gradient of V from each), 63 G per
epoch of 384,201 pairs at K = 10, 79 T over the grid, so their grid cannot fit in 30 minutes
on 2 cores. By default
(`feature_models="probe"`) the benchmark trains each K for `probe_steps` steps, measures the
trainer's pairs/s and extrapolates the grid's training time at 20 epochs per point;
`--feature_models=grid` runs their whole grid.

VisRank is not run: its score for one user needs the distance from each of the user's
training items to every item, |I_u^+| x num_items x F multiply-adds; the benchmark times it on
a few users and reports the operation count and the extrapolated time of one evaluation.

Flags are read in `main` only; `run` takes a `Config`.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import pathlib
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import keras
import numpy as np
import tensorflow as tf

from benchmarks import synthetic
from dvbpr_tf import config as config_lib
from dvbpr_tf.baselines import recommenders
from dvbpr_tf.baselines import visrank
from dvbpr_tf.core import files
from dvbpr_tf.core import workdir as workdir_lib
from dvbpr_tf.training import pairwise_task

GRID_SEARCHED = ("bpr_mf", "warp", "fm", "vbpr")
FEATURE_MODELS = ("fm", "vbpr")
METHODS = ("rand", "poprank", *GRID_SEARCHED)
GOAL_SECONDS = 30 * 60


@dataclasses.dataclass(frozen=True)
class Config:
  """Attributes:
    num_users, num_items, num_interactions: the catalog's sizes.
    feature_dim: the items' feature dimension (FM, VBPR, VisRank).
    regs, dims, epochs, patience: the grid and each point's training.
    selection_users: validation users that judge the epochs and grid points.
    methods: which baselines run.
    visrank_users: users VisRank is timed on.
    feature_models: "grid" (FM and VBPR run the grid) or "probe" (timed, extrapolated).
    probe_steps: the steps each K of a probed feature model trains.
    jit_compile: XLA for the training steps (as measured; off at the tiny size, for speed).
    seed: data and training seed.
  """

  num_users: int = synthetic.AMAZON_FASHION["num_users"]
  num_items: int = synthetic.AMAZON_FASHION["num_items"]
  num_interactions: int = synthetic.AMAZON_FASHION["num_interactions"]
  feature_dim: int = 4096
  regs: tuple[float, ...] = (0.0, 0.001, 0.01, 0.1, 1.0, 10.0, 30.0)
  dims: tuple[int, ...] = (10, 30, 50)
  epochs: int = 20
  patience: int = 5
  selection_users: int = 5000
  methods: tuple[str, ...] = METHODS
  visrank_users: int = 8
  feature_models: str = "probe"
  probe_steps: int = 1000
  jit_compile: bool = True
  seed: int = 0


SIZES = {
    "tiny": Config(num_users=60, num_items=120, num_interactions=600, feature_dim=16,
                   regs=(0.0, 0.1), dims=(4,), epochs=2, patience=1, selection_users=20,
                   visrank_users=4, probe_steps=6, jit_compile=False),
    "full": Config(),
}


def baseline_config(config: Config) -> config_lib.BaselineConfig:
  """The training of every grid point: the `paper` preset's (BPR-MF and WARP by fused SGD
  on batches of 2,048, FM and VBPR by lazy Adam on 128) with XLA, the grid and the selection
  subset."""
  return dataclasses.replace(config_lib.preset("paper").baselines, regs=config.regs,
                             dims=config.dims, epochs=config.epochs, patience=config.patience,
                             bootstrap_resamples=0, selection_users=config.selection_users,
                             jit_compile=config.jit_compile)


def visrank_cost(catalog, features: np.ndarray, num_users: int, seed: int) -> dict:
  """VisRank's cost of one exact evaluation: operation count and time measured on
  `num_users` random users, extrapolated to every evaluated user."""
  users, items = catalog.interactions("train")
  scorer = visrank.VisRankScorer(features, users, items)
  distinct = np.unique(users * catalog.num_items + items) // catalog.num_items
  per_user = np.bincount(distinct, minlength=catalog.num_users)
  rng = np.random.default_rng(seed)
  sample = rng.choice(catalog.num_users, num_users, replace=False)
  tick = time.perf_counter()
  scorer.score_rows(sample)
  seconds = time.perf_counter() - tick
  # Two evaluated splits, every user once each: sum_u |I_u^+| distance rows per split.
  rows = 2 * int(per_user.sum())
  multiply_adds = rows * catalog.num_items * features.shape[1]
  per_row = seconds / max(1, int(per_user[sample].sum()))
  return {"distance_rows": rows, "multiply_adds": multiply_adds,
          "timed_users": num_users, "timed_seconds": seconds,
          "extrapolated_seconds": per_row * rows,
          "measured_multiply_adds_per_second": int(per_user[sample].sum()) * catalog.num_items
          * features.shape[1] / max(seconds, 1e-9)}


def free_models() -> None:
  """Drops the models built so far (Keras' graph state, then the objects holding them)."""
  keras.backend.clear_session()
  gc.collect()


def feature_model_probe(method: str, catalog, features: np.ndarray, config: Config,
                        folder) -> dict:
  """FM or VBPR timed, not grid-searched: each K trains `probe_steps` steps (reg
  `regs[1]`), its pairs/s is the trainer's median rate; the grid's training time is
  extrapolated at `epochs` epochs for each of the `regs`."""
  baseline = dataclasses.replace(baseline_config(config), epochs=1,
                                 steps_per_epoch=config.probe_steps, patience=0,
                                 steps_per_loop=max(1, min(50, config.probe_steps // 3)))
  pairs_per_epoch = len(catalog.interactions("train")[0])
  rates, extrapolated = {}, 0.0
  for dim in config.dims:
    point = workdir_lib.Workdir(pathlib.Path(folder) / method / f"probe_K{dim}")
    record = pairwise_task.train_pairwise(method, catalog, features, baseline, dim,
                                          config.regs[min(1, len(config.regs) - 1)], point,
                                          config.seed, evaluate_best=False)
    rates[dim] = record["train_pairs_per_second"]
    free_models()
    extrapolated += len(config.regs) * config.epochs * pairs_per_epoch / rates[dim]
  return {"probed": True, "probe_steps": config.probe_steps,
          "train_pairs_per_second_by_K": rates,
          "multiply_adds_per_epoch_by_K": {
              dim: 4 * features.shape[1] * dim * pairs_per_epoch for dim in config.dims},
          "extrapolated_grid_training_seconds": extrapolated}


def run(config: Config, folder, on_method=None) -> dict:
  """Every method of `config.methods`; {"methods": {name: record}, "total_seconds", ...}.
  `on_method(records)` is called after each method (to keep what finished if a later one
  fails: at Amazon Fashion's size a feature model holds its own 3.85 GB copy of the
  features)."""
  started = time.time()
  catalog = synthetic.interaction_catalog(config.num_users, config.num_items,
                                          config.num_interactions, config.seed)
  needs_features = any(m in recommenders.NEEDS_FEATURES for m in config.methods)
  features = (synthetic.item_features(config.num_items, config.feature_dim, config.seed)
              if needs_features or config.visrank_users else None)
  # One copy for every feature model (3.85 GB at Amazon Fashion's size); NumPy reads it
  # without a copy (VisRank).
  features = None if features is None else tf.constant(features)
  data_seconds = time.time() - started
  baseline = baseline_config(config)
  records = {}
  for method in config.methods:
    tick = time.time()
    logging.info("paper grid: %s", method)
    method_features = features if method in recommenders.NEEDS_FEATURES else None
    if method in FEATURE_MODELS and config.feature_models == "probe":
      record = feature_model_probe(method, catalog, method_features, config, folder)
    elif method in GRID_SEARCHED:
      record = pairwise_task.grid_search(method, catalog, method_features, baseline,
                                         pathlib.Path(folder) / method, config.seed)
      grid = record.pop("grid")
      record["points"] = len(grid)
      record["epochs_all_points"] = sum(g.get("epochs_trained") or 0 for g in grid)
    else:
      record = pairwise_task.evaluate_scorer(method, catalog, method_features, baseline,
                                             files_dir(folder, method), config.seed)
    record = {k: v for k, v in record.items() if not k.startswith("per_user")}
    record["seconds"] = time.time() - tick
    records[method] = record
    free_models()
    if on_method is not None:
      on_method(records)
    logging.info("paper grid: %s done in %.0f s (test AUC %.4f)", method, record["seconds"],
                 record.get("auc_test") or float("nan"))
  document = {"config": dataclasses.asdict(config), "data_seconds": data_seconds,
              "methods": records,
              "total_seconds": time.time() - started,
              "goal_seconds": GOAL_SECONDS}
  if config.visrank_users and features is not None:
    document["visrank"] = visrank_cost(catalog, features.numpy(), config.visrank_users,
                                       config.seed)
  # A probed method's grid did not run: its extrapolated training time counts towards the goal.
  document["total_with_extrapolated_seconds"] = document["total_seconds"] + sum(
      r.get("extrapolated_grid_training_seconds", 0.0) for r in records.values())
  document["within_goal"] = document["total_with_extrapolated_seconds"] <= GOAL_SECONDS
  return document


def files_dir(folder, method: str) -> pathlib.Path:
  path = pathlib.Path(folder) / method
  path.mkdir(parents=True, exist_ok=True)
  return path


def markdown(document: dict) -> str:
  out = ["| method | seconds | grid points | epochs (all points) | chosen | test AUC all / cold |"
         " training pairs/s (chosen) |", "|---|---|---|---|---|---|---|"]
  probed = {}
  for name, r in document["methods"].items():
    if r.get("probed"):
      probed[name] = r
      continue
    params = r.get("params") or {}
    out.append(f"| {name} | {r['seconds']:.0f} | {r.get('points', '-')} | "
               f"{r.get('epochs_all_points', '-')} | "
               f"{', '.join(f'{k}={v:g}' for k, v in params.items()) or '-'} | "
               f"{r.get('auc_test') or float('nan'):.4f} / "
               f"{r.get('auc_test_cold') or float('nan'):.4f} | "
               f"{r.get('train_pairs_per_second') or 0:,.0f} |")
  total, with_probed = document["total_seconds"], document["total_with_extrapolated_seconds"]
  probed_text = (f"; with the probed grids' extrapolated training {with_probed:.0f} s"
                 if with_probed > total else "")
  out.append(f"\nTotal {total:.0f} s (data {document['data_seconds']:.0f} s{probed_text}; "
             f"goal {document['goal_seconds']} s: "
             f"{'met' if document['within_goal'] else 'not met'}).")
  for name, r in probed.items():
    rates = ", ".join(f"K={k}: {v:,.0f}" for k, v in r["train_pairs_per_second_by_K"].items())
    out.append(f"{name}, timed on {r['probe_steps']} steps per K ({r['seconds']:.0f} s): "
               f"training pairs/s {rates}; the grid's training at this rate: "
               f"{r['extrapolated_grid_training_seconds'] / 60:.0f} min.")
  if "visrank" in document:
    v = document["visrank"]
    out.append(f"VisRank, one exact evaluation: {v['multiply_adds']:.3g} multiply-adds "
               f"({v['distance_rows']:,} distance rows x items x features); timed on "
               f"{v['timed_users']} users at {v['measured_multiply_adds_per_second']:.3g}/s: "
               f"{v['extrapolated_seconds'] / 3600:.1f} h.")
  return "\n".join(out) + "\n"


FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_enum("size", "full", list(SIZES), "tiny: seconds; full: Amazon Fashion's size.")
  flags.DEFINE_list("methods", list(METHODS), f"Which of {', '.join(METHODS)}.")
  flags.DEFINE_enum("feature_models", None, ["probe", "grid"],
                    "FM and VBPR: timed on a few steps (probe) or the whole grid (grid); "
                    "default: the size's.")
  flags.DEFINE_string("output", "runs/benchmarks/paper_grid.json", "Where the JSON goes.")


def main(argv) -> None:
  del argv
  unknown = [m for m in FLAGS.methods if m not in METHODS]
  if unknown:
    raise app.UsageError(f"unknown --methods {unknown}; choose from {', '.join(METHODS)}")
  config = dataclasses.replace(SIZES[FLAGS.size], methods=tuple(FLAGS.methods))
  if FLAGS.feature_models:
    config = dataclasses.replace(config, feature_models=FLAGS.feature_models)
  path = pathlib.Path(FLAGS.output)
  path.parent.mkdir(parents=True, exist_ok=True)
  partial = path.with_suffix(".partial.json")

  def keep(records):
    files.write_json_atomic(partial, {"config": dataclasses.asdict(config), "methods": records})

  with tempfile.TemporaryDirectory() as folder:
    document = run(config, folder, on_method=keep)
  text = markdown(document)
  print(text)
  files.write_json_atomic(path, document)
  partial.unlink(missing_ok=True)
  path.with_suffix(".md").write_text(text)
  print(f"JSON: {path}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
