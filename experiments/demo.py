"""`--experiment=demo` (what `make demo` runs): the whole system on the embedded data.

1. DVBPR, trained, evaluated and exported in `<workdir>/dvbpr`;
2. the conditional GAN in `<workdir>/gan`;
3. one user's design figure (paper Fig. 5) in `<workdir>/design` and one tailoring strip
   (Fig. 6) in `<workdir>/tailoring`, over the models of 1 and 2;
4. `<workdir>/report.html`, one page with all of it, and a summary printed at the end.
Every step resumes: a rerun reuses what is done.
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np

from dvbpr_tf import config as config_lib
from dvbpr_tf.reporting import html_report
from dvbpr_tf.reporting import sections
from experiments import common
from experiments import design
from experiments import gan
from experiments import recommendation


def run(spec: common.RunSpec, dvbpr_config, gan_config, design_config) -> dict:
  started = time.time()
  run_config = {"run": spec.__dict__, "dvbpr": config_lib.as_dict(dvbpr_config),
                "gan": config_lib.as_dict(gan_config),
                "design": config_lib.as_dict(design_config)}
  catalog, work = common.start_run(spec, run_config)
  sub = lambda name, experiment: dataclasses.replace(
      spec, workdir=str(work.root / name), experiment=experiment)
  rec = recommendation.run(sub("dvbpr", "recommendation"), dvbpr_config, catalog=catalog)
  gan_results = gan.run(sub("gan", "gan"), gan_config, catalog=catalog)

  # A user whose test item is in the most common category; the item to tailor is another
  # user's test item of that category.
  test_users, test_items = catalog.interactions("test")
  categories = catalog.item_category[test_items]
  category = int(np.bincount(categories).argmax())
  rows = np.flatnonzero(categories == category)
  user, other_item = int(test_users[rows[0]]), int(test_items[rows[1 % len(rows)]])
  request = design.DesignRequest(user=user, category=str(category),
                                 dvbpr_workdir=str(work.root / "dvbpr"),
                                 gan_workdir=str(work.root / "gan"))
  designed = design.run_design(sub("design", "design"), dvbpr_config, gan_config,
                               design_config.synthesis, request)
  tailored = design.run_tailoring(
      sub("tailoring", "tailoring"), dvbpr_config, gan_config,
      design_config.tailoring,
      dataclasses.replace(request, category=None, item=other_item))
  header = common.results_header(spec, catalog)
  nested = lambda results: {k: v for k, v in results.items() if k not in header}
  summary = {
      **header, "experiment": "demo",
      "dvbpr": nested(rec), "gan": nested(gan_results),
      "design": nested(designed), "tailoring": nested(tailored),
      "wall_time_seconds": time.time() - started,
  }
  work.write_results(summary)
  report = html_report.write_report(
      work.root, f"dvbpr-tf demo on {catalog.name}", summary,
      sections.recommender(summary, "dvbpr.") + sections.gan(summary, "gan.")
      + sections.design(summary, "design.") + sections.tailoring(summary, "tailoring.")
      + sections.dataset(summary),
      subtitle="DVBPR trained from pixels, the conditional GAN, one personalised design and "
               "one tailoring, each trained and run by `make demo` on this machine.")
  _print_summary(summary, report)
  print(json.dumps({"results": str(work.results_path), "report": str(report)}), flush=True)
  return summary


def _print_summary(summary: dict, report) -> None:
  rec, gan_results = summary["dvbpr"], summary["gan"]
  fmt = lambda value: "   n/a" if value is None else f"{value:.4f}"
  rows = [f"  {'test AUC':32s} {'all items':>10s} {'cold items':>11s}",
          f"  {'DVBPR':32s} {fmt(rec.get('auc_test')):>10s} {fmt(rec.get('auc_test_cold')):>11s}",
          f"  {'random':32s} {fmt(0.5):>10s} {fmt(0.5):>11s}"]
  if rec.get("learnable_auc_test") is not None:
    rows.append(f"  {'learnable ceiling (true style)':32s} {fmt(rec['learnable_auc_test']):>10s} "
                f"{fmt(rec.get('learnable_auc_test_cold')):>11s}")
  if rec.get("oracle_auc_test") is not None:
    rows.append(f"  {'planted model (oracle)':32s} {fmt(rec['oracle_auc_test']):>10s} "
                f"{fmt(rec.get('oracle_auc_test_cold')):>11s}")
  rows += [
      f"  GAN: {gan_results.get('images_per_second') or 0:.0f} training images/s",
      f"  DVBPR learning curve:          {rec.get('learning_curve_figure')}",
      f"  GAN samples (rows: categories): {gan_results['samples']}",
      f"  GAN nearest real neighbours:    {gan_results['nearest_neighbours']}",
      f"  design for user {summary['design']['user']} ({summary['design']['category']}): "
      f"{summary['design']['figure']}",
      f"  tailoring {summary['tailoring']['query']} for user {summary['tailoring']['user']}: "
      f"{summary['tailoring']['figure']}",
      f"  total {summary['wall_time_seconds']:.0f}s",
      "",
      f"  Open the report: {report}"]
  common.print_block("The demo", rows)
