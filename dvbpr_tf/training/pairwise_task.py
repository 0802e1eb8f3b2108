"""Training of the recommenders that learn from (u, i, j) index triplets alone or with fixed
item features (BPR-MF, WARP, FM, VBPR): `BprTask` with no images in the input pipeline, and
`train_pairwise`, one grid point trained to its best-validation record.

A model trained by this task is a `baselines.bpr_mf.BprModel` (or any Keras model with
`metric_names`, `loss_terms(batch, training)` on a batch dict of int64 [B] `user`, `pos`,
`neg`, and `score_rows(users)`: [B, num_items] scores x_ui of the given users over every
item). The `Trainer` runs it; `Evaluator` scores it exactly as DVBPR.
"""

from __future__ import annotations

import pathlib

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.baselines import recommenders
from dvbpr_tf.core import distribution
from dvbpr_tf.core import workdir as workdir_lib
from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf.data import sampler as sampler_lib
from dvbpr_tf.evaluation import evaluator as evaluator_lib
from dvbpr_tf.training import bpr_task
from dvbpr_tf.training import trainer as trainer_lib


MATRIX_FACTORISATION = ("bpr_mf", "warp")  # Trained with `mf_optimizer`: only ID rows.


class PairwiseTask(bpr_task.BprTask):
  """Adam (or SGD: `algorithm`) on a pairwise model's loss over the sampler's triplets."""

  def __init__(self, model: keras.Model, catalog: catalog_lib.Catalog, *, batch_size: int,
               learning_rate: float, seed: int = 0, algorithm: str = "adam",
               sampled_negatives: int = evaluator_lib.SAMPLED_NEGATIVES,
               sampler: sampler_lib.TripletSampler | None = None,
               evaluator: evaluator_lib.Evaluator | None = None, fused_sgd: bool = True,
               selection_users: int = 0):
    """`selection_users` > 0: each epoch's evaluation is `Evaluator.evaluate_selection` over
    that many validation users (the full evaluation then runs once, on the best checkpoint:
    `evaluate(per_user=True)`)."""
    super().__init__(model, catalog, batch_size=batch_size,
                     optimizer=config_lib.OptimizerConfig(learning_rate=learning_rate,
                                                          algorithm=algorithm),
                     sampler=sampler or bpr_task.default_sampler(catalog, seed),
                     fused_sgd=fused_sgd)
    self.evaluator = evaluator or evaluator_lib.Evaluator(catalog, sampled_negatives,
                                                          seed=seed)
    self._score_rows = tf.function(model.score_rows, reduce_retracing=True)
    self.selection_users = int(selection_users)

  def dataset(self, start_step: int,
              shard: distribution.Shard | None = None) -> tf.data.Dataset:
    return self.sampler.dataset(self.batch_size, start=start_step,
                                shard=shard).prefetch(tf.data.AUTOTUNE)

  def score_rows(self, users: np.ndarray) -> np.ndarray:
    return self._score_rows(tf.constant(users, tf.int64)).numpy()

  def evaluate(self, per_user: bool = False):
    """The evaluator's figures; for a model with `embeddings()` (x_ui as one inner product:
    BPR-MF, WARP, FM, VBPR) by the evaluator's embedding path (one reused buffer, the
    sampled AUC from the drawn items only), otherwise from `score_rows`."""
    embeddings = self.model.embeddings() if hasattr(self.model, "embeddings") else None
    if self.selection_users and not per_user:
      return self.evaluator.evaluate_selection(self.score_rows, self.selection_users,
                                               embeddings=embeddings)
    if embeddings is not None:
      return self.evaluator.evaluate_embeddings(*embeddings, per_user=per_user)
    return self.evaluator.evaluate_scores(self.score_rows, per_user=per_user)


def optimisation(method: str, baseline: config_lib.BaselineConfig) -> tuple[str, float, int]:
  """(optimiser, step size, batch) of a pairwise method: BPR-MF and WARP by `mf_optimizer`
  on `mf_batch_size`, FM and VBPR by `feature_optimizer` on `batch_size`."""
  if method in MATRIX_FACTORISATION:
    return (baseline.mf_optimizer, baseline.mf_learning_rate,
            baseline.mf_batch_size or baseline.batch_size)
  return baseline.feature_optimizer, baseline.learning_rate, baseline.batch_size


def train_pairwise(method: str, catalog: catalog_lib.Catalog, item_features,
                   baseline: config_lib.BaselineConfig, dim: int, reg: float,
                   workdir: workdir_lib.Workdir, seed: int, strategy=None,
                   evaluate_best: bool | None = None) -> dict:
  """Trains one grid point (K = `dim`, `reg`) of a pairwise model in `workdir` (resuming from
  its checkpoints; under `strategy`, if given); returns its best-validation record: the
  evaluator's figures and `best_epoch`.

  `evaluate_best` (default: unless `baseline.selection_users`): evaluate the best checkpoint
  on every user (the figures, per-user values and intervals). Without it, a run with
  `selection_users` returns the selection figure only (`auc_valid`, on the subset): a grid
  search picks its point on that and calls this again with `evaluate_best=True` for the
  winner, which finds its training done and only evaluates it."""
  if evaluate_best is None:
    evaluate_best = not baseline.selection_users
  with distribution.scope(strategy):
    model, sampler = recommenders.build_pairwise(
        method, catalog, item_features, dim=dim, reg=reg, seed=seed,
        max_sampled=baseline.warp_max_sampled, vbpr_visual_bias=baseline.vbpr_visual_bias,
        vbpr_reg_E=baseline.vbpr_reg_E)
    algorithm, rate, batch_size = optimisation(method, baseline)
    task = PairwiseTask(model, catalog, batch_size=batch_size, learning_rate=rate,
                        algorithm=algorithm, seed=seed, sampler=sampler,
                        sampled_negatives=baseline.sampled_negatives,
                        fused_sgd=baseline.fused_sgd, selection_users=baseline.selection_users)
  steps = trainer_lib.steps_per_epoch(len(catalog.interactions("train")[0]), batch_size,
                                      baseline.steps_per_epoch)
  loop = trainer_lib.LoopConfig(epochs=baseline.epochs, steps_per_epoch=steps,
                                steps_per_loop=min(baseline.steps_per_loop, steps),
                                patience=baseline.patience, jit_compile=baseline.jit_compile)
  trainer = trainer_lib.Trainer(task, loop, workdir, strategy=strategy)
  summary = trainer.run()
  best = summary["best"] or {}
  keys = evaluator_lib.record_keys(baseline.sampled_negatives)
  record = {k: best.get(k) for k in keys} | {
      "best_epoch": best.get("epoch"), "epochs_trained": len(summary["history"]),
      "stopped_early_at_epoch": summary["stopped_early_at_epoch"],
      "train_pairs_per_second": summary["train_rate_median"]}
  if baseline.selection_users:
    record["num_users_valid_selection"] = best.get("num_users_valid_selection")
  if evaluate_best and trainer.restore_best() is not None:  # Every user, for Table III's tests.
    figures = task.evaluate(per_user=True)
    if baseline.selection_users:  # The epochs saw the selection figure only.
      record |= {k: figures[k] for k in keys} | {"auc_valid_selection": best.get("auc_valid")}
    record.update(evaluator_lib.keep_per_user(figures, workdir.root,
                                              baseline.bootstrap_resamples, seed))
  return record


def grid_search(method: str, catalog: catalog_lib.Catalog, item_features,
                baseline: config_lib.BaselineConfig, folder, seed: int,
                make_strategy=lambda: None) -> dict:
  """Every grid point (K in `dims` x reg in `regs`) trained in `folder`/K<K>_reg<reg>, the
  best on `auc_valid` kept: its record with `params` and the whole `grid`. With
  `selection_users`, the points are compared on the users' subset and only the winner is
  evaluated on every user. `make_strategy`: each point's distribution strategy."""
  grid = []
  points = [(d, r) for d in baseline.dims for r in baseline.regs]

  def train(dim, reg, **kwargs):
    point = workdir_lib.Workdir(pathlib.Path(folder) / f"K{dim}_reg{reg:g}")
    return train_pairwise(method, catalog, item_features, baseline, dim, reg, point, seed,
                          strategy=make_strategy(), **kwargs)

  for n, (dim, reg) in enumerate(points, 1):
    logging.info("%s: grid point %d/%d (K=%d, reg=%g)", method, n, len(points), dim, reg)
    grid.append({"params": {"K": dim, "reg": reg}, **train(dim, reg)})
  scored = [g for g in grid if g.get("auc_valid") is not None]
  record = dict(max(scored, key=lambda g: g["auc_valid"])) if scored else dict(grid[0])
  if baseline.selection_users:  # Picked on the users' subset: every user for the winner.
    rate = record.get("train_pairs_per_second")  # The rerun finds it trained: no rate.
    record |= train(record["params"]["K"], record["params"]["reg"], evaluate_best=True)
    record["train_pairs_per_second"] = rate
  return record | {"grid": grid}


def evaluate_scorer(method: str, catalog: catalog_lib.Catalog, item_features,
                    baseline: config_lib.BaselineConfig, folder, seed: int) -> dict:
  """The record of a baseline with nothing to train (RAND, PopRank, VisRank; EASE and ItemKNN
  at each value of their grid, the best on validation AUC kept, `params` and `grid` saying
  which): the evaluator's figures, with the per-user values kept in `folder`."""
  evaluator = evaluator_lib.Evaluator(catalog, baseline.sampled_negatives, seed=seed)
  keys = evaluator_lib.record_keys(baseline.sampled_negatives)
  name = recommenders.TUNED_SCORERS.get(method)
  values = {"penalty": baseline.ease_penalties,
            "neighbours": baseline.knn_neighbours}.get(name, (None,))
  best, grid = None, []
  for value in values:
    scorer = recommenders.build_scorer(method, catalog, item_features, seed=seed, value=value)
    if hasattr(scorer, "embeddings"):  # Scores as inner products (PopRank): one buffer.
      figures = evaluator.evaluate_embeddings(*scorer.embeddings(), per_user=True)
    else:
      figures = evaluator.evaluate_scores(scorer.score_rows, per_user=True)
    if name:
      grid.append({"params": {name: value}, **{k: figures[k] for k in keys}})
    if best is None or figures["auc_valid"] > best[1]["auc_valid"]:
      best = (value, figures)
  value, figures = best
  record = {k: v for k, v in figures.items() if k in keys} | evaluator_lib.keep_per_user(
      figures, folder, baseline.bootstrap_resamples, seed)
  if name:
    record |= {"params": {name: value}, "grid": grid}
  return record

