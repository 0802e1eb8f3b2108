"""`--experiment=demo` (what `make demo` runs): the whole system on the embedded data.

1. DVBPR, trained, evaluated and exported in `<workdir>/dvbpr`;
2. the conditional GAN in `<workdir>/gan`;
3. one user's design figure (paper Fig. 5) and one tailoring strip (Fig. 6) in
   `<workdir>/figures`.
Every step resumes: a rerun reuses what is done.
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np

from dvbpr_tf import design as design_lib
from experiments import common
from experiments import design
from experiments import gan
from experiments import recommendation


def run(spec: common.RunSpec, dvbpr_config, gan_config) -> dict:
  started = time.time()
  catalog = common.load_catalog(spec)
  work = spec.work.make()
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
  design_spec = dataclasses.replace(spec, experiment="design")
  designed = design.run_design(design_spec, dvbpr_config, gan_config,
                               design_lib.DesignConfig(seed=spec.seed), request)
  tailored = design.run_tailoring(
      dataclasses.replace(spec, experiment="tailoring"), dvbpr_config, gan_config,
      design_lib.TailorConfig(),
      dataclasses.replace(request, category=None, item=other_item))
  summary = {
      "experiment": "demo", "dataset": catalog.name, "preset": spec.preset,
      "dvbpr": {k: rec.get(k) for k in ("auc_test", "auc_test_cold", "auc_test_sampled100",
                                        "oracle_auc_test", "oracle_auc_test_cold",
                                        "export")},
      "gan": {k: gan_results.get(k) for k in ("final_losses", "images_per_second",
                                              "samples", "nearest_neighbours", "export")},
      "design": {"user": user, "category": designed["category"],
                 "figure": designed["figure"]},
      "tailoring": {"item": other_item, "figure": tailored["figure"],
                    "preference_first_last": [tailored["iterations"][0]["preference"],
                                              tailored["iterations"][-1]["preference"]]},
      "wall_time_seconds": time.time() - started,
  }
  work.write_results(summary)
  common.print_block("The demo's pictures", [
      f"  GAN samples (rows: categories): {gan_results['samples']}",
      f"  GAN nearest real neighbours:    {gan_results['nearest_neighbours']}",
      f"  design for user {user} ({designed['category']}): {designed['figure']}",
      f"  tailoring item {other_item} for user {user}: {tailored['figure']}",
      f"  DVBPR test AUC {rec['auc_test']:.4f} (cold {rec['auc_test_cold']:.4f}), oracle "
      f"{rec.get('oracle_auc_test', float('nan')):.4f}; total {summary['wall_time_seconds']:.0f}s"])
  print(json.dumps({"results": str(work.results_path)}), flush=True)
  return summary
