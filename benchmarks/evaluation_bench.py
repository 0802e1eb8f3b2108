"""Benchmark 3: exact all-items AUC at Amazon Fashion's size.

64,583 users x 234,892 items, K = 100, random embeddings and a random leave-one-out split with
Amazon Fashion's 513,367 interactions; every user is evaluated on their test item, on all
items and on cold items (`metrics.auc_all_and_cold_from_embeddings`, one pass).

Rows:
- `evaluation`: the exact AUC (A) against the bare user x item product it needs (B: the same
  chunks of users multiplied by every item into the same reused buffer, nothing else),
  users/s. Goal: A close to B (>= 0.8x) and under 20 s in all. (`tf.matmul` for the same
  product, with a fresh output per chunk, is timed on a subset, in the details.)
- `evaluation_vs_authors`: per user evaluated, the exact AUC against the authors' evaluation
  loop (DVBPR/main.py `AUC`, re-created line for line: for each user a NumPy product with every
  item, 100 items drawn by `random.sample`, a Python loop comparing them), timed on a subset of
  users and extrapolated. The authors' loop computes the sampled-100 AUC, an estimate; ours is
  exact over every item.
- `evaluation_vs_numpy`: the exact AUC against the same metric computed from NumPy score
  rows (`metrics.auc_all_and_cold` fed by `theta[users] @ phi.T`, what
  `evaluation.Evaluator.evaluate_embeddings` ran before it switched to A), on a subset of users.

The agreement of the two exact paths (per-user AUCs on the subset) is in the details; with the
tiny size's integer embeddings every product is exact and they must be identical.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import time

import numpy as np
import tensorflow as tf

from benchmarks import common
from benchmarks import synthetic
from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf.evaluation import metrics

NAME = "evaluation"
TITLE = "Evaluation: exact all-items AUC at Amazon Fashion's size (64,583 x 234,892, K=100)"
GOAL_RATIO = 0.8


@dataclasses.dataclass(frozen=True)
class Config:
  """Attributes:
    num_users, num_items, num_interactions, dim: the problem's size (Amazon Fashion, K).
    chunk_size: users per compiled product-and-count.
    repeats: measurement rounds (each: exact AUC, bare product, both subsets).
    subset_users: users of the NumPy score-rows path and the agreement check.
    authors_users: users the authors' loop is timed on.
    sampled_negatives: items the authors' loop draws per user.
    integer_embeddings: small-integer theta and phi (exact products: the paths must agree
      bit for bit) instead of Gaussian ones.
    time_budget_seconds: the goal for the whole exact evaluation.
    seed: data seed.
  """

  num_users: int = 64583
  num_items: int = 234892
  num_interactions: int = 513367
  dim: int = 100
  chunk_size: int = metrics.EMBEDDING_CHUNK_SIZE
  repeats: int = 2
  subset_users: int = 2048
  authors_users: int = 200
  sampled_negatives: int = 100
  integer_embeddings: bool = False
  time_budget_seconds: float = 20.0
  seed: int = 0


SIZES = {
    "tiny": Config(num_users=600, num_items=3000, num_interactions=4800, dim=10,
                   chunk_size=256, subset_users=600, authors_users=60,
                   integer_embeddings=True),
    "full": Config(),
}


def authors_sampled_auc(theta: np.ndarray, phi: np.ndarray, user_train: dict, user_test: dict,
                        num_items: int, num_samples: int = 100, seed: int = 0) -> float:
  """The authors' `AUC(train, test, U, I)` (DVBPR/main.py), line for line in Python 3.

  Args:
    theta, phi: U and I, [num_users, K] and [num_items, K].
    user_train: {user: [{"productid": item}, ...]}, the users to evaluate.
    user_test: {user: [{"productid": held-out item}]}.
    num_items: itemnum.
    num_samples: the 100 of `random.sample(xrange(itemnum), 100)`.
    seed: seeds their `random` module's draws.
  """
  rng = random.Random(seed)
  ans = 0.0
  cc = 0
  for u in user_train:
    i = user_test[u][0]["productid"]
    scores = np.dot(theta[u, :], phi.T)
    cc += 1
    seen = set()
    for item in user_train[u]:
      seen.add(item["productid"])
    seen.add(i)
    count = 0
    tmpans = 0.0
    for j in rng.sample(range(num_items), num_samples):
      if j in seen:
        continue
      if scores[i] > scores[j]:
        tmpans += 1
      count += 1
    tmpans /= float(count)
    ans += tmpans
  ans /= float(cc)
  return ans


def _authors_inputs(users, items, splits, evaluated: np.ndarray):
  """Their `user_train` and `user_test` dicts for the evaluated users."""
  wanted = set(evaluated.tolist())
  train, test = {u: [] for u in evaluated.tolist()}, {}
  for u, i, s in zip(users.tolist(), items.tolist(), splits.tolist()):
    if u not in wanted:
      continue
    if s == catalog_lib.TRAIN:
      train[u].append({"productid": i})
    elif s == catalog_lib.TEST:
      test[u] = [{"productid": i}]
  return train, test


def bare_product(theta: np.ndarray, items_t: np.ndarray, users: np.ndarray,
                 chunk_size: int) -> None:
  """The [users, items] score matrix, chunk by chunk, each chunk written into one reused
  buffer (as the exact AUC does) and dropped: `items_t` is phi transposed, [K, N]."""
  buffer = np.empty((min(chunk_size, len(users)), items_t.shape[1]), np.float32)
  for start in range(0, len(users), chunk_size):
    part = users[start:start + chunk_size]
    np.matmul(theta[part], items_t, out=buffer[:len(part)])


@tf.function
def _tf_product(user_vectors, item_vectors):
  return tf.matmul(user_vectors, item_vectors, transpose_b=True)


def tf_product(theta: np.ndarray, item_vectors: tf.Tensor, users: np.ndarray,
               chunk_size: int) -> None:
  """The same product with `tf.matmul` (a fresh output tensor per chunk), for comparison."""
  for start in range(0, len(users), chunk_size):
    _tf_product(tf.constant(theta[users[start:start + chunk_size]]), item_vectors)


def _embeddings(config: Config) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(config.seed)
  shapes = (config.num_users, config.dim), (config.num_items, config.dim)
  if config.integer_embeddings:
    return tuple(rng.integers(-3, 4, s).astype(np.float32) for s in shapes)
  return tuple(rng.standard_normal(s, dtype=np.float32) for s in shapes)


def run(config: Config) -> common.BenchmarkResult:
  """Times the exact AUC, the bare product, the NumPy path and the authors' loop."""
  started = time.perf_counter()
  users, items, splits = synthetic.random_split(config.num_users, config.num_items,
                                                config.num_interactions, config.seed)
  heldout = metrics.HeldOut.from_interactions(users, items, splits == catalog_lib.TEST,
                                              config.num_users)
  train_counts = np.bincount(items[splits == catalog_lib.TRAIN], minlength=config.num_items)
  theta, phi = _embeddings(config)
  phi_t = np.ascontiguousarray(phi.T)
  subset = heldout.select(np.arange(len(heldout)) < config.subset_users)
  authors_train, authors_test = _authors_inputs(
      users, items, splits, heldout.users[:config.authors_users])
  num_authors = len(authors_train)

  def exact():
    return metrics.auc_all_and_cold_from_embeddings(theta, phi, heldout, train_counts,
                                                    chunk_size=config.chunk_size)

  def numpy_path(evaluated):
    return metrics.auc_all_and_cold(lambda u: theta[u] @ phi_t, evaluated, train_counts)

  warm = heldout.select(np.arange(len(heldout)) < config.chunk_size)
  metrics.auc_all_and_cold_from_embeddings(theta, phi, warm, train_counts,
                                           chunk_size=config.chunk_size)

  results, cpu_seconds = {}, {"exact": [], "bare": []}

  def measure_exact() -> float:
    cpu = time.process_time()
    rate, results["exact"] = common.measured(len(heldout), exact)
    cpu_seconds["exact"].append(time.process_time() - cpu)
    return rate

  def measure_bare() -> float:
    cpu = time.process_time()
    rate, _ = common.measured(
        len(heldout), lambda: bare_product(theta, phi_t, heldout.users, config.chunk_size))
    cpu_seconds["bare"].append(time.process_time() - cpu)
    return rate

  exact_rates, bare_rates = common.interleaved([measure_exact, measure_bare], config.repeats)
  numpy_rates, authors_rates = [], []
  for r in range(config.repeats):
    rate, results["numpy_subset"] = common.measured(len(subset), lambda: numpy_path(subset))
    numpy_rates.append(rate)
    rate, results["authors"] = common.measured(num_authors, functools.partial(
        authors_sampled_auc, theta, phi, authors_train, authors_test, config.num_items,
        config.sampled_negatives, seed=config.seed + r))
    authors_rates.append(rate)
  phi_tensor = tf.constant(phi)
  subset_users = heldout.users[:config.subset_users]
  tf_product(theta, phi_tensor, subset_users[:config.chunk_size], config.chunk_size)
  tf_product_rate, _ = common.measured(len(subset_users), lambda: tf_product(
      theta, phi_tensor, subset_users, config.chunk_size))
  scored_only_rate, _ = common.measured(num_authors, functools.partial(
      _authors_loop_sampled_scores, theta, phi, authors_train, authors_test, config.num_items,
      config.sampled_negatives))

  unit = "users/s"
  exact_rate = common.Rate("exact AUC, all + cold, one pass", unit, tuple(exact_rates))
  exact_seconds = len(heldout) / exact_rate.median
  bare_seconds = len(heldout) / float(np.median(bare_rates))
  authors_seconds = len(heldout) / float(np.median(authors_rates))
  rows = (
      common.compare(
          NAME, exact_rate, common.Rate("bare user x item product", unit, tuple(bare_rates)),
          GOAL_RATIO, goal=f">= {GOAL_RATIO:g}x and < {config.time_budget_seconds:g} s",
          extra_condition=exact_seconds < config.time_budget_seconds,
          note=f"{len(heldout):,} users x {config.num_items:,} items: exact AUC "
               f"{exact_seconds:.1f} s, bare product {bare_seconds:.1f} s"),
      common.compare(
          f"{NAME}_vs_authors", exact_rate,
          common.Rate("authors' per-user sampled-100 loop", unit, tuple(authors_rates)), None,
          note=f"per user evaluated; authors' loop timed on {num_authors} users, "
               f"{authors_seconds:,.0f} s for all {len(heldout):,}"),
      common.compare(
          f"{NAME}_vs_numpy", exact_rate,
          common.Rate("same metric from NumPy score rows", unit, tuple(numpy_rates)), None,
          note=f"the NumPy path (the Evaluator's former path) timed on {len(subset):,} users"),
  )
  details = {
      "exact_seconds": exact_seconds,
      "bare_product_seconds": bare_seconds,
      "process_cpu_seconds": cpu_seconds,
      "product_tflop": 2.0 * len(heldout) * config.num_items * config.dim / 1e12,
      "bare_product_gflop_per_cpu_second": (
          2.0 * len(heldout) * config.num_items * config.dim / 1e9
          / float(np.median(cpu_seconds["bare"]))),
      "authors_loop_seconds_extrapolated": authors_seconds,
      "tf_matmul_product_on_subset": common.Rate(
          "the bare product with tf.matmul instead", unit, (tf_product_rate,)).as_dict(),
      "auc": results["exact"],
      "authors_sampled_auc_on_subset": results["authors"],
      "authors_loop_scoring_only_the_samples": common.Rate(
          "authors' loop scoring only the 100 drawn items", unit, (scored_only_rate,)).as_dict(),
      "agreement_on_subset": _agreement(theta, phi, phi_t, subset, train_counts,
                                        results["numpy_subset"], config),
      "num_cold_users": int(np.sum(train_counts[heldout.items] < metrics.COLD_THRESHOLD)),
  }
  return common.BenchmarkResult(NAME, TITLE, rows, dataclasses.asdict(config), details,
                                time.perf_counter() - started)


def _authors_loop_sampled_scores(theta, phi, user_train, user_test, num_items: int,
                                 num_samples: int) -> float:
  """The authors' loop with one change: only the drawn items (and the held-out one) are
  scored, not the whole catalog. A stronger baseline than their code."""
  rng = random.Random(0)
  total = 0.0
  for u in user_train:
    i = user_test[u][0]["productid"]
    seen = {item["productid"] for item in user_train[u]} | {i}
    drawn = [j for j in rng.sample(range(num_items), num_samples) if j not in seen]
    scores = phi[drawn] @ theta[u]
    total += float(np.mean(scores < np.dot(phi[i], theta[u])))
  return total / len(user_train)


def _agreement(theta, phi, phi_t, subset: metrics.HeldOut, train_counts, numpy_result: dict,
               config: Config) -> dict:
  """Per-user exact AUC on the subset by both paths, and the summaries of both."""
  embedding_users = metrics.per_user_auc_from_embeddings(theta, phi, subset,
                                                     chunk_size=config.chunk_size)
  numpy_users = metrics.per_user_auc(lambda u: theta[u] @ phi_t, subset, config.num_items)
  embedding_summary = metrics.auc_all_and_cold_from_embeddings(theta, phi, subset, train_counts,
                                                           chunk_size=config.chunk_size)
  difference = np.abs(embedding_users - numpy_users)
  return {
      "users": len(subset),
      "users_differing": int(np.sum(difference > 0)),
      "max_abs_difference": float(np.max(difference)) if len(difference) else 0.0,
      "embeddings": embedding_summary,
      "numpy": numpy_result,
      "identical": bool(np.array_equal(embedding_users, numpy_users, equal_nan=True)
                        and embedding_summary == numpy_result),
  }
