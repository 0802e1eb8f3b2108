"""Evaluation of any recommender that offers user vectors and item vectors, or scores.

The figures, for a split s in {valid, test}:
- `auc_<s>`: the paper's exact AUC over all items;
- `auc_<s>_cold`: the same over users whose held-out item has fewer than 5 training
  observations, negatives restricted to such items (this project's reading of "Cold Items");
- `auc_<s>_sampled100`: the authors' code's AUC with 100 sampled negatives.
(See `metrics`.)
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.evaluation import metrics

SPLIT_KEYS = {"validation": "valid", "test": "test"}
SAMPLED_NEGATIVES = 100  # The authors' code's sampled AUC draws 100 items per user.


def metric_keys(sampled_negatives: int = SAMPLED_NEGATIVES) -> tuple[str, ...]:
  """The AUC keys an evaluation returns (and results.json holds), validation then test."""
  keys = []
  for split in SPLIT_KEYS.values():
    keys += [f"auc_{split}", f"auc_{split}_cold"]
    if sampled_negatives:
      keys.append(f"auc_{split}_sampled{sampled_negatives}")
  return tuple(keys)


def record_keys(sampled_negatives: int = SAMPLED_NEGATIVES) -> tuple[str, ...]:
  """`metric_keys` and the number of cold test users: what a Table III record keeps."""
  return metric_keys(sampled_negatives) + ("num_users_test_cold",)


METRIC_KEYS = metric_keys()


def heldout(catalog: catalog_lib.Catalog, split: str) -> metrics.HeldOut:
  """The evaluation set of `validation` or `test`: each user's held-out item, and the items
  excluded from that user's negatives (all of the user's interactions)."""
  return metrics.HeldOut.from_interactions(
      catalog.users, catalog.items, catalog.splits == catalog_lib.SPLIT_CODES[split],
      catalog.num_users)


def embed_items(embed: Callable[[tf.Tensor], tf.Tensor], table: input_pipeline.ImageTable,
                batch_size: int = 256) -> np.ndarray:
  """Runs `embed` (images in [-1, 1] -> vectors) over every catalog item once: [N, K]."""
  parts = [embed(batch["image"]).numpy()
           for batch in input_pipeline.item_dataset(table, batch_size)]
  return np.concatenate(parts).astype(np.float32)


class Evaluator:
  """Exact and sampled AUC on the validation and test splits of one catalog."""

  def __init__(self, catalog: catalog_lib.Catalog,
               sampled_negatives: int = SAMPLED_NEGATIVES, seed: int = 0,
               chunk_size: int = 1024, devices: Sequence[str] | None = None):
    """`devices`: where `evaluate_embeddings` runs the user x item products, chunk by chunk
    (a distribution strategy's devices); None: on the host."""
    self.catalog = catalog
    self.heldout = {split: heldout(catalog, split) for split in SPLIT_KEYS}
    users, items = catalog.interactions("train")
    self.train_keys = metrics.train_pair_keys(users, items, catalog.num_items)
    self.sampled_negatives = sampled_negatives
    self.seed = seed
    self.chunk_size = chunk_size
    self.devices = tuple(devices) if devices else None

  def evaluate_scores(self, score_rows: metrics.ScoreRows) -> dict:
    """All figures from a function of user indices -> [B, num_items] scores."""
    return self._figures(
        lambda heldout: metrics.auc_all_and_cold(score_rows, heldout, self.catalog.train_counts,
                                                 chunk_size=self.chunk_size),
        score_rows)

  def evaluate_embeddings(self, user_vectors: np.ndarray, item_vectors: np.ndarray) -> dict:
    """All figures for x_ui = user_vectors[u] . item_vectors[i]: the exact AUCs from the
    products counted chunk by chunk (on `devices` if given), the sampled AUC as
    `evaluate_scores`."""
    user_vectors = np.asarray(user_vectors, np.float32)
    item_vectors = np.asarray(item_vectors, np.float32)
    item_t = np.ascontiguousarray(item_vectors.T)
    return self._figures(
        lambda heldout: metrics.auc_all_and_cold_from_embeddings(
            user_vectors, item_vectors, heldout, self.catalog.train_counts,
            devices=self.devices),
        lambda users: user_vectors[users] @ item_t)

  def _figures(self, exact_auc: Callable[[metrics.HeldOut], dict],
               score_rows: metrics.ScoreRows) -> dict:
    """Exact AUCs (all, cold) by `exact_auc` and the sampled AUC from `score_rows`, per
    split."""
    result = {}
    for split, key in SPLIT_KEYS.items():
      heldout = self.heldout[split]
      exact = exact_auc(heldout)
      result[f"auc_{key}"] = exact["auc"]
      result[f"auc_{key}_cold"] = exact["auc_cold"]
      result[f"num_users_{key}_cold"] = exact["num_users_cold"]
      if self.sampled_negatives:
        result[f"auc_{key}_sampled{self.sampled_negatives}"] = metrics.sampled_auc(
            score_rows, heldout, self.train_keys, self.catalog.num_items,
            self.sampled_negatives, seed=self.seed, chunk_size=self.chunk_size)
    return result
