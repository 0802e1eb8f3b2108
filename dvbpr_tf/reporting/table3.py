"""The paper's Table III: AUC of every method, All Items and Cold Items, as Markdown and CSV.

Columns as the paper: (a) RAND, (b) PopRank, (c) WARP, (d) BPR-MF, (e) VisRank, (f) FM,
(g) VBPR, (h) DVBPR, then the improvements "h vs. d" and "h vs. best" (the best of a-g),
each the relative gain (h - x) / x in percent, as the paper computes them
(Amazon Fashion, All: (0.7964 - 0.6278) / 0.6278 = 26.9%). For simulated data the planted
model's AUC (the oracle) and the learnable ceiling (BPR on the items' true style numbers)
are the last columns.

Beyond the paper's columns: the top-K metrics on the full ranking (HR@K, NDCG@K, MRR) in
three settings, each cell's 95% bootstrap interval over users where the run kept its users'
values, a dagger on a baseline's cell when its difference from DVBPR on that figure is
significant (Wilcoxon signed-rank over the same users, Holm-adjusted over the baselines,
p < 0.05), and the paired tests themselves for the AUCs and NDCG@20.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Mapping

from dvbpr_tf_datasets.common import protocol

METHODS = ("rand", "poprank", "warp", "bpr_mf", "visrank", "fm", "vbpr", "dvbpr")
BEYOND_PAPER = ("ease", "item_knn")  # After DVBPR, with `baselines.beyond_paper`.
LABELS = {"rand": "RAND", "poprank": "PopRank", "warp": "WARP", "bpr_mf": "BPR-MF",
          "visrank": "VisRank", "fm": "FM", "vbpr": "VBPR", "dvbpr": "DVBPR", "ease": "EASE",
          "item_knn": "ItemKNN (content)"}
LETTERS = dict(zip(METHODS + BEYOND_PAPER, "abcdefghij"))


def columns(results: Mapping[str, Mapping]) -> tuple[str, ...]:
  """The paper's eight methods, then those beyond the paper that `results` holds."""
  return METHODS + tuple(m for m in BEYOND_PAPER if m in results)
ROWS = (("All Items", ""), ("Cold Items", "_cold"))
TOP_K_SETTINGS = (("all items", ""), ("cold users, among cold items", "_cold"),
                  ("cold users, among all items", "_cold_all_items"))
TOP_K_METRICS = (("HR@10", "hr10"), ("HR@20", "hr20"), ("HR@50", "hr50"),
                 ("NDCG@10", "ndcg10"), ("NDCG@20", "ndcg20"), ("NDCG@50", "ndcg50"),
                 ("MRR", "mrr"))
SHOWN_TESTS = (("AUC, all items", "auc_test"), ("AUC, cold items", "auc_test_cold"),
               ("NDCG@20, all items", "ndcg20_test"),
               ("NDCG@20, cold users among cold items", "ndcg20_test_cold"))
SIGNIFICANT = "†"


def improvement(h: float | None, x: float | None) -> float | None:
  """(h - x) / x, or None when either is missing."""
  if h is None or x is None or not math.isfinite(h) or not math.isfinite(x) or x == 0:
    return None
  return (h - x) / x


def _has_top_k(results: Mapping[str, Mapping]) -> bool:
  """Whether the records hold the top-K figures (runs before them do not)."""
  return any(top_k_key("hr10", "") in r for r in results.values() if isinstance(r, Mapping))


def top_k_key(metric: str, suffix: str) -> str:
  """`hr10`, `_cold` -> `hr10_test_cold`: the test figure's key."""
  return f"{metric}_test{suffix}"


def table_rows(results: Mapping[str, Mapping], metric: str = "auc_test",
               oracle: Mapping[str, float] | None = None) -> list[dict]:
  """One dict per row (All, Cold): method columns, improvements, oracle; `key` is each row's
  figure."""
  rows = []
  for label, suffix in ROWS:
    key = metric.replace("auc_test", f"auc_test{suffix}") if suffix else metric
    if suffix and "sampled" in metric:
      continue  # The authors' sampled AUC has no cold-item variant.
    row = {"setting": label, "key": key}
    for method in columns(results):
      value = results.get(method, {}).get(key)
      row[method] = value if value is None or math.isfinite(value) else None
    others = [row[m] for m in METHODS[:-1] if row[m] is not None]
    row["h_vs_d"] = improvement(row["dvbpr"], row["bpr_mf"])
    row["h_vs_best"] = improvement(row["dvbpr"], max(others) if others else None)
    for ceiling in _ceilings(oracle):
      row[ceiling] = oracle.get(f"{ceiling}_auc_test{suffix}")
    rows.append(row)
  return rows


def _ceilings(oracle: Mapping[str, float] | None) -> list[str]:
  """The ceiling columns simulated data have: `learnable` (BPR on the true style) and
  `oracle` (the planted model)."""
  return [c for c in ("learnable", "oracle") if oracle and f"{c}_auc_test" in oracle]


def _fmt(value, percent=False) -> str:
  if value is None:
    return "n/a"
  return f"{100 * value:.1f}%" if percent else f"{value:.4f}"


def _finite_or_none(value):
  return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _cell(results: Mapping[str, Mapping], method: str, key: str,
          paired: Mapping | None) -> str:
  """A method's figure, with its 95% interval when kept and the significance mark."""
  value = _finite_or_none(results.get(method, {}).get(key))
  if value is None:
    return "n/a"
  text = f"{value:.4f}"
  interval = (results[method].get("ci95") or {}).get(key)
  if interval and all(_finite_or_none(v) is not None for v in interval):
    text += f" ({interval[0]:.4f}–{interval[1]:.4f})"
  if (paired or {}).get(key, {}).get(method, {}).get("significant"):
    text += " " + SIGNIFICANT
  return text


def _p(value) -> str:
  value = _finite_or_none(value)
  if value is None:
    return "n/a"
  if value == 0:
    return "< 1e-300"  # Below float64's range: the normal tail of a huge z.
  return f"{value:.2g}" if value >= 1e-4 else f"{value:.1e}"


def _paired_lines(paired: Mapping, resamples) -> list[str]:
  out = ["## Paired tests against DVBPR (test users)", "",
         "| Figure | Baseline | DVBPR - baseline (95% interval) | p, paired bootstrap | "
         "p, Wilcoxon | p, Wilcoxon, Holm | significant | users |",
         "|---|---|---|---|---|---|---|---|"]
  for label, key in SHOWN_TESTS:
    for method, row in (paired.get(key) or {}).items():
      difference = _finite_or_none(row.get("difference"))
      interval = (f"{row['difference']:+.4f} ({row['low']:+.4f} to {row['high']:+.4f})"
                  if difference is not None and _finite_or_none(row.get("low")) is not None
                  else "n/a")
      out.append(f"| {label} | {LABELS[method]} | {interval} | {_p(row.get('p_bootstrap'))} | "
                 f"{_p(row.get('p_wilcoxon'))} | {_p(row.get('p_holm'))} | "
                 f"{'yes' if row.get('significant') else 'no'} | {row.get('num_users')} |")
  out += ["", f"Over the test users both methods evaluate; the paired bootstrap draws "
          f"{resamples or 'its'} resamples of the users (p from its standard error); Holm's "
          "correction runs over the baselines of each figure. Every figure's tests are in "
          "results.json (`paired_tests`) and table3.csv.", ""]
  return out


SPLITS = {
    "random": "random leave-one-out (the paper's: one random interaction per user is test, "
              "another validation)",
    "time": "time-aware (each user's latest interaction is test, the one before validation, "
            "the earlier ones train)",
}


def split_description(statistics: Mapping) -> str:
  """Which split a dataset's statistics say it has (`split_method`; random when absent)."""
  method = statistics.get("split_method", "random")
  return SPLITS.get(method, str(method))


def markdown(results: Mapping[str, Mapping], *, dataset: str, preset: str, grid: str,
             features: str, oracle: Mapping[str, float] | None = None,
             paired: Mapping | None = None, resamples: int | None = None,
             split: str | None = None) -> str:
  """Table III as Markdown: the exact AUC, the authors' sampled-100 AUC, the top-K metrics,
  then the paired tests against DVBPR (`significance.paired_tests`) when given."""
  out = [f"# Table III on {dataset} ({preset} preset)", ""]
  if split:
    out += [f"Split: {split}.", ""]
  for title, metric in (("AUC (exact, the paper's definition)", "auc_test"),
                        ("AUC (sampled-100, the authors' code)", "auc_test_sampled100")):
    header = ["Setting"] + [f"({LETTERS[m]}) {LABELS[m]}" for m in columns(results)] + [
        "improvement h vs. d", "h vs. best"] + [
            {"learnable": "learnable ceiling", "oracle": "oracle"}[c] for c in _ceilings(oracle)]
    out += [f"## {title}", "", "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header)]
    for row in table_rows(results, metric, oracle):
      cells = [row["setting"]] + [_cell(results, m, row["key"], paired)
                                  for m in columns(results)] + [
          _fmt(row["h_vs_d"], True), _fmt(row["h_vs_best"], True)]
      cells += [_fmt(row.get(c)) for c in _ceilings(oracle)]
      out.append("| " + " | ".join(cells) + " |")
    out.append("")
  if _has_top_k(results):
    header = ["Metric", "Setting"] + [f"({LETTERS[m]}) {LABELS[m]}" for m in columns(results)]
    out += ["## Top-K on the full ranking (test)", "", "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header)]
    for setting, suffix in TOP_K_SETTINGS:
      for label, metric in TOP_K_METRICS:
        key = top_k_key(metric, suffix)
        out.append("| " + " | ".join([label, setting] + [
            _cell(results, m, key, paired) for m in columns(results)]) + " |")
    out += ["", "HR@K (= Recall@K with one held-out item), NDCG@K and MRR from the held-out "
            "item's rank among the user's negatives (the AUC's: the user's other items never "
            "count; a negative with an equal score ranks above it). Cold users: those whose "
            "test item is cold, ranked among cold items only, or among all items.", ""]
  if paired:
    out += _paired_lines(paired, resamples)
  out += [
      f"Cold Items: users whose test item has fewer than {protocol.COLD_THRESHOLD} training "
      f"observations, negatives restricted to items with fewer than {protocol.COLD_THRESHOLD} "
      "(this project's reading of the paper).",
      f"Pre-trained features (VisRank, FM, VBPR"
      + (", ItemKNN" if "item_knn" in results else "") + f"): {features}.",
      f"Grid searched on validation AUC (WARP, BPR-MF, FM, VBPR): {grid}.",
      "Improvements are relative: (h - x) / x; \"h vs. best\" is against the best of the "
      "paper's (a)-(g)" + (", EASE and ItemKNN (beyond the paper) are not in it." if any(
          m in results for m in BEYOND_PAPER) else "."),
      "In parentheses: the 95% bootstrap interval over users; " + SIGNIFICANT + ": the "
      "baseline differs from DVBPR on that figure (Wilcoxon signed-rank over the same users, "
      "Holm-adjusted over the baselines, p < 0.05).",
  ]
  winners = [f"{LABELS[m]}: " + ", ".join(f"{k}={v}" for k, v in results[m]["params"].items())
             for m in columns(results) if results.get(m, {}).get("params")]
  if winners:
    out.append("Winning grid points: " + "; ".join(winners) + ".")
  return "\n".join(out) + "\n"


def csv_text(results: Mapping[str, Mapping], oracle: Mapping[str, float] | None = None,
             paired: Mapping | None = None) -> str:
  """Table III as CSV: one row per (metric, setting): each method's figure, its 95% interval
  (`<method>_low`, `<method>_high`) and, for the baselines, the Holm-adjusted Wilcoxon p of
  its difference from DVBPR (`<method>_p_holm`)."""
  buffer = io.StringIO()
  per_method = []
  for m in columns(results):
    per_method += [m, f"{m}_low", f"{m}_high"] + ([f"{m}_p_holm"] if m != "dvbpr" else [])
  fields = ["metric", "setting", *per_method, "h_vs_d", "h_vs_best", *_ceilings(oracle)]
  writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
  writer.writeheader()
  rows = [row for metric in ("auc_test", "auc_test_sampled100")
          for row in table_rows(results, metric, oracle)]
  if _has_top_k(results):
    rows += [{"key": top_k_key(metric, suffix), "setting": setting}
             for setting, suffix in TOP_K_SETTINGS for _, metric in TOP_K_METRICS]
  for row in rows:
    key = row["key"]
    out = {"metric": key.replace("_cold_all_items", "").replace("_cold", ""),
           "setting": row["setting"]}
    for m in columns(results):
      record = results.get(m, {})
      interval = (record.get("ci95") or {}).get(key) or (None, None)
      out[m] = _finite_or_none(record.get(key))
      out[f"{m}_low"], out[f"{m}_high"] = map(_finite_or_none, interval)
      if m != "dvbpr":
        out[f"{m}_p_holm"] = _finite_or_none(
            (paired or {}).get(key, {}).get(m, {}).get("p_holm"))
    for extra in ("h_vs_d", "h_vs_best", *_ceilings(oracle)):
      out[extra] = row.get(extra)
    writer.writerow({k: ("" if v is None else (f"{v:.6g}" if k.endswith("p_holm") else
                                                f"{v:.6f}" if isinstance(v, float) else v))
                     for k, v in out.items()})
  return buffer.getvalue()
