"""Evaluation of any recommender that offers user vectors and item vectors, or scores.

The figures, for a split s in {valid, test}:
- `auc_<s>`: the paper's exact AUC over all items;
- `auc_<s>_cold`: the same over users whose held-out item has fewer than 5 training
  observations, negatives restricted to such items (this project's reading of "Cold Items");
- `auc_<s>_sampled100`: the authors' code's AUC with 100 sampled negatives;
- the top-K metrics on the full ranking, with the same exclusions: `hr<K>_<s>` (HR@K =
  Recall@K), `ndcg<K>_<s>`, `mrr_<s>` for K in 10, 20, 50, over all items; with `_cold`: the
  cold users ranked among cold items; with `_cold_all_items`: the cold users ranked among all
  items.
(See `metrics`.) With `per_user=True` an evaluation also returns, under `per_user`, every
evaluated user's value of each figure (the figure is their mean over finite values), from
which `significance` draws confidence intervals and paired tests.
"""

from __future__ import annotations

import io
import os
import zipfile
from typing import Callable, Mapping, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from dvbpr_tf.core import files
from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.evaluation import metrics
from dvbpr_tf.evaluation import significance

SPLIT_KEYS = {"validation": "valid", "test": "test"}
SAMPLED_NEGATIVES = 100  # The authors' code's sampled AUC draws 100 items per user.


def split_key(name: str, split: str) -> str:
  """`auc_cold`, `test` -> `auc_test_cold`; `hr10` -> `hr10_test`: the split after the
  metric's first word."""
  metric, _, setting = name.partition("_")
  return f"{metric}_{split}" + (f"_{setting}" if setting else "")


def metric_keys(sampled_negatives: int = SAMPLED_NEGATIVES) -> tuple[str, ...]:
  """The keys an evaluation returns (and results.json holds), validation then test: the
  exact AUCs, the sampled AUC, then the top-K figures."""
  keys = []
  for split in SPLIT_KEYS.values():
    keys += [f"auc_{split}", f"auc_{split}_cold"]
    if sampled_negatives:
      keys.append(f"auc_{split}_sampled{sampled_negatives}")
    keys += [split_key(name, split) for name in metrics.figure_names()[2:]]
  return tuple(keys)


def record_keys(sampled_negatives: int = SAMPLED_NEGATIVES) -> tuple[str, ...]:
  """`metric_keys` and the number of cold test users: what a Table III record keeps."""
  return metric_keys(sampled_negatives) + ("num_users_test_cold",)


METRIC_KEYS = metric_keys()


PER_USER_FILE = "per_user.npz"


def write_per_user(path: str | os.PathLike, per_user: Mapping[str, np.ndarray]) -> None:
  """Every evaluated user's values (an evaluation's `per_user`), as one .npz, atomically."""
  buffer = io.BytesIO()
  np.savez(buffer, **{k: np.asarray(v) for k, v in per_user.items()})
  files.write_bytes_atomic(path, buffer.getvalue())


def read_per_user(path: str | os.PathLike) -> dict | None:
  """What `write_per_user` wrote, or None (with a warning naming the file) when it is
  missing or cannot be read as plain arrays (cut short, or not written by this project)."""
  if not os.path.exists(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as data:
      return {key: data[key] for key in data.files}
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    logging.warning("per-user values %s cannot be read (%s); the intervals and paired tests "
                    "that need them are left out: evaluate the run again to rewrite it",
                    path, " ".join(str(e).split())[:120])
    return None


def uncertainty(figures: dict, resamples: int, seed: int) -> dict:
  """From an evaluation with per-user values: `ci95` ({figure: [low, high]}, the users'
  bootstrap) and `bootstrap_resamples`; empty without per-user values or resamples."""
  per_user = figures.get("per_user")
  if not per_user or not resamples:
    return {}
  return {"ci95": significance.intervals(per_user, resamples, seed),
          "bootstrap_resamples": resamples}


def keep_per_user(figures: dict, folder, resamples: int, seed: int) -> dict:
  """Writes an evaluation's per-user values into `folder`/per_user.npz; returns what a record
  keeps of them: `per_user_file`, `ci95` and `bootstrap_resamples`."""
  path = os.path.join(folder, PER_USER_FILE)
  write_per_user(path, figures["per_user"])
  return {"per_user_file": str(path), **uncertainty(figures, resamples, seed)}


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

  def evaluate_scores(self, score_rows: metrics.ScoreRows, per_user: bool = False) -> dict:
    """All figures from a function of user indices -> [B, num_items] scores (and, with
    `per_user`, every user's values under `per_user`), in one pass over the score rows per
    split (the sampled AUC read from the same chunks)."""
    def evaluate(heldout):
      counter = (metrics.SampledAuc(heldout, self.train_keys, self.catalog.num_items,
                                    self.sampled_negatives, seed=self.seed)
                 if self.sampled_negatives else None)
      figures = metrics.auc_all_and_cold(score_rows, heldout, self.catalog.train_counts,
                                         chunk_size=self.chunk_size, per_user=per_user,
                                         observe=counter.add_rows if counter else None)
      return figures, counter.result(per_user) if counter else None

    return self._figures(evaluate, per_user)

  def selection_heldout(self, num_users: int) -> metrics.HeldOut:
    """A fixed, seeded subset of `num_users` validation users (all when fewer), for model
    selection: the same users at every epoch and grid point of one catalog and seed."""
    heldout = self.heldout["validation"]
    if num_users <= 0 or num_users >= len(heldout):
      return heldout
    rows = np.random.default_rng([self.seed, 0x5E1]).choice(len(heldout), num_users,
                                                             replace=False)
    mask = np.zeros(len(heldout), bool)
    mask[rows] = True
    return heldout.select(mask)

  def evaluate_selection(self, score_rows: metrics.ScoreRows | None, num_users: int,
                         embeddings: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """The figure that picks the best epoch and grid point, and nothing else: the exact
    validation AUC (all items) over `selection_heldout(num_users)`, as `auc_valid`, with
    `num_users_valid_selection`. Scores from `score_rows`, or, given `embeddings` (user and
    item vectors), from their inner products by the embedding path."""
    heldout = self.selection_heldout(num_users)
    if embeddings is not None:
      figures = metrics.auc_all_and_cold_from_embeddings(
          *embeddings, heldout, self.catalog.train_counts, devices=self.devices)
    else:
      figures = metrics.auc_all_and_cold(score_rows, heldout, self.catalog.train_counts,
                                         chunk_size=self.chunk_size)
    return {"auc_valid": figures["auc"], "num_users_valid_selection": len(heldout)}

  def evaluate_embeddings(self, user_vectors: np.ndarray, item_vectors: np.ndarray,
                          per_user: bool = False) -> dict:
    """All figures for x_ui = user_vectors[u] . item_vectors[i]: the exact figures from the
    products counted chunk by chunk (on `devices` if given), the sampled AUC from the
    products with the drawn items only (the draws of `evaluate_scores`)."""
    user_vectors = np.asarray(user_vectors, np.float32)
    item_vectors = np.asarray(item_vectors, np.float32)
    def evaluate(heldout):
      figures = metrics.auc_all_and_cold_from_embeddings(
          user_vectors, item_vectors, heldout, self.catalog.train_counts,
          devices=self.devices, per_user=per_user)
      sampled = (metrics.sampled_auc_from_embeddings(
          user_vectors, item_vectors, heldout, self.train_keys, self.sampled_negatives,
          seed=self.seed, chunk_size=self.chunk_size, per_user=per_user)
                 if self.sampled_negatives else None)
      return figures, sampled

    return self._figures(evaluate, per_user)

  def _figures(self, evaluate: Callable[[metrics.HeldOut], tuple], per_user: bool) -> dict:
    """Per split, `evaluate(heldout)` -> (the exact figures, the sampled AUC or None when
    `sampled_negatives` is 0); with `per_user`, the users' values keyed as the figures, and
    each split's `users`."""
    result, values = {}, {}
    for split, key in SPLIT_KEYS.items():
      heldout = self.heldout[split]
      figures, sampled = evaluate(heldout)
      for name in metrics.figure_names():
        result[split_key(name, key)] = figures[name]
      result[f"num_users_{key}_cold"] = figures["num_users_cold"]
      if per_user:
        values[f"users_{key}"] = heldout.users
        values.update({split_key(name, key): figures["per_user"][name]
                       for name in metrics.figure_names()})
      if self.sampled_negatives:
        sampled_key = f"auc_{key}_sampled{self.sampled_negatives}"
        if per_user:
          values[sampled_key] = sampled
          sampled = metrics.nanmean(sampled)
        result[sampled_key] = sampled
    if per_user:
      result["per_user"] = values
    return result
