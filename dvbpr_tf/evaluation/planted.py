"""The planted model of a simulated dataset, its exact AUC (the ceiling of any learner) and
the learnable ceiling (the best a visual model can learn from the data).

A simulated dataset (fashion_mnist_shoppers) stores the model its shoppers were drawn from
beside its records, `planted_model.npz`: each user's ideal style, each item's style and
log-popularity and the taste strength. Its utilities v_ui (the simulation's
`utilities`: taste plus popularity) ranked by the paper's exact AUC are the oracle figures
shown beside every trained model. The learnable ceiling fits BPR over the items' true style
numbers with theta_u learned from the training split, as a visual model must: the planted
taste's lift that this much data allows. Both are computed with the project's metrics when an
experiment first loads the catalog (`experiments.common.load_catalog`), and cached beside the
records (`planted_auc.json`, stamped with the planted file's size and time).
"""

from __future__ import annotations

import os
import pathlib
from typing import Callable

import numpy as np

from dvbpr_tf.core import cache
from dvbpr_tf.evaluation import evaluator
from dvbpr_tf.evaluation import metrics
from dvbpr_tf_datasets.fashion_mnist_shoppers import simulation

PLANTED_MODEL_FILE = simulation.PLANTED_MODEL_FILE
CACHE_FILE = "planted_auc.json"
SPLITS = {"test": "test", "valid": "validation"}


def utilities(planted) -> Callable[[np.ndarray], np.ndarray]:
  """users -> [B, num_items] planted utilities v_ui (taste plus popularity)."""
  ideal, style = planted["ideal"], planted["style"]
  strength, popularity = float(planted["taste_strength"]), planted["log_popularity"]
  return lambda users: simulation.preference(ideal[users], style, strength) + popularity[None]


def oracle_auc(catalog, planted) -> dict:
  """`oracle_auc_<s>`, `oracle_auc_<s>_cold`, `num_users_cold_<s>` for s in test, valid."""
  score_rows = utilities(planted)
  result = {}
  for key, split in SPLITS.items():
    aucs = metrics.auc_all_and_cold(score_rows, evaluator.heldout(catalog, split),
                                    catalog.train_counts)
    result[f"oracle_auc_{key}"] = aucs["auc"]
    result[f"oracle_auc_{key}_cold"] = aucs["auc_cold"]
    result[f"num_users_cold_{key}"] = aucs["num_users_cold"]
  return result


def style_features(planted) -> np.ndarray:
  """The true visual features of the items: their six style numbers and the squared norm,
  the terms of the planted taste -s/2 ||s_i - a_u||^2 that vary with the item."""
  style = np.asarray(planted["style"], np.float64)
  return np.concatenate([style, (style ** 2).sum(1, keepdims=True)], axis=1)


def fit_bpr_on_features(features: np.ndarray, users: np.ndarray, items: np.ndarray,
                        num_users: int, reg: float, *, negatives: int = 40,
                        steps: int = 100, learning_rate: float = 0.05,
                        seed: int = 0) -> np.ndarray:
  """theta [num_users, F] maximising the BPR objective over fixed item features,
  sum ln sigmoid(theta_u . (f_i - f_j)) - reg / 2 ||theta_u||^2 over the training pairs (u, i)
  and `negatives` items j drawn uniformly per pair (seeded), by full-batch Adam."""
  rng = np.random.default_rng(seed)
  scale = features.std(0)
  features = features / np.where(scale > 0, scale, 1.0)  # Conditioning only: theta absorbs it.
  drawn = rng.integers(0, len(features), (len(users), negatives))
  differences = features[items][:, None, :] - features[drawn]  # [M, negatives, F]
  theta = np.zeros((num_users, features.shape[1]))
  moment, second = np.zeros_like(theta), np.zeros_like(theta)
  for step in range(1, steps + 1):
    margins = np.einsum("mkf,mf->mk", differences, theta[users])
    weights = 1.0 / (1.0 + np.exp(np.clip(margins, -50, 50)))  # sigmoid(-margin)
    gradient = -reg * theta
    np.add.at(gradient, users, np.einsum("mk,mkf->mf", weights, differences))
    moment = 0.9 * moment + 0.1 * gradient
    second = 0.999 * second + 0.001 * gradient ** 2
    theta += learning_rate * (moment / (1 - 0.9 ** step)) / (
        np.sqrt(second / (1 - 0.999 ** step)) + 1e-8)
  return theta / np.where(scale > 0, scale, 1.0)


LEARNABLE_REGS = (1.0, 10.0, 100.0)


def learnable_ceiling(catalog, planted, seed: int = 0) -> dict:
  """What a visual model can learn from this much data: BPR over the true style features
  (`style_features`) with theta_u fitted on the training split, the regulariser chosen on
  validation AUC among LEARNABLE_REGS; `learnable_auc_<s>`, `learnable_auc_<s>_cold` and
  `learnable_reg`. (The oracle knows each user's ideal; this ceiling has to learn it.)"""
  features = style_features(planted)
  users, items = catalog.interactions("train")
  heldout = {key: evaluator.heldout(catalog, split) for key, split in SPLITS.items()}
  best = None
  for reg in LEARNABLE_REGS:
    theta = fit_bpr_on_features(features, users, items, catalog.num_users, reg, seed=seed)
    score_rows = lambda rows, theta=theta: theta[rows] @ features.T
    valid = metrics.auc_all_and_cold(score_rows, heldout["valid"], catalog.train_counts)
    if best is None or valid["auc"] > best[0]:
      best = (valid["auc"], reg, score_rows, valid)
  _, reg, score_rows, valid = best
  test = metrics.auc_all_and_cold(score_rows, heldout["test"], catalog.train_counts)
  return {"learnable_auc_test": test["auc"], "learnable_auc_test_cold": test["auc_cold"],
          "learnable_auc_valid": valid["auc"], "learnable_auc_valid_cold": valid["auc_cold"],
          "learnable_reg": reg}


def planted_statistics(catalog) -> dict:
  """The oracle figures of a simulated catalog (cached); {} for data without a planted
  model."""
  path = pathlib.Path(catalog.data_path) / PLANTED_MODEL_FILE
  if not path.is_file():
    return {}
  status = os.stat(path)
  identity = {"planted_model": {"size": status.st_size, "mtime_ns": status.st_mtime_ns},
              "num_users": int(catalog.num_users), "num_items": int(catalog.num_items),
              "figures": ["oracle", "learnable"], "learnable_regs": list(LEARNABLE_REGS)}
  stamp_path = pathlib.Path(catalog.data_path) / CACHE_FILE
  facts = cache.read_stamp(stamp_path, identity, "planted model AUC")
  if facts is None:
    with np.load(path) as planted:
      facts = {**identity, **oracle_auc(catalog, planted),
               **learnable_ceiling(catalog, planted)}
    cache.store(stamp_path, facts, "planted model AUC")
  return {k: v for k, v in facts.items() if k not in identity}
