"""`--experiment=recommendation`: train DVBPR, evaluate it, export it.

Writes into the work dir: `config.json`, `results.json`, `checkpoints/` (latest and best),
`logs/` (TensorBoard scalars and the embedding projector), `export/dvbpr/` (SavedModel).
"""

from __future__ import annotations

import time

from absl import logging
import numpy as np

from dvbpr_tf import config as config_lib
from dvbpr_tf.baselines import recommenders
from dvbpr_tf.core import files
from dvbpr_tf.evaluation import evaluator
from dvbpr_tf.evaluation import metrics
from dvbpr_tf.features import sources as features_lib
from dvbpr_tf.reporting import charts
from dvbpr_tf.reporting import html_report
from dvbpr_tf.reporting import sections
from dvbpr_tf.serving import export as export_lib
from dvbpr_tf.serving import projector
from dvbpr_tf.training import dvbpr_task
from dvbpr_tf.training import pairwise_task
from dvbpr_tf.training import trainer as trainer_lib
from experiments import common

KEPT = ("best_epoch", "epochs_trained", "stopped_early_at_epoch", "per_user_file", "ci95",
        "bootstrap_resamples")  # What a record keeps of a training run besides its figures.


def run(spec: common.RunSpec, config: config_lib.DvbprConfig, catalog=None) -> dict:
  """Trains DVBPR (resuming from the work dir), exports it, writes results.json."""
  started = time.time()
  run_config = {"run": spec.__dict__, "model": "dvbpr", "dvbpr": config_lib.as_dict(config)}
  catalog, work, task, strategy = common.start_training(
      spec, run_config, lambda data: dvbpr_task.DvbprTask(data, config), catalog)
  loop = trainer_lib.LoopConfig(
      epochs=config.train.epochs,
      steps_per_epoch=dvbpr_task.steps_per_epoch(catalog, config),
      steps_per_loop=config.train.steps_per_loop,
      checkpoint_every_steps=config.train.checkpoint_every_steps,
      patience=config.train.patience,
      jit_compile=config.train.jit_compile,
      run_eagerly=config.train.run_eagerly)
  logging.info("DVBPR: %d parameters in the tower, %d users x K=%d; %d epochs of %d steps",
               task.model.tower.count_params(), catalog.num_users,
               config.tower.embedding_dim, loop.epochs, loop.steps_per_epoch)
  trainer = trainer_lib.Trainer(task, loop, work, strategy=strategy)
  summary = trainer.run()
  best = trainer.restore_best() or summary["best"]

  # The best checkpoint's model: embeddings for the projector and the export.
  item_vectors = task.item_vectors()
  rng = np.random.default_rng(spec.seed)
  shown = np.sort(rng.choice(catalog.num_items,
                             min(config.train.projector_items, catalog.num_items),
                             replace=False))
  projector.write_projector(
      work.logs, item_vectors, shown,
      [catalog.category_names[c] for c in catalog.item_category], catalog.source_ids,
      catalog.jpegs)
  final = task.evaluator.evaluate_embeddings(task.user_vectors(), item_vectors, per_user=True)
  train_users, train_items = catalog.interactions("train")
  export_path = export_lib.export_dvbpr(task.model, item_vectors, train_users, train_items,
                                        catalog.source_ids, work.export("dvbpr"))

  results = common.results_header(spec, catalog)
  results.update({
      "model": "dvbpr",
      "config": config_lib.as_dict(config),
      **{k: best.get(k) for k in evaluator.metric_keys(config.train.sampled_negatives)},
      "num_users_test_cold": best.get("num_users_test_cold"),
      "best_epoch": best.get("epoch"),
      "epochs": loop.epochs,
      "epochs_trained": len(summary["history"]),
      "stopped_early_at_epoch": summary["stopped_early_at_epoch"],
      **evaluator.keep_per_user(final, work.root, config.train.bootstrap_resamples,
                                 spec.seed),
      "steps": summary["steps"],
      "learning_curve": [{k: h.get(k) for k in (
          "epoch", "step", *evaluator.metric_keys(config.train.sampled_negatives))}
                         for h in summary["history"]],
      "train_pairs_per_second": summary["train_rate_median"],
      "wall_time_seconds": time.time() - started,
      "export": str(export_path),
      "tensorboard_logdir": str(work.logs),
      "cold_definition": (f"users whose test item has fewer than {metrics.COLD_THRESHOLD} "
                          "training observations; negatives restricted to items with fewer "
                          f"than {metrics.COLD_THRESHOLD}"),
      "random_auc": 0.5,
      **common.oracle_fields(catalog),
  })
  results.update(ceiling_shares(results))
  results["learning_curve_figure"] = str(_write_learning_curve(results, work))
  work.write_results(results)
  _print_summary(results, work)
  report = html_report.write_report(
      work.root, f"DVBPR on {catalog.name}", results,
      sections.recommender(results) + sections.dataset(results))
  print(f"Report:      {report}", flush=True)
  return results


def ceiling_shares(results: dict) -> dict:
  """For simulated data: the share of each ceiling's lift over random that the model's test
  AUC reaches, (auc - 0.5) / (ceiling - 0.5), all and cold (`auc_test_share_of_oracle_lift`,
  `auc_test_cold_share_of_learnable_lift`, ...)."""
  shares = {}
  for ceiling in ("oracle", "learnable"):
    for key in ("auc_test", "auc_test_cold"):
      top = results.get(f"{ceiling}_{key}")
      if results.get(key) is not None and top is not None and top > 0.5:
        shares[f"{key}_share_of_{ceiling}_lift"] = (results[key] - 0.5) / (top - 0.5)
  return shares


def _write_learning_curve(results: dict, work):
  """figures/learning_curve.png: validation and test AUC per epoch."""
  curve = results["learning_curve"]
  epochs = [h["epoch"] for h in curve]
  reference = {"random": 0.5}
  if results.get("oracle_auc_test") is not None:
    reference["planted model (oracle), test"] = results["oracle_auc_test"]
  image = charts.line_chart(
      {"validation AUC": (epochs, [h.get("auc_valid") for h in curve]),
       "test AUC": (epochs, [h.get("auc_test") for h in curve]),
       "test AUC, cold items": (epochs, [h.get("auc_test_cold") for h in curve])},
      title=f"DVBPR learning curve on {results['dataset']} ({results['preset']} preset)",
      x_label="epoch", y_label="exact AUC", reference_lines=reference)
  path = work.figures / "learning_curve.png"
  files.write_png_atomic(path, image)
  return path


def _print_summary(results: dict, work) -> None:
  def fmt(value):
    return "   n/a" if value is None else f"{value:.4f}"
  rows = [f"  {'':28s} {'all items':>10s} {'cold items':>11s}",
          f"  {'DVBPR exact AUC (test)':28s} {fmt(results['auc_test']):>10s} "
          f"{fmt(results['auc_test_cold']):>11s}",
          f"  {'DVBPR sampled-100 AUC (test)':28s} {fmt(results['auc_test_sampled100']):>10s}"]
  interval = results.get("ci95") or {}
  if interval.get("auc_test") and interval.get("auc_test_cold"):
    rows.append(f"  {'  95% interval over users':28s} "
                + " ".join(f"{interval[k][0]:.4f}-{interval[k][1]:.4f}"
                           for k in ("auc_test", "auc_test_cold")))
  for label, key in (("HR@20", "hr20_test"), ("NDCG@20", "ndcg20_test")):
    rows.append(f"  {'DVBPR ' + label + ' (test)':28s} {fmt(results.get(key)):>10s} "
                f"{fmt(results.get(key + '_cold')):>11s}")
  for ceiling, label in (("learnable", "learnable ceiling"),
                         ("oracle", "planted model (oracle)")):
    if f"{ceiling}_auc_test" in results:
      rows.append(f"  {label:28s} {fmt(results[f'{ceiling}_auc_test']):>10s} "
                  f"{fmt(results[f'{ceiling}_auc_test_cold']):>11s}")
      rows.append(f"  {'  share of its lift':28s} "
                  f"{fmt(results.get(f'auc_test_share_of_{ceiling}_lift')):>10s} "
                  f"{fmt(results.get(f'auc_test_cold_share_of_{ceiling}_lift')):>11s}")
  rows.append(f"  {'random':28s} {0.5:>10.4f} {0.5:>11.4f}")
  rows.append(f"  best epoch {results['best_epoch']} of {results['epochs']} (by validation AUC);"
              f" {results['train_pairs_per_second'] or 0:.0f} training pairs/s")
  common.print_block(f"DVBPR on {results['dataset']} ({results['preset']} preset)", rows)
  print(f"Results:     {work.results_path}\nExport:      {results['export']}\n"
        f"TensorBoard: tensorboard --logdir {results['tensorboard_logdir']}", flush=True)


def run_baseline(spec: common.RunSpec, method: str, baseline: config_lib.BaselineConfig,
                 dim: int, reg: float) -> dict:
  """`--model=<baseline>`: one baseline at one setting (no grid), evaluated as DVBPR."""
  started = time.time()
  run_config = {"run": spec.__dict__, "model": method,
                "baselines": config_lib.as_dict(baseline), "K": dim, "reg": reg}
  catalog, work = common.start_run(spec, run_config)
  item_features, info = None, {}
  if method in recommenders.NEEDS_FEATURES:
    source = features_lib.feature_source_from_name(baseline.features)
    item_features, info = features_lib.load_features(catalog, source)
    info = {"source": source.key, "description": source.describe(), **info}
  if method in recommenders.SCORERS:
    record = pairwise_task.evaluate_scorer(method, catalog, item_features, baseline, work.root,
                                           spec.seed)
  else:
    record = pairwise_task.train_pairwise(method, catalog, item_features, baseline, dim, reg,
                                          work, spec.seed, strategy=spec.make_strategy())
  results = common.results_header(spec, catalog)
  results.update({"model": method, "params": {"K": dim, "reg": reg}, "features": info,
                  **{k: record.get(k)
                     for k in evaluator.metric_keys(baseline.sampled_negatives)},
                  "num_users_test_cold": record.get("num_users_test_cold"),
                  **{k: record[k] for k in KEPT if k in record},
                  "wall_time_seconds": time.time() - started,
                  **common.oracle_fields(catalog)})
  results["random_auc"] = 0.5
  results.update(ceiling_shares(results))
  work.write_results(results)
  rows = [f"  {'exact AUC (test)':28s} all {results['auc_test']:.4f}  cold "
          f"{results['auc_test_cold']:.4f}"]
  common.print_block(f"{method} on {catalog.name}", rows)
  report = html_report.write_report(work.root, f"{method} on {catalog.name}", results,
                                    sections.recommender(results) + sections.dataset(results))
  print(f"Results: {work.results_path}\nReport:  {report}", flush=True)
  return results
