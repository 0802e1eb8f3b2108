"""The paper's Table III: AUC of every method, All Items and Cold Items, as Markdown and CSV.

Columns as the paper: (a) RAND, (b) PopRank, (c) WARP, (d) BPR-MF, (e) VisRank, (f) FM,
(g) VBPR, (h) DVBPR, then the improvements "h vs. d" and "h vs. best" (the best of a-g),
each the relative gain (h - x) / x in percent, as the paper computes them
(Amazon Fashion, All: (0.7964 - 0.6278) / 0.6278 = 26.9%). For simulated data the planted
model's AUC (the oracle) and the learnable ceiling (BPR on the items' true style numbers)
are the last columns.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Mapping

from dvbpr_tf_datasets.common import protocol

METHODS = ("rand", "poprank", "warp", "bpr_mf", "visrank", "fm", "vbpr", "dvbpr")
LABELS = {"rand": "RAND", "poprank": "PopRank", "warp": "WARP", "bpr_mf": "BPR-MF",
          "visrank": "VisRank", "fm": "FM", "vbpr": "VBPR", "dvbpr": "DVBPR"}
LETTERS = dict(zip(METHODS, "abcdefgh"))
ROWS = (("All Items", ""), ("Cold Items", "_cold"))


def improvement(h: float | None, x: float | None) -> float | None:
  """(h - x) / x, or None when either is missing."""
  if h is None or x is None or not math.isfinite(h) or not math.isfinite(x) or x == 0:
    return None
  return (h - x) / x


def table_rows(results: Mapping[str, Mapping], metric: str = "auc_test",
               oracle: Mapping[str, float] | None = None) -> list[dict]:
  """One dict per row (All, Cold): method columns, improvements, oracle."""
  rows = []
  for label, suffix in ROWS:
    key = metric.replace("auc_test", f"auc_test{suffix}") if suffix else metric
    if suffix and "sampled" in metric:
      continue  # The authors' sampled AUC has no cold-item variant.
    row = {"setting": label}
    for method in METHODS:
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


def markdown(results: Mapping[str, Mapping], *, dataset: str, preset: str, grid: str,
             features: str, oracle: Mapping[str, float] | None = None) -> str:
  """Table III as Markdown: the exact AUC, then the authors' sampled-100 AUC."""
  out = [f"# Table III on {dataset} ({preset} preset)", ""]
  for title, metric in (("AUC (exact, the paper's definition)", "auc_test"),
                        ("AUC (sampled-100, the authors' code)", "auc_test_sampled100")):
    header = ["Setting"] + [f"({LETTERS[m]}) {LABELS[m]}" for m in METHODS] + [
        "improvement h vs. d", "h vs. best"] + [
            {"learnable": "learnable ceiling", "oracle": "oracle"}[c] for c in _ceilings(oracle)]
    out += [f"## {title}", "", "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header)]
    for row in table_rows(results, metric, oracle):
      cells = [row["setting"]] + [_fmt(row[m]) for m in METHODS] + [
          _fmt(row["h_vs_d"], True), _fmt(row["h_vs_best"], True)]
      cells += [_fmt(row.get(c)) for c in _ceilings(oracle)]
      out.append("| " + " | ".join(cells) + " |")
    out.append("")
  out += [
      f"Cold Items: users whose test item has fewer than {protocol.COLD_THRESHOLD} training "
      f"observations, negatives restricted to items with fewer than {protocol.COLD_THRESHOLD} "
      "(this project's reading of the paper).",
      f"Pre-trained features (VisRank, FM, VBPR): {features}.",
      f"Grid searched on validation AUC (WARP, BPR-MF, FM, VBPR): {grid}.",
      "Improvements are relative: (h - x) / x.",
  ]
  winners = [f"{LABELS[m]}: " + ", ".join(f"{k}={v}" for k, v in results[m]["params"].items())
             for m in METHODS if results.get(m, {}).get("params")]
  if winners:
    out.append("Winning grid points: " + "; ".join(winners) + ".")
  return "\n".join(out) + "\n"


def csv_text(results: Mapping[str, Mapping], oracle: Mapping[str, float] | None = None) -> str:
  """Table III as CSV: one row per (metric, setting)."""
  buffer = io.StringIO()
  fields = ["metric", "setting", *METHODS, "h_vs_d", "h_vs_best", *_ceilings(oracle)]
  writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
  writer.writeheader()
  for metric in ("auc_test", "auc_test_sampled100"):
    for row in table_rows(results, metric, oracle):
      writer.writerow({"metric": metric, **{k: ("" if v is None else
                                                (f"{v:.6f}" if isinstance(v, float) else v))
                                            for k, v in row.items()}})
  return buffer.getvalue()
