"""Content-based ItemKNN over pre-trained features, a baseline beyond the paper's Table III.

Each item keeps its k most similar other items by the cosine of their features,
s_ij = f_i . f_j / (||f_i|| ||f_j||); a user's score of item i sums i's similarities to the
user's training items among those neighbours,

    x_ui = sum_{j in I_u^+ and j in N_k(i)} s_ij                     (item-based kNN, Sarwar et al.)

(I_u^+ as a set). Unlike VisRank, which averages a distance to every training item, only the
k nearest neighbours count, so a few very similar items outweigh many loosely similar ones.
The similarities are computed in blocks of rows; the neighbour lists are a sparse matrix.

With k = 0 every other item is a neighbour, and the sum has a closed form with no item x item
matrix: x_ui = u_i . (sum_{j in I_u^+} u_j) - [i in I_u^+], u the unit feature vectors. A
small k leaves most items with a score of exactly 0 for a user (none of the user's items is
among their neighbours); the exact AUC counts such ties against the held-out item.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from dvbpr_tf.baselines import bpr_mf
from dvbpr_tf.core import checks


def unit_vectors(features: np.ndarray) -> np.ndarray:
  """float32 rows scaled to length 1 (a zero row stays zero): their dot products are cosines."""
  features = np.asarray(features, np.float32)
  return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def neighbour_matrix(unit: np.ndarray, k: int, block: int = 1024) -> sparse.csr_matrix:
  """[N, N] CSR from unit vectors: row i holds s_ij for i's k most similar items j != i."""
  n = len(unit)
  k = min(k, n - 1)
  rows, cols, values = [], [], []
  for start in range(0, n, block):
    stop = min(start + block, n)
    similarity = unit[start:stop] @ unit.T
    similarity[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # Not itself.
    if k < n - 1:
      top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    else:
      top = np.tile(np.arange(n), (stop - start, 1))
      top = top[top != np.arange(start, stop)[:, None]].reshape(stop - start, n - 1)
    rows.append(np.repeat(np.arange(start, stop), top.shape[1]))
    cols.append(top.ravel())
    values.append(np.take_along_axis(similarity, top, axis=1).ravel())
  return sparse.csr_matrix((np.concatenate(values), (np.concatenate(rows),
                                                     np.concatenate(cols))), shape=(n, n))


class ItemKnnScorer:
  """x_ui = sum of s_ij over the user's training items j among i's k nearest.

  Args:
    features: [num_items, F] pre-trained item features.
    train_users, train_items: [T] the training interactions.
    num_users: the user id space.
    neighbours: k.
  """

  def __init__(self, features, train_users, train_items, num_users: int,
               neighbours: int = 50):
    features = bpr_mf.check_features(features)
    checks.integer("neighbours", neighbours, 0, note=" (0: every other item)")
    num_items = len(features)
    self.neighbours = int(neighbours)
    self.unit = unit_vectors(features)
    self.similar = neighbour_matrix(self.unit, neighbours) if neighbours else None
    pairs = np.unique(np.asarray(train_users, np.int64) * num_items
                      + np.asarray(train_items, np.int64))
    self.train_matrix = sparse.csr_matrix(
        (np.ones(len(pairs), np.float32), (pairs // num_items, pairs % num_items)),
        shape=(num_users, num_items))
    self._similar_t = self.similar.T.tocsr() if self.similar is not None else None

  def score_rows(self, users: np.ndarray) -> np.ndarray:
    """[B, num_items] float32 scores of the given users."""
    rows = self.train_matrix[np.asarray(users)]
    if self._similar_t is None:  # Every other item: the closed form.
      scores = np.asarray(rows @ self.unit) @ self.unit.T
      return (scores - rows.toarray()).astype(np.float32)
    return np.asarray((rows @ self._similar_t).todense(), np.float32)
