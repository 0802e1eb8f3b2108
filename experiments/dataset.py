"""`--experiment=dataset`: build a dataset (if needed) and report its statistics."""

from __future__ import annotations

from dvbpr_tf_datasets.common import statistics as statistics_lib
from experiments import common


def run(spec: common.RunSpec) -> dict:
  catalog = common.load_catalog(spec)
  results = common.results_header(spec, catalog)
  results.update(common.oracle_fields(catalog))
  _, work = common.start_run(spec, {"run": spec.__dict__}, catalog, resumable=False)
  work.write_results(results)
  print(statistics_lib.format_statistics(catalog.name, catalog.statistics), flush=True)
  oracle = common.oracle_fields(catalog)
  if oracle:
    common.print_block("Planted model (the ceiling any learner can reach), exact AUC", [
        f"  test  all items {oracle['oracle_auc_test']:.4f}   "
        f"cold items {oracle['oracle_auc_test_cold']:.4f}",
        "  random ranking: 0.5",
    ])
  print(f"Data: {catalog.data_path}\nResults: {work.results_path}", flush=True)
  return results
