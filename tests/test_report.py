"""report.html and the charts: rendering against the results it quotes (no training here)."""

import json

import numpy as np
import pytest

from dvbpr_tf.core import files
from dvbpr_tf.reporting import charts
from dvbpr_tf.reporting import html_report as page
from dvbpr_tf.reporting import sections
from tests import report_checks


def _results(tmp_path):
  figure = tmp_path / "figures" / "curve.png"
  files.write_png_atomic(figure, np.zeros((4, 4, 3), np.uint8))
  return {"dataset": "toy", "model": "dvbpr", "auc_test": 0.71793, "auc_test_cold": 0.5,
          "auc_valid": 0.7, "auc_valid_cold": None, "auc_test_sampled100": 0.69,
          "best_epoch": 3, "oracle_auc_test": 0.9, "oracle_auc_test_cold": 0.91,
          "random_auc": 0.5, "learning_curve_figure": str(figure),
          "dataset_statistics": {"num_users": 10, "num_items": 20, "density": 0.05,
                                 "items_per_category": {"bag": 12, "dress": 8}}}


def test_page_quotes_the_results_and_links_the_figures(tmp_path):
  results = _results(tmp_path)
  files.write_json_atomic(tmp_path / "results.json", results)
  path = page.write_report(tmp_path, "A <run>", results,
                           sections.recommender(results) + sections.dataset(results))
  assert path == tmp_path / "report.html"
  found = report_checks.check_report(tmp_path, min_numbers=10, min_images=1)
  assert found["images"] == ["figures/curve.png"]
  assert found["numbers"]["auc_test"] == 0.71793
  assert found["numbers"]["dataset_statistics.items_per_category.bag"] == 12
  text = path.read_text()
  assert "<td class=\"num\" data-key=\"auc_test\" data-value=\"0.71793\">0.7179</td>" in text
  assert "A &lt;run&gt;" in text  # Escaped.
  assert "<td class=\"num\" data-key=\"auc_valid_cold\" data-value=\"null\">n/a</td>" in text


def test_a_missing_figure_is_said_not_linked(tmp_path):
  results = _results(tmp_path)
  results["learning_curve_figure"] = str(tmp_path / "figures" / "none.png")
  files.write_json_atomic(tmp_path / "results.json", results)
  page.write_report(tmp_path, "t", results, sections.recommender(results))
  found = report_checks.check_report(tmp_path)
  assert found["images"] == []
  assert "figure not written" in (tmp_path / "report.html").read_text()


def test_a_wrong_number_on_the_page_is_caught(tmp_path):
  results = _results(tmp_path)
  page.write_report(tmp_path, "t", results, sections.recommender(results))
  results["auc_test"] = 0.6  # results.json disagrees with the page.
  (tmp_path / "results.json").write_text(json.dumps(results))
  with pytest.raises(AssertionError):
    report_checks.check_report(tmp_path)


def test_lookup_and_format():
  results = {"a": {"b": [1, {"c": 2.5}]}, "n": None}
  assert page.lookup(results, "a.b.1.c") == 2.5
  assert page.lookup(results, "a.b.7") is None and page.lookup(results, "x.y") is None
  assert page.format_value(0.123456) == "0.1235" and page.format_value(3) == "3"
  assert page.format_value(2166.7, 0) == "2167" and page.format_value(None) == "n/a"
  with pytest.raises(ValueError, match="names a dict"):
    page.render("t", results, [page.Section("s", (page.Values((page.Value("v", "a"),)),))],
                ".")


def test_nice_ticks_cover_the_range_with_round_steps():
  ticks = charts.nice_ticks(0.634, 0.912)
  assert ticks[0] <= 0.634 and ticks[-1] >= 0.912
  steps = np.diff(ticks)
  assert np.allclose(steps, steps[0]) and round(steps[0], 10) in (0.05, 0.1)
  assert charts.nice_ticks(5, 5)  # A flat range still gets ticks.


def test_line_chart_draws_each_series_in_its_colour():
  image = charts.line_chart({"valid": ([1, 2, 3], [0.6, 0.7, 0.72]),
                             "test": ([1, 2, 3], [0.61, None, 0.71])},
                            title="t", x_label="epoch", y_label="AUC",
                            reference_lines={"random": 0.5}, width=400, height=300)
  assert image.shape == (300, 400, 3) and image.dtype == np.uint8
  for colour in charts.COLOURS[:2]:
    assert np.all(image == colour, axis=-1).sum() > 30, colour
  empty = charts.line_chart({"x": ([], [])}, title="t", x_label="x", y_label="y")
  assert empty.shape[2] == 3


def test_table4_names_delta_hats_worst_category_against_the_random_real_images():
  from dvbpr_tf.reporting import table4  # pylint: disable=g-import-not-at-top
  row = {"preference_mean": 1.0, "preference_std": 0.1, "quality_mean": 2.0,
         "quality_std": 0.2, "diversity_mean": 0.5, "diversity_std": 0.1,
         "frechet_classifier": 3.0}
  results = {source: dict(row) for source in table4.SOURCES}
  results["random_real"].update(category_accuracy=0.9,
                                category_accuracy_by_category={0: 0.8, 1: 1.0, 2: 0.0})
  results["synthesis"].update(category_accuracy=0.6,
                              category_accuracy_by_category={0: 0.6, 1: 0.5, 2: 0.5})
  for source in ("random_generated", "retrieval"):
    results[source].update(category_accuracy=0.7)
  # Category 2 has no real hits: left out; category 1: 0.5 / 1.0 is the worst ratio.
  assert table4.worst_category(results) == (1, 0.5)
  text = table4.markdown(results, dataset="d", preset="p", trials=3, quality_name="q",
                         eta=1.0, steps=20, category_names=["bag", "dress", "coat"])
  assert "0.67 overall, 0.50 in its worst category (dress)" in text
  assert "20 Adam steps" in text and "| category accuracy |" in text
  assert "delta's codes" not in text
  results[table4.TAILORED] = dict(row, category_accuracy=0.45,
                                  category_accuracy_by_category={0: 0.4, 1: 0.9})
  text = table4.markdown(results, dataset="d", preset="p", trials=3, quality_name="q",
                         eta=1.0, category_names=["bag", "dress", "coat"])
  assert "| delta-hat from delta's codes | 1.0000 +- 0.10 |" in text
  assert "The same from delta's codes: 0.50 overall, 0.50 in its worst category (bag)." in text
  assert table4.csv_text(results).splitlines()[-1].startswith("tailored_retrieval,1.000000")
  del results[table4.TAILORED]
  del results["synthesis"]["category_accuracy_by_category"]
  assert table4.worst_category(results) is None
  assert "worst category" not in table4.markdown(results, dataset="d", preset="p", trials=3,
                                                 quality_name="q", eta=1.0)
