"""Bootstrap intervals, paired tests and Holm's correction against closed forms and SciPy."""

import numpy as np
import pytest
from scipy import stats

from dvbpr_tf.evaluation import significance


def test_bootstrap_interval_matches_the_normal_interval_of_a_mean():
  rng = np.random.default_rng(0)
  values = rng.normal(0.7, 0.2, 4000)
  low, high = significance.bootstrap_interval(values, resamples=2000, seed=1)
  half = 1.959964 * values.std(ddof=1) / np.sqrt(len(values))
  assert low < values.mean() < high
  np.testing.assert_allclose([low, high], [values.mean() - half, values.mean() + half],
                             atol=0.12 * half)


def test_bootstrap_interval_is_seeded_and_skips_nan():
  values = np.array([0.1, 0.9, np.nan, 0.5, 0.4, np.nan, 0.7])
  first = significance.bootstrap_interval(values, resamples=500, seed=3)
  assert first == significance.bootstrap_interval(values, resamples=500, seed=3)
  assert first == significance.bootstrap_interval(values[np.isfinite(values)], 500, seed=3)
  assert np.isnan(significance.bootstrap_interval([0.5], 100)[0])
  assert np.isnan(significance.bootstrap_interval([0.5, 0.6], 0)[0])


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
  rng = np.random.default_rng(5)
  covered = 0
  for trial in range(200):
    low, high = significance.bootstrap_interval(rng.exponential(1.0, 200), 400, seed=trial)
    covered += low <= 1.0 <= high
  assert 0.88 <= covered / 200 <= 0.99


@pytest.mark.parametrize("test", ["bootstrap", "wilcoxon"])
def test_null_differences_give_uniform_p_values(test):
  rng = np.random.default_rng(11)
  p_values = []
  for trial in range(200):
    shared = rng.uniform(0.3, 0.9, 300)  # A user effect both methods share.
    a = shared + rng.normal(0, 0.1, 300)
    b = shared + rng.normal(0, 0.1, 300)
    p_values.append(significance.paired_bootstrap(a, b, 300, seed=trial)["p_value"]
                    if test == "bootstrap" else significance.wilcoxon(a, b))
  p_values = np.array(p_values)
  assert 0.01 <= np.mean(p_values < 0.05) <= 0.11
  assert stats.kstest(p_values, "uniform").pvalue > 0.01


@pytest.mark.parametrize("test", ["bootstrap", "wilcoxon"])
def test_a_large_shift_gives_a_tiny_p_value(test):
  rng = np.random.default_rng(2)
  b = rng.uniform(0.3, 0.9, 500)
  a = b + 0.05 + rng.normal(0, 0.05, 500)
  p = (significance.paired_bootstrap(a, b, 1000, seed=0)["p_value"]
       if test == "bootstrap" else significance.wilcoxon(a, b))
  assert p < 1e-6


def test_paired_bootstrap_difference_and_interval():
  rng = np.random.default_rng(4)
  b = rng.uniform(size=1000)
  a = b + rng.normal(0.02, 0.1, 1000)
  a[3] = np.nan  # Left out of the pairs.
  result = significance.paired_bootstrap(a, b, 2000, seed=0)
  d = (a - b)[np.isfinite(a)]
  assert result["num_users"] == 999
  np.testing.assert_allclose(result["difference"], d.mean())
  half = 1.959964 * d.std(ddof=1) / np.sqrt(len(d))
  np.testing.assert_allclose([result["low"], result["high"]],
                             [d.mean() - half, d.mean() + half], atol=0.12 * half)


def test_equal_methods_are_not_different():
  a = np.linspace(0, 1, 50)
  assert significance.paired_bootstrap(a, a, 100)["p_value"] == 1.0
  assert significance.wilcoxon(a, a) == 1.0
  with pytest.raises(ValueError, match="one value per user"):
    significance.wilcoxon(a, a[:10])


def test_wilcoxon_equals_scipy_on_the_differences():
  rng = np.random.default_rng(8)
  a, b = rng.uniform(size=80), rng.uniform(size=80)
  assert significance.wilcoxon(a, b) == pytest.approx(stats.wilcoxon(a - b).pvalue)


def test_holm_by_hand():
  # Sorted 0.01, 0.03, 0.04 of m = 3: 3 * 0.01, max(0.03, 2 * 0.03), max(0.06, 1 * 0.04).
  np.testing.assert_allclose(significance.holm([0.04, 0.01, 0.03]), [0.06, 0.03, 0.06])
  np.testing.assert_allclose(significance.holm([0.2, np.nan, 0.9]), [0.4, np.nan, 0.9])
  assert np.isnan(significance.holm([np.nan])).all()


def test_holm_is_never_below_the_raw_p_and_keeps_the_family_rate():
  rng = np.random.default_rng(1)
  rejections = 0
  for _ in range(2000):
    p = rng.uniform(size=7)  # Seven true nulls.
    adjusted = significance.holm(p)
    assert np.all(adjusted >= p)
    rejections += np.any(adjusted < 0.05)
  assert rejections / 2000 <= 0.06
