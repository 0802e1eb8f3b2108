"""The planted model of a simulated dataset and its exact AUC: the ceiling of any learner.

A simulated dataset (fashion_mnist_shoppers) stores the model its shoppers were drawn from
beside its records, `planted_model.npz`: each user's ideal style, each item's style and
log-popularity and the taste strength. Its utilities v_ui (the simulation's
`utilities`: taste plus popularity) ranked by the paper's exact AUC are the oracle figures
shown beside every trained model. They are computed here with the project's metrics when an
experiment first loads the catalog (`experiments.common.load_catalog`), and cached beside the records (`planted_auc.json`, stamped
with the planted file's size and time).
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


def planted_statistics(catalog) -> dict:
  """The oracle figures of a simulated catalog (cached); {} for data without a planted
  model."""
  path = pathlib.Path(catalog.data_path) / PLANTED_MODEL_FILE
  if not path.is_file():
    return {}
  status = os.stat(path)
  identity = {"planted_model": {"size": status.st_size, "mtime_ns": status.st_mtime_ns},
              "num_users": int(catalog.num_users), "num_items": int(catalog.num_items)}
  stamp_path = pathlib.Path(catalog.data_path) / CACHE_FILE
  facts = cache.read_stamp(stamp_path, identity, "planted model AUC")
  if facts is None:
    with np.load(path) as planted:
      facts = {**identity, **oracle_auc(catalog, planted)}
    cache.store(stamp_path, facts, "planted model AUC")
  return {k: v for k, v in facts.items() if k not in identity}
