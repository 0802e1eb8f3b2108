"""Dataset statistics, printed by every build and stored in its `metadata.json`."""

from __future__ import annotations

import json
from typing import Mapping

import numpy as np

from dvbpr_tf_datasets.common import protocol
from dvbpr_tf_datasets.common import records

COLD_THRESHOLD = protocol.COLD_THRESHOLD


def interaction_statistics(
    *,
    num_users: int,
    num_items: int,
    users: np.ndarray,
    items: np.ndarray,
    splits: np.ndarray,
    categories: np.ndarray,
    category_names,
    dropped: Mapping[str, int],
) -> dict:
  """Counts that describe a built dataset.

  `dropped` maps a reason (for example `undecodable_image`) to how many items, interactions or
  users were skipped for it; each reason names its unit.
  """
  train_counts = np.bincount(items[splits == records.TRAIN], minlength=num_items)
  all_counts = np.bincount(items, minlength=num_items)
  per_user = np.bincount(users, minlength=num_users)
  test_items = items[splits == records.TEST]
  cold = train_counts < COLD_THRESHOLD
  category_counts = np.bincount(categories, minlength=len(category_names))
  return {
      "num_users": int(num_users),
      "num_items": int(num_items),
      "num_interactions": int(len(users)),
      "num_train": int(np.sum(splits == records.TRAIN)),
      "num_validation": int(np.sum(splits == records.VALIDATION)),
      "num_test": int(np.sum(splits == records.TEST)),
      "num_categories": int(len(category_names)),
      "items_per_category": {str(n): int(c) for n, c in zip(category_names, category_counts)},
      "interactions_per_user_mean": _mean(per_user),
      "interactions_per_user_min": int(per_user.min()) if len(per_user) else 0,
      "interactions_per_user_max": int(per_user.max(initial=0)),
      "observations_per_item_mean": _mean(all_counts),
      "train_observations_per_item_mean": _mean(train_counts),
      "train_observations_per_item_median": float(np.median(train_counts)) if num_items else 0.0,
      "train_observations_per_item_max": int(train_counts.max(initial=0)),
      "cold_threshold": COLD_THRESHOLD,
      "cold_item_share": _mean(cold),
      "cold_test_share": _mean(cold[test_items]) if len(test_items) else 0.0,
      "density": float(len(users)) / max(1, num_users * num_items),
      "dropped": {str(k): int(v) for k, v in sorted(dropped.items())},
  }


def _mean(values) -> float:
  return float(np.mean(values)) if len(values) else 0.0


def format_statistics(name: str, stats: Mapping) -> str:
  """A human-readable block for the build's log."""
  lines = [f"Dataset statistics: {name}"]
  for key, value in stats.items():
    if isinstance(value, Mapping):
      value = json.dumps(value, sort_keys=True)
    elif isinstance(value, float):
      value = f"{value:.4f}"
    lines.append(f"  {key:38s} {value}")
  return "\n".join(lines)
