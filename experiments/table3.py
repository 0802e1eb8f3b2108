"""`--experiment=table3`: the paper's Table III on one dataset, every method, one command.

Trains and evaluates RAND, PopRank, WARP, BPR-MF, VisRank, FM, VBPR (grid-searched on
validation AUC where the paper did) and DVBPR, all on the same sampler, data and evaluation,
then writes `table3.md`, `table3.csv` and `results.json` into the work dir. Each method's
record is kept in `<workdir>/<method>/result.json` as soon as it is done, and each grid point
trains in its own sub-folder with checkpoints, so a rerun resumes where the last one stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time

from absl import logging

from dvbpr_tf import config as config_lib
from dvbpr_tf.baselines import recommenders
from dvbpr_tf.core import files
from dvbpr_tf.evaluation import evaluator
from dvbpr_tf.evaluation import significance
from dvbpr_tf.features import sources as features_lib
from dvbpr_tf.reporting import html_report
from dvbpr_tf.reporting import sections
from dvbpr_tf.reporting import table3 as table3_lib
from dvbpr_tf.training import pairwise_task
from experiments import common
from experiments import recommendation

def run_method(method: str, spec: common.RunSpec, catalog, item_features,
               baseline: config_lib.BaselineConfig, dvbpr_config) -> dict:
  """One column of the table: its record with `params` (the winning grid point)."""
  work = spec.work
  started = time.time()
  if method == "dvbpr":
    sub = dataclasses.replace(spec, workdir=str(work.root / "dvbpr"))
    result = recommendation.run(sub, dvbpr_config, catalog=catalog)
    record = {k: result.get(k) for k in evaluator.record_keys(
        dvbpr_config.train.sampled_negatives) + recommendation.KEPT if k in result} | {"params": {
            "K": dvbpr_config.tower.embedding_dim,
            "image_size": dvbpr_config.tower.input_size,
            "width_multiplier": dvbpr_config.tower.width_multiplier}}
  elif method in recommenders.SCORERS or method in recommenders.TUNED_SCORERS:
    folder = files.make_dirs(work.root / method)
    record = {"params": {}} | pairwise_task.evaluate_scorer(
        method, catalog, item_features, baseline, folder, spec.seed)
  else:
    record = pairwise_task.grid_search(method, catalog, item_features, baseline,
                                       work.root / method, spec.seed,
                                       make_strategy=spec.make_strategy)
  record["seconds"] = time.time() - started
  return record


def paired_tests(records: dict, resamples: int, seed: int) -> dict:
  """Every baseline against DVBPR on every test figure, from the per-user values the
  records kept (`significance.paired_tests`); {} when DVBPR's are missing."""
  per_user = {m: evaluator.read_per_user(r["per_user_file"])
              for m, r in records.items() if r.get("per_user_file")}
  reference = per_user.pop("dvbpr", None)
  if reference is None:
    return {}
  others = {m: v for m, v in per_user.items() if v is not None}
  keys = [k for k in reference if k.startswith(("auc_test", "hr", "ndcg", "mrr"))
          and "_test" in k]
  return significance.paired_tests(reference, others, keys, resamples, seed)


def run(spec: common.RunSpec, baseline: config_lib.BaselineConfig, dvbpr_config) -> dict:
  started = time.time()
  run_config = {"run": spec.__dict__, "baselines": config_lib.as_dict(baseline),
                "dvbpr": config_lib.as_dict(dvbpr_config)}
  catalog, work = common.start_run(spec, run_config)
  source = features_lib.feature_source_from_name(baseline.features)
  item_features, feature_info = features_lib.load_features(catalog, source)
  logging.info("table3: features %s: %s", source.key, source.describe())

  records = {}
  methods = table3_lib.METHODS + (table3_lib.BEYOND_PAPER if baseline.beyond_paper else ())
  for n, method in enumerate(methods, 1):
    path = work.root / method / "result.json"
    if path.exists():
      records[method] = json.loads(path.read_text())
      logging.info("table3: %s already done (%d/%d), kept", method, n, len(methods))
      continue
    logging.info("table3: method %d/%d: %s", n, len(methods), method)
    records[method] = run_method(method, spec, catalog, item_features, baseline,
                                 dvbpr_config)
    files.write_json_atomic(path, records[method])
    logging.info("table3: %s test AUC %.4f (cold %.4f) in %.0fs", method,
                 records[method].get("auc_test") or float("nan"),
                 records[method].get("auc_test_cold") or float("nan"),
                 records[method]["seconds"])

  oracle = common.oracle_fields(catalog) or None
  for record in records.values():
    if oracle:
      record["oracle"] = oracle
  paired = paired_tests(records, baseline.bootstrap_resamples, spec.seed)
  features_text = f"{source.key}: {source.describe().rstrip('.')}"
  text = table3_lib.markdown(records, dataset=catalog.name, preset=spec.preset,
                             grid=baseline.grid_description(), features=features_text,
                             oracle=oracle, paired=paired,
                             resamples=baseline.bootstrap_resamples,
                             split=table3_lib.split_description(catalog.statistics))
  files.write_bytes_atomic(work.root / "table3.md", text.encode())
  files.write_bytes_atomic(work.root / "table3.csv",
                           table3_lib.csv_text(records, oracle, paired).encode())
  results = common.results_header(spec, catalog)
  results.update({
      **records,
      "features": {"source": source.key, "description": source.describe(), **feature_info},
      "grid": baseline.grid_description(),
      "split": table3_lib.split_description(catalog.statistics),
      "paired_tests": paired,
      "paired_tests_note": ("each baseline against DVBPR over the same test users: "
                            "difference = DVBPR - baseline; p_holm: the Wilcoxon signed-rank "
                            "p, Holm-adjusted over the baselines; significant: p_holm < 0.05"),
      "wall_time_seconds": time.time() - started,
      **(oracle or {}),
  })
  work.write_results(results)
  print(text, flush=True)
  report = html_report.write_report(
      work.root, f"Table III on {catalog.name}", results,
      sections.table3(results, methods) + sections.dataset(results))
  print(f"Table: {work.root / 'table3.md'}\nResults: {work.results_path}\nReport: {report}",
        flush=True)
  return results
