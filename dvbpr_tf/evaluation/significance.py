"""Uncertainty over users: bootstrap confidence intervals, paired tests, Holm's correction.

Every figure of an evaluation is a mean over evaluated users of a per-user value (the user's
AUC, hit, NDCG or reciprocal rank; `metrics.per_user_values`). The users are the sample:

- `bootstrap_interval`: the 95% percentile interval of the mean over `resamples` resamples of
  the users with replacement (seeded, so a rerun gives the same interval);
- `paired_bootstrap`: the same for the mean of the per-user differences between two methods
  evaluated on the same users, with a two-sided p-value from the bootstrap's standard error
  (z = mean / se, p = 2 (1 - Phi(|z|)); a percentile p could not go below 1 / resamples);
- `wilcoxon`: the Wilcoxon signed-rank test of the same differences (SciPy; users with a zero
  difference dropped, `zero_method='wilcox'`; the normal approximation for large samples);
- `holm`: Holm's step-down adjustment of a family of p-values (one per baseline against DVBPR),
  which keeps the family-wise error rate at the level whatever their dependence.

Users with a NaN value (no negative left, or not cold for a cold figure) are left out; a pair
is kept when both of its values are finite.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

LEVEL = 0.95
_BLOCK = 100  # Resamples drawn at once: memory stays at _BLOCK x users indices.


def _finite(values) -> np.ndarray:
  values = np.asarray(values, np.float64)
  return values[np.isfinite(values)]


def _resampled_means(values: np.ndarray, resamples: int, seed) -> np.ndarray:
  """[resamples] means of `values` over users drawn with replacement."""
  rng = np.random.default_rng(seed)
  n = len(values)
  means = np.empty(resamples)
  for start in range(0, resamples, _BLOCK):
    stop = min(start + _BLOCK, resamples)
    means[start:stop] = values[rng.integers(0, n, (stop - start, n))].mean(axis=1)
  return means


def _interval(means: np.ndarray, level: float) -> tuple[float, float]:
  """The central `level` percentile interval of resampled means."""
  tail = 100 * (1 - level) / 2
  low, high = np.percentile(means, [tail, 100 - tail])
  return float(low), float(high)


def bootstrap_interval(values, resamples: int = 1000, seed=0,
                       level: float = LEVEL) -> tuple[float, float]:
  """The `level` percentile bootstrap interval of the mean of `values` over users.

  Returns (low, high); (nan, nan) when fewer than two users have a finite value or
  `resamples` is 0.
  """
  values = _finite(values)
  if len(values) < 2 or resamples < 1:
    return float("nan"), float("nan")
  return _interval(_resampled_means(values, resamples, seed), level)


def _pairs(a, b) -> np.ndarray:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"paired values need one value per user each: {a.shape} vs {b.shape}")
  keep = np.isfinite(a) & np.isfinite(b)
  return a[keep] - b[keep]


def paired_bootstrap(a, b, resamples: int = 1000, seed=0, level: float = LEVEL) -> dict:
  """The paired bootstrap of mean(a - b) over the users both evaluate.

  Returns a dict: `difference` (the observed mean), `low`, `high` (its `level` percentile
  interval), `p_value` (two-sided, normal approximation from the bootstrap standard error),
  `num_users`.
  """
  differences = _pairs(a, b)
  result = {"difference": float("nan"), "low": float("nan"), "high": float("nan"),
            "p_value": float("nan"), "num_users": int(len(differences))}
  if len(differences) < 2 or resamples < 1:
    return result
  mean = float(differences.mean())
  means = _resampled_means(differences, resamples, seed)
  low, high = _interval(means, level)
  se = float(means.std(ddof=1))
  if se > 0:
    p_value = float(2 * stats.norm.sf(abs(mean) / se))
  else:  # Every resample has one mean: the differences are all equal.
    p_value = 1.0 if mean == 0 else 0.0
  result.update(difference=mean, low=low, high=high, p_value=p_value)
  return result


def wilcoxon(a, b) -> float:
  """Two-sided p-value of the Wilcoxon signed-rank test of a - b over the users both
  evaluate (zero differences dropped); 1.0 when every difference is zero, NaN with fewer
  than two users."""
  differences = _pairs(a, b)
  if len(differences) < 2:
    return float("nan")
  if not np.any(differences != 0):
    return 1.0
  return float(stats.wilcoxon(differences, zero_method="wilcox",
                              alternative="two-sided").pvalue)


def holm(p_values) -> np.ndarray:
  """Holm's step-down adjusted p-values, in the input's order (NaNs stay NaN and are not
  counted in the family): the k-th smallest of m gets max over j <= k of (m - j + 1) p_(j),
  capped at 1."""
  p = np.asarray(p_values, np.float64)
  adjusted = np.full(p.shape, np.nan)
  present = np.flatnonzero(np.isfinite(p))
  m = len(present)
  if not m:
    return adjusted
  order = present[np.argsort(p[present], kind="stable")]
  scaled = (m - np.arange(m)) * p[order]
  adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
  return adjusted


def intervals(per_user, resamples: int = 1000, seed=0, level: float = LEVEL) -> dict:
  """`bootstrap_interval` of every figure of an evaluation's per-user values (the keys that
  are not `users_<split>`): {figure: [low, high]}, the same resampling seed for each."""
  return {key: list(bootstrap_interval(values, resamples, seed, level))
          for key, values in per_user.items() if not key.startswith("users_")}


def paired_tests(reference, others, keys, resamples: int = 1000, seed=0,
                 alpha: float = 0.05) -> dict:
  """Each of `others` against `reference` on every figure of `keys`, over the same users.

  Args:
    reference: per-user values of the reference method (DVBPR): {figure: [E]}, with the
      evaluated users under `users_<split>`.
    others: {method: per-user values of the same form}.
    keys: the figures to test (e.g. `auc_test`, `ndcg20_test_cold`).

  Returns:
    {figure: {method: {difference (reference - method), low, high, p_bootstrap, p_wilcoxon,
    p_holm (Holm's adjustment of the Wilcoxon p over the methods of that figure),
    p_holm_bootstrap, significant (p_holm < alpha), num_users}}}. A method whose users
    differ from the reference's is left out.
  """
  aligned = {}
  for method, values in others.items():
    same = all(np.array_equal(values.get(k), reference.get(k))
               for k in reference if k.startswith("users_"))
    if same:
      aligned[method] = values
  result = {}
  for key in keys:
    methods = [m for m in aligned if key in aligned[m] and key in reference]
    rows = {}
    for method in methods:
      row = paired_bootstrap(reference[key], aligned[method][key], resamples, seed)
      rows[method] = {"difference": row["difference"], "low": row["low"], "high": row["high"],
                      "p_bootstrap": row["p_value"],
                      "p_wilcoxon": wilcoxon(reference[key], aligned[method][key]),
                      "num_users": row["num_users"]}
    for column, raw in (("p_holm", "p_wilcoxon"), ("p_holm_bootstrap", "p_bootstrap")):
      adjusted = holm([rows[m][raw] for m in methods])
      for method, p in zip(methods, adjusted):
        rows[method][column] = float(p)
    for row in rows.values():
      row["significant"] = bool(np.isfinite(row["p_holm"]) and row["p_holm"] < alpha)
    result[key] = rows
  return result
