"""Every recommender of Table III by name: how each is built from a catalog and features.

- scorers (not trained): `rand`, `poprank`, `visrank`;
- pairwise models trained by `PairwiseTask` on the authors' triplet sampler: `bpr_mf`,
  `warp`, `fm`, `vbpr` (grid-searched over K and the regulariser);
- `dvbpr` is trained from pixels by `DvbprTask` (see experiments/recommendation.py);
- beyond the paper's columns, scorers with one hyper-parameter chosen on validation AUC:
  `ease` (the penalty lambda) and `item_knn` (content-based, over the features; k).
"""

from __future__ import annotations

import numpy as np

from dvbpr_tf.baselines import bpr_mf
from dvbpr_tf.baselines import ease
from dvbpr_tf.baselines import fm
from dvbpr_tf.baselines import item_knn
from dvbpr_tf.baselines import popularity
from dvbpr_tf.baselines import vbpr
from dvbpr_tf.baselines import visrank
from dvbpr_tf.baselines import warp
from dvbpr_tf.core import errors
from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf.data import sampler as sampler_lib

SCORERS = ("rand", "poprank", "visrank")
PAIRWISE = ("warp", "bpr_mf", "fm", "vbpr")
TUNED_SCORERS = {"ease": "penalty", "item_knn": "neighbours"}  # Method: its hyper-parameter.
NEEDS_FEATURES = ("visrank", "fm", "vbpr", "item_knn")


def _require_features(method, item_features):
  if item_features is None:
    raise errors.ConfigError(f"{method} needs pre-trained item features (--features)")
  return np.asarray(item_features, np.float32)


def build_scorer(method: str, catalog: catalog_lib.Catalog, item_features=None, seed: int = 0,
                 value=None):
  """RAND, PopRank, VisRank, or EASE / ItemKNN with their hyper-parameter `value`: an
  object with `score_rows(users) -> [B, num_items]`."""
  if method == "rand":
    return popularity.RandomScorer(catalog.num_items, seed=seed)
  if method == "poprank":
    return popularity.PopularityScorer(catalog.train_counts, catalog.num_users)
  if method == "visrank":
    users, items = catalog.interactions("train")
    return visrank.VisRankScorer(_require_features(method, item_features), users, items)
  if method == "ease":
    users, items = catalog.interactions("train")
    return ease.EaseScorer(users, items, catalog.num_users, catalog.num_items, penalty=value)
  if method == "item_knn":
    users, items = catalog.interactions("train")
    return item_knn.ItemKnnScorer(_require_features(method, item_features), users, items,
                                  catalog.num_users, neighbours=int(value))
  raise errors.ConfigError(f"{method!r} is not a scorer; scorers: {', '.join(SCORERS)}")


def build_pairwise(method: str, catalog: catalog_lib.Catalog, item_features=None, *, dim: int,
                   reg: float, seed: int = 0, max_sampled: int = 10,
                   vbpr_visual_bias: bool = False, vbpr_reg_E: float | None = None):  # pylint: disable=invalid-name
  """A pairwise model and the triplet sampler it trains on: (model, sampler)."""
  users, items = catalog.interactions("train")
  sampler = sampler_lib.TripletSampler(users, items, catalog.num_users, catalog.num_items,
                                       seed=seed, draw_negatives=method != "warp")
  if method == "bpr_mf":
    model = bpr_mf.BprMf(catalog.num_users, catalog.num_items,
                         bpr_mf.MfConfig(dim=dim, reg=reg), seed=seed)
  elif method == "warp":
    model = warp.WarpMf(catalog.num_users, catalog.num_items, sampler.contains,
                        warp.WarpConfig(dim=dim, reg=reg, max_sampled=max_sampled), seed=seed)
  elif method == "fm":
    model = fm.FactorizationMachine(catalog.num_users, _require_features(method, item_features),
                                    fm.FmConfig(dim=dim, reg=reg), seed=seed)
  elif method == "vbpr":
    model = vbpr.Vbpr(catalog.num_users, _require_features(method, item_features),
                      vbpr.VbprConfig(dim=dim, reg=reg, reg_E=vbpr_reg_E,
                                      visual_bias=vbpr_visual_bias), seed=seed)
  else:
    raise errors.ConfigError(
        f"{method!r} is not a pairwise model; pairwise models: {', '.join(PAIRWISE)}")
  return model, sampler
