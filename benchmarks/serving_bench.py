"""Serving: how well fold-in serves new users, and the export's latency and size.

    python -m benchmarks.serving_bench --data_dir=data/tfds          # about 5 minutes
    python -m benchmarks.serving_bench --size=tiny                    # seconds (the test)

1. **Fold-in on held-out users** (the demo dataset, `fashion_mnist_shoppers/demo`, built by
   `make demo`): DVBPR is trained with the demo preset on the training split less every
   training interaction of a seeded 10% of the users (`hidden_share`); each hidden user is then
   folded in from their training items through the export's `recommend_for_items`, and their
   exact test AUC (all items and cold items, the same evaluator and exclusions as every other
   figure) is reported beside the trained users' AUC from the same model, and beside the
   hidden users' AUC with the theta they were initialised with (what a model without fold-in
   serves them). Then `agreement_users` trained users are folded in from their own training
   items: the Spearman correlation, over the catalog, between the ranking of their folded-in
   vector and of their trained theta_u (median and 10th percentile).
2. **Latency and size**: p50 and p99 of one call (after a warm-up) of `recommend` for 1 user
   and for 256 users, `recommend_for_items` from 5 liked items and `similar_items` for one item,
   on the export of (1) and on a synthetic export of Amazon Fashion's size (234,892 items,
   64,583 users, K = 100, 513,367 training interactions, random Phi and theta: `recommend`
   never runs the tower, a small one is exported with them); and the export's size on disk.

Writes `runs/benchmarks/serving.json` (`--output`); everything it trains and exports goes to
a temporary folder it deletes.
"""

from __future__ import annotations

import dataclasses
import pathlib
import platform
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from benchmarks import common as bench_common
from benchmarks import synthetic
from dvbpr_tf import config as config_lib
from dvbpr_tf.core import files
from dvbpr_tf.core import workdir as workdir_lib
from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf.evaluation import evaluator as evaluator_lib
from dvbpr_tf.evaluation import metrics
from dvbpr_tf.models import cnn_f
from dvbpr_tf.models import dvbpr as dvbpr_lib
from dvbpr_tf.serving import export as export_lib
from dvbpr_tf.training import dvbpr_task
from dvbpr_tf.training import trainer as trainer_lib

AMAZON_FASHION = {"num_users": 64_583, "num_items": 234_892, "num_interactions": 513_367}


@dataclasses.dataclass(frozen=True)
class Config:
  """Attributes:
    dataset, preset: what DVBPR is trained on and how (part 1).
    hidden_share: the share of users whose training interactions are held out.
    agreement_users: trained users folded in from their training items (Spearman).
    latency_calls: timed calls of each signature (after one warm-up).
    large: the synthetic export's sizes (part 2): users, items, interactions, K.
    seed: the hidden users, the synthetic catalog.
  """

  dataset: str = "fashion_mnist_shoppers/demo"
  preset: str = "demo"
  hidden_share: float = 0.1
  agreement_users: int = 200
  latency_calls: int = 200
  large: tuple[int, int, int, int] = (64_583, 234_892, 513_367, 100)
  seed: int = 0


SIZES = {
    "tiny": Config(dataset="fashion_mnist_shoppers/tiny", preset="smoke", hidden_share=0.2,
                   agreement_users=10, latency_calls=5, large=(300, 1_000, 2_000, 8)),
    "full": Config(),
}


def hide_users(catalog: catalog_lib.Catalog, share: float, seed: int):
  """(the catalog without the training interactions of a seeded `share` of the users that
  have a test item, those users)."""
  test_users, _ = catalog.interactions("test")
  rng = np.random.default_rng(seed)
  hidden = np.sort(rng.choice(np.unique(test_users), int(round(share * len(np.unique(
      test_users)))), replace=False))
  drop = np.isin(catalog.users, hidden) & (catalog.splits == catalog_lib.TRAIN)
  keep = ~drop
  return dataclasses.replace(catalog, users=catalog.users[keep], items=catalog.items[keep],
                             splits=catalog.splits[keep]), hidden


def train(catalog: catalog_lib.Catalog, config: config_lib.DvbprConfig, folder) -> tuple:
  """DVBPR trained on `catalog` in `folder` (best checkpoint restored): (task, seconds)."""
  started = time.time()
  task = dvbpr_task.DvbprTask(catalog, config)
  loop = trainer_lib.LoopConfig(
      epochs=config.train.epochs, steps_per_epoch=dvbpr_task.steps_per_epoch(catalog, config),
      steps_per_loop=config.train.steps_per_loop, patience=config.train.patience)
  trainer = trainer_lib.Trainer(task, loop, workdir_lib.Workdir(folder))
  trainer.run()
  trainer.restore_best()
  return task, time.time() - started


def spearman(a: np.ndarray, b: np.ndarray) -> float:
  """Spearman's rank correlation of two score vectors (no ties in float scores)."""
  rank_a = np.argsort(np.argsort(a)).astype(np.float64)
  rank_b = np.argsort(np.argsort(b)).astype(np.float64)
  return float(np.corrcoef(rank_a, rank_b)[0, 1])


def fold_in_quality(config: Config, data_dir: str | None, folder: pathlib.Path) -> dict:
  """Part 1 (module docstring); returns its figures and the export it wrote."""
  catalog = catalog_lib.load_catalog(config.dataset, data_dir=data_dir)
  dvbpr_config = config_lib.preset(config.preset).dvbpr
  partial, hidden = hide_users(catalog, config.hidden_share, config.seed)
  logging.info("serving bench: training DVBPR without %d of %d users' training items",
               len(hidden), catalog.num_users)
  task, seconds = train(partial, dvbpr_config, folder / "dvbpr")
  item_vectors = task.item_vectors()
  trained = task.user_vectors()
  train_users, train_items = partial.interactions("train")
  export = export_lib.export_dvbpr(task.model, item_vectors, train_users, train_items,
                                   catalog.source_ids, folder / "export")
  served = tf.saved_model.load(str(export))

  all_users, all_items = catalog.interactions("train")
  def folded(user):
    liked = tf.constant(np.unique(all_items[all_users == user]), tf.int64)
    return served.recommend_for_items(liked, tf.constant(1))["user_vector"].numpy()

  started = time.time()
  vectors = trained.copy()
  for user in hidden:
    vectors[user] = folded(user)
  per_fold_in = (time.time() - started) / max(len(hidden), 1)
  evaluator = evaluator_lib.Evaluator(catalog, 0, seed=config.seed)
  with_fold_in = evaluator.evaluate_embeddings(vectors, item_vectors, per_user=True)
  without = evaluator.evaluate_embeddings(trained, item_vectors, per_user=True)

  def mean(figures, key, users):
    per_user = figures["per_user"]
    picked = np.isin(per_user["users_test"], users)
    return float(metrics.nanmean(np.asarray(per_user[key])[picked]))

  others = np.setdiff1d(np.unique(catalog.interactions("test")[0]), hidden)
  rng = np.random.default_rng(config.seed)
  chosen = rng.choice(others, min(config.agreement_users, len(others)), replace=False)
  correlations = [spearman(item_vectors @ folded(u), item_vectors @ trained[u]) for u in chosen]
  return {
      "export": str(export), "train_seconds": seconds,
      "sizes": (catalog.num_users, catalog.num_items, int(item_vectors.shape[1])),
      "hidden_users": len(hidden), "trained_users": len(others),
      "fold_in_seconds_per_user": per_fold_in,
      "auc_test_hidden_folded_in": mean(with_fold_in, "auc_test", hidden),
      "auc_test_cold_hidden_folded_in": mean(with_fold_in, "auc_test_cold", hidden),
      "auc_test_hidden_initial_theta": mean(without, "auc_test", hidden),
      "auc_test_cold_hidden_initial_theta": mean(without, "auc_test_cold", hidden),
      "auc_test_trained": mean(without, "auc_test", others),
      "auc_test_cold_trained": mean(without, "auc_test_cold", others),
      "spearman_users": len(chosen),
      "spearman_median": float(np.median(correlations)),
      "spearman_p10": float(np.percentile(correlations, 10)),
      "spearman_min": float(np.min(correlations)),
  }


def large_export(config: Config, folder: pathlib.Path) -> pathlib.Path:
  """The synthetic export of part 2: random Phi [items, K] and theta, a long-tailed split."""
  num_users, num_items, num_interactions, dim = config.large
  rng = np.random.default_rng(config.seed)
  users, items, splits = synthetic.long_tailed_split(num_users, num_items, num_interactions,
                                                     config.seed)
  train = splits == catalog_lib.TRAIN
  users, items = users[train], items[train]
  model = dvbpr_lib.Dvbpr(num_users, cnn_f.TowerConfig(embedding_dim=dim, input_size=32,
                                                       width_multiplier=0.125)).build_for_input()
  model.theta.assign(rng.normal(size=(num_users, dim)).astype(np.float32))
  item_vectors = rng.normal(size=(num_items, dim)).astype(np.float32)
  return export_lib.export_dvbpr(model, item_vectors, users, items,
                                 [f"item-{i}" for i in range(num_items)], folder / "large")


def latencies(path: pathlib.Path, users_total: int, num_items: int, dim: int, calls: int,
              seed: int) -> dict:
  """p50 / p99 in milliseconds of each signature's call (module docstring), and the size."""
  served = tf.saved_model.load(str(path))
  rng = np.random.default_rng(seed)
  k = tf.constant(20)
  calls_of = {
      "recommend_1_user": lambda: served.recommend(
          tf.constant(rng.integers(0, users_total, 1), tf.int64), k),
      "recommend_256_users": lambda: served.recommend(
          tf.constant(rng.integers(0, users_total, 256), tf.int64), k),
      "recommend_for_items_5_liked": lambda: served.recommend_for_items(
          tf.constant(rng.choice(num_items, 5, replace=False), tf.int64), k),
      "similar_items_1_item": lambda: served.similar_items(
          tf.constant(rng.integers(0, num_items, 1), tf.int64), k, tf.constant("cosine")),
  }
  result = {"num_items": num_items, "num_users": users_total, "dim": dim,
            "size_bytes": sum(f.stat().st_size for f in path.rglob("*") if f.is_file())}
  for name, call in calls_of.items():
    call()  # Warm-up.
    times = []
    for _ in range(calls):
      started = time.perf_counter()
      out = call()
      _ = out["item_ids"].numpy()
      times.append(1000.0 * (time.perf_counter() - started))
    result[name] = {"p50_ms": float(np.percentile(times, 50)),
                    "p99_ms": float(np.percentile(times, 99)), "calls": calls}
  return result


def markdown(document: dict) -> str:
  q = document["fold_in"]
  out = ["| users | test AUC all | test AUC cold |", "|---|---|---|",
         f"| trained users ({q['trained_users']}), trained theta | "
         f"{q['auc_test_trained']:.4f} | {q['auc_test_cold_trained']:.4f} |",
         f"| hidden users ({q['hidden_users']}), folded in from their training items | "
         f"{q['auc_test_hidden_folded_in']:.4f} | {q['auc_test_cold_hidden_folded_in']:.4f} |",
         f"| hidden users, the theta they started with (no fold-in) | "
         f"{q['auc_test_hidden_initial_theta']:.4f} | "
         f"{q['auc_test_cold_hidden_initial_theta']:.4f} |",
         "", f"Fold-in of {q['spearman_users']} trained users from their own training items: "
         f"Spearman with their trained theta's ranking, median {q['spearman_median']:.3f}, "
         f"10th percentile {q['spearman_p10']:.3f}, min {q['spearman_min']:.3f}; "
         f"{1000 * q['fold_in_seconds_per_user']:.1f} ms per fold-in.", "",
         "| export | items x K | size | call | p50 ms | p99 ms |", "|---|---|---|---|---|---|"]
  for label, r in document["latency"].items():
    for name in ("recommend_1_user", "recommend_256_users", "recommend_for_items_5_liked",
                 "similar_items_1_item"):
      out.append(f"| {label} | {r['num_items']:,} x {r['dim']} | "
                 f"{r['size_bytes'] / 2**20:.1f} MiB | {name} | {r[name]['p50_ms']:.1f} | "
                 f"{r[name]['p99_ms']:.1f} |")
  return "\n".join(out) + "\n"


def run(config: Config, data_dir: str | None, output: str) -> dict:
  started = time.time()
  with tempfile.TemporaryDirectory(prefix="serving_bench_") as temp:
    folder = pathlib.Path(temp)
    quality = fold_in_quality(config, data_dir, folder)
    latency = {"demo": latencies(pathlib.Path(quality["export"]), *quality["sizes"],
                                 config.latency_calls, config.seed)}
    num_users, num_items, _, dim = config.large
    latency["amazon_fashion_size"] = latencies(large_export(config, folder), num_users,
                                               num_items, dim, config.latency_calls,
                                               config.seed)
  document = {"machine": bench_common.machine_info(), "config": dataclasses.asdict(config),
              "fold_in": quality, "latency": latency, "seconds": time.time() - started,
              "python": platform.python_version()}
  files.write_json_atomic(output, document)
  files.write_bytes_atomic(pathlib.Path(output).with_suffix(".md"),
                           markdown(document).encode())
  print(markdown(document), flush=True)
  print(f"JSON: {output}", flush=True)
  return document


def main(argv):
  del argv
  run(SIZES[FLAGS.size], FLAGS.data_dir, FLAGS.output)


if __name__ == "__main__":
  flags.DEFINE_enum("size", "full", list(SIZES), "tiny: seconds; full: the README's figures.")
  flags.DEFINE_string("data_dir", None, "TFDS data dir (make demo: data/tfds).")
  flags.DEFINE_string("output", "runs/benchmarks/serving.json", "Where the JSON goes.")
  FLAGS = flags.FLAGS
  app.run(main)
