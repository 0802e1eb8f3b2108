"""`--experiment=eta_sweep`: the paper's Figure 3, preference, quality and diversity of
delta-hat(u, c) as the realism weight eta of eq. 10 grows.

The same trials (users, categories, starts) at every eta, so the curves differ by eta alone.
Writes `eta_sweep.csv`, TensorBoard scalars (`eta_sweep/<metric>` at step = the eta's index;
the eta itself as `eta_sweep/eta`), `figures/eta_sweep.png` and `results.json`.
"""

from __future__ import annotations

import dataclasses
import time

from absl import logging
import numpy as np
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import files
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.design import designer as design_lib
from dvbpr_tf.evaluation import image_metrics
from dvbpr_tf.reporting import charts
from dvbpr_tf.reporting import html_report
from dvbpr_tf.reporting import sections
from experiments import common
from experiments import design as design_experiment

METRICS = ("preference", "quality", "diversity")


def run(spec: common.RunSpec, dvbpr_config, gan_config, config: design_lib.DesignConfig,
        trials: int, etas=config_lib.ETAS, quality: str = "classifier", request=None) -> dict:
  started = time.time()
  catalog = common.load_catalog(spec)
  d_task, g_task, designer, work = design_experiment.load_models(
      spec, catalog, dvbpr_config, gan_config, request,
      {"design": dataclasses.asdict(config), "trials": trials, "etas": list(etas),
       "quality": quality})
  scorer = image_metrics.quality_scorer_from_name(quality, catalog)
  test_users, test_items = catalog.interactions("test")
  rng = np.random.default_rng(spec.seed)
  rows = rng.integers(len(test_users), size=trials)
  pairs = [(int(test_users[r]), int(catalog.item_category[test_items[r]])) for r in rows]
  real = image_metrics.real_features(scorer, catalog, designer.generator.config.image_size)
  # The same starts at every eta ('retrieved': inverted once per trial).
  starts = [None] * len(pairs)
  if config.start != "uniform":
    user_vectors, item_vectors = d_task.user_vectors(), d_task.item_vectors()
    starts = [design_experiment.synthesis_start(
        designer, dataclasses.replace(config, seed=trial), catalog, user_vectors[user],
        item_vectors, category) for trial, (user, category) in enumerate(pairs)]
  curves = []
  for n, eta in enumerate(etas):
    tally = image_metrics.SourceTally()
    for trial, (user, category) in enumerate(pairs):
      result = designer.synthesize(user, category,
                                   dataclasses.replace(config, eta=float(eta), seed=trial),
                                   start_z_prime=starts[trial])
      tally.add(result.preference[result.chosen],
                input_pipeline.to_uint8(result.chosen_images), category)
    curves.append({"eta": float(eta), **tally.summary(scorer, real)})
    logging.info("eta_sweep: eta %g (%d/%d): preference %.3f quality %.3f diversity %.3f",
                 eta, n + 1, len(etas), curves[-1]["preference_mean"],
                 curves[-1]["quality_mean"], curves[-1]["diversity_mean"])

  keys = [k for k, v in curves[0].items() if not isinstance(v, dict)]  # Scalars: the CSV.
  csv = "\n".join([",".join(keys)] + [",".join(f"{c[k]:.6f}" for k in keys) for c in curves])
  files.write_bytes_atomic(work.root / "eta_sweep.csv", (csv + "\n").encode())
  writer = tf.summary.create_file_writer(str(work.logs / "eta_sweep"))
  with writer.as_default():
    for n, curve in enumerate(curves):
      tf.summary.scalar("eta_sweep/eta", curve["eta"], step=n)
      for metric in METRICS:
        tf.summary.scalar(f"eta_sweep/{metric}", curve[f"{metric}_mean"], step=n)
  writer.flush()
  chart = work.figures / "eta_sweep.png"
  files.write_png_atomic(chart, plot(curves, scorer.name))
  results = common.results_header(spec, catalog)
  results.update({"curves": curves, "trials_per_eta": trials, "quality_metric": scorer.name,
                  "trend": trend(curves), "figure": str(chart),
                  "wall_time_seconds": time.time() - started})
  work.write_results(results)
  common.print_block(f"eta sweep on {catalog.name} ({trials} trials per eta)", [
      f"  eta {c['eta']:6g}: preference {c['preference_mean']:8.4f}  quality "
      f"{c['quality_mean']:.4f}  diversity {c['diversity_mean']:.4f}" for c in curves] + [
      f"  {k}: {v}" for k, v in trend(curves).items()])
  report = html_report.write_report(work.root, f"eta sweep on {catalog.name}", results,
                                    sections.eta_sweep(results))
  print(f"Chart:   {chart}\nResults: {work.results_path}\nReport:  {report}", flush=True)
  return results


def trend(curves) -> dict:
  """Whether each metric rises, falls or stays flat as eta grows (the sign of Spearman's
  rank correlation with eta; ties handled, constant curves are flat)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  out = {}
  etas = [c["eta"] for c in curves]
  for metric in METRICS:
    values = [c[f"{metric}_mean"] for c in curves]
    rho = 0.0
    if len(curves) > 2 and np.ptp(values) > 1e-9:
      rho = float(stats.spearmanr(etas, values).statistic)
    out[metric] = f"{'rises' if rho > 0.3 else 'falls' if rho < -0.3 else 'flat'} (rho={rho:.2f})"
  return out


def plot(curves, quality_name: str) -> np.ndarray:
  """Three line charts side by side: preference, quality (`quality_name`, shortened in the
  title) and diversity against log10 eta (eta = 0 drawn at 0.01)."""
  log_eta = [float(np.log10(max(c["eta"], 1e-2))) for c in curves]
  titles = {"preference": "preference", "quality": f"quality ({quality_name.split(' (')[0]})",
            "diversity": "diversity (1 - mean SSIM)"}
  panels = [charts.line_chart({titles[metric]: (log_eta, [c[f"{metric}_mean"] for c in curves])},
                              title=titles[metric], x_label="log10 eta",
                              y_label=metric,
                              width=380, height=320)
            for metric in METRICS]
  return np.concatenate(panels, axis=1)
