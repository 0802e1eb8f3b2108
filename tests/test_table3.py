"""The Table III writer on fixed numbers (the paper's Amazon Fashion row)."""

import csv
import io

import pytest

from dvbpr_tf.reporting import table3

PAPER_FASHION = {  # docs/reproduction.md §3, Amazon Fashion, All / Cold.
    "rand": (0.5, 0.5), "poprank": (0.5849, 0.3905), "warp": (0.6065, 0.5030),
    "bpr_mf": (0.6278, 0.5514), "visrank": (0.6839, 0.6807), "fm": (0.7093, 0.7088),
    "vbpr": (0.7479, 0.7319), "dvbpr": (0.7964, 0.7718)}


def _results():
  return {m: {"auc_test": a, "auc_test_cold": c, "auc_test_sampled100": a + 0.01,
              "params": {"dim": 10} if m == "vbpr" else {}}
          for m, (a, c) in PAPER_FASHION.items()}


def test_improvements_match_the_papers_arithmetic():
  rows = table3.table_rows(_results())
  assert rows[0]["h_vs_d"] == pytest.approx((0.7964 - 0.6278) / 0.6278)  # 26.9%
  assert rows[0]["h_vs_best"] == pytest.approx((0.7964 - 0.7479) / 0.7479)  # 6.5%
  assert rows[1]["h_vs_d"] == pytest.approx((0.7718 - 0.5514) / 0.5514)  # 40.0%
  assert f"{100 * rows[0]['h_vs_d']:.1f}%" == "26.9%"


def test_markdown_and_csv_layout():
  md = table3.markdown(_results(), dataset="d", preset="p", grid="g", features="f",
                       oracle={"oracle_auc_test": 0.9, "oracle_auc_test_cold": 0.85})
  assert "| Setting | (a) RAND | (b) PopRank |" in md
  assert "| All Items | 0.5000 | 0.5849 | 0.6065 | 0.6278 | 0.6839 | 0.7093 | 0.7479 | " \
         "0.7964 | 26.9% | 6.5% | 0.9000 |" in md
  assert "| Cold Items | 0.5000 | 0.3905 |" in md
  assert "VBPR: dim=10" in md
  rows = list(csv.DictReader(io.StringIO(table3.csv_text(_results()))))
  assert [(r["metric"], r["setting"]) for r in rows] == [
      ("auc_test", "All Items"), ("auc_test", "Cold Items"),
      ("auc_test_sampled100", "All Items")]
  assert float(rows[0]["dvbpr"]) == pytest.approx(0.7964)


def test_missing_methods_are_shown_as_na():
  md = table3.markdown({"dvbpr": {"auc_test": 0.7, "auc_test_cold": 0.6}}, dataset="d",
                       preset="p", grid="g", features="f")
  assert "n/a" in md
