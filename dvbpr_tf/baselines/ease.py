"""EASE: the closed-form linear item-item autoencoder (Steck, WWW 2019), a baseline beyond the
paper's Table III.

With X the binary [users, items] training matrix and lambda the L2 penalty, EASE minimises
||X - X B||_F^2 + lambda ||B||_F^2 subject to diag(B) = 0, whose solution is

    P = (X^T X + lambda I)^{-1},    B_ij = -P_ij / P_jj (i != j),    B_jj = 0        (Steck, eq. 8)

and scores x_ui = X_u . B_{:, i}. The item x item matrix is dense: the catalog must hold at
most `MAX_ITEMS` items (a one-line error says so otherwise).
"""

from __future__ import annotations

import numpy as np

from dvbpr_tf.core import checks
from dvbpr_tf.core import errors

MAX_ITEMS = 20_000  # 20,000^2 float64: 3.2 GB for P.


def ease_weights(train_matrix: np.ndarray, penalty: float) -> np.ndarray:
  """B of EASE (Steck eq. 8) from a dense [users, items] 0/1 matrix: [items, items] float32."""
  gram = train_matrix.T.astype(np.float64) @ train_matrix.astype(np.float64)
  gram[np.diag_indices_from(gram)] += penalty
  inverse = np.linalg.inv(gram)
  weights = -inverse / np.diag(inverse)[None, :]
  weights[np.diag_indices_from(weights)] = 0.0
  return weights.astype(np.float32)


class EaseScorer:
  """x_ui = X_u . B_{:, i} (EASE).

  Args:
    train_users, train_items: [T] the training interactions (a repeated pair counts once).
    num_users, num_items: the id spaces.
    penalty: lambda.
  """

  def __init__(self, train_users, train_items, num_users: int, num_items: int,
               penalty: float = 100.0):
    checks.number("penalty", penalty, above=0)
    if num_items > MAX_ITEMS:
      raise errors.ConfigError(
          f"EASE needs a dense {num_items:,} x {num_items:,} item matrix; it runs on catalogs "
          f"of at most {MAX_ITEMS:,} items: leave it out (baselines.beyond_paper=false)")
    matrix = np.zeros((num_users, num_items), np.float32)
    matrix[np.asarray(train_users), np.asarray(train_items)] = 1.0
    self.train_matrix = matrix
    self.weights = ease_weights(matrix, float(penalty))

  def score_rows(self, users: np.ndarray) -> np.ndarray:
    """[B, num_items] float32 scores of the given users."""
    return self.train_matrix[np.asarray(users)] @ self.weights
