"""Losses as plain functions, each with the paper's equation.

BPR (eq. 5, as the authors' code minimises it):

    L = - sum_{(u,i,j) in batch} ln sigmoid(x_ui - x_uj)
        + lambda_1 * sum_W l2_loss(W) + lambda_2 * l2_loss(theta_u of the batch rows)

with l2_loss(t) = sum(t^2) / 2, W the 8 conv/fc kernels of the tower (no biases),
lambda_1 = 1e-3 (weight decay), lambda_2 = 1.0 (theta_u). The BPR term is a sum over the
batch, not a mean.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from dvbpr_tf.core import distribution


def l2_loss(tensor: tf.Tensor) -> tf.Tensor:
  """sum(t^2) / 2, as `tf.nn.l2_loss`."""
  return 0.5 * tf.reduce_sum(tf.square(tensor))


def bpr_loss(x_ui: tf.Tensor, x_uj: tf.Tensor) -> tf.Tensor:
  """-sum ln sigmoid(x_ui - x_uj) (the data term of eq. 5), computed stably as
  sum softplus(x_uj - x_ui)."""
  return tf.reduce_sum(tf.nn.softplus(x_uj - x_ui))


def dvbpr_loss(x_ui: tf.Tensor, x_uj: tf.Tensor, kernels: Sequence[tf.Tensor],
               theta_batch: tf.Tensor, weight_decay: float = 1e-3,
               theta_decay: float = 1.0) -> dict[str, tf.Tensor]:
  """The DVBPR objective of eq. 5, as minimised by the authors' code.

  Args:
    x_ui, x_uj: [B] preference scores of the positive and negative items.
    kernels: the tower's kernels (lambda_1 term).
    theta_batch: [B, K] the batch's theta_u rows (a user drawn twice counts twice).
    weight_decay: lambda_1.
    theta_decay: lambda_2.

  Returns:
    dict with `loss` (the total) and its terms `bpr`, `weight_decay`, `theta_decay`.
  """
  bpr = bpr_loss(x_ui, x_uj)
  # A term of the whole model: each replica of a distributed step adds its share of it.
  weights = distribution.replica_share(
      weight_decay * tf.add_n([l2_loss(k) for k in kernels]))
  theta = theta_decay * l2_loss(theta_batch)
  return {"loss": bpr + weights + theta, "bpr": bpr, "weight_decay": weights,
          "theta_decay": theta}


def lsgan_discriminator_loss(d_real: tf.Tensor, d_fake: tf.Tensor) -> tf.Tensor:
  """The conditional LSGAN's discriminator loss (eq. 7; Mao et al., ICCV 2017), as the
  authors' code minimises it:

      L_real(x, c) = (D(x, c) - 1)^2,   L_fake(x, c) = D(x, c)^2                  (eq. 7)
      L_D = ( mean_batch L_real(x, c) + mean_batch L_fake(G(z, c), c) ) / 2

  Args:
    d_real: D's raw scores (no sigmoid) on real images, any shape (e.g. [B, 1]).
    d_fake: D's raw scores on generated images, any shape.

  Returns:
    The scalar loss (each mean over its own tensor, so the two batches may differ in size).
  """
  return 0.5 * (tf.reduce_mean(tf.square(d_real - 1.0)) + tf.reduce_mean(tf.square(d_fake)))


def matching_aware_discriminator_loss(d_real: tf.Tensor, d_fake: tf.Tensor,
                                      d_mismatched: tf.Tensor, weight: float,
                                      fake_weight: float | None = None) -> tf.Tensor:
  """eq. 7's discriminator loss with real images under wrong categories as a second kind of
  fake (the matching-aware D of Reed et al., ICML 2016, in least squares):

      L_D = ( mean L_real(x, c) + a mean L_fake(G(z, c), c)
              + w mean L_fake(x, c') ) / 2,        c' != c                          (eq. 7)

  with a = `fake_weight`, by default 1 - w (Reed et al.'s split of the fake half between
  the two kinds); a = 1 keeps the generated images' full weight. `weight` w = 0 (and the
  default a) is `lsgan_discriminator_loss`.
  """
  fake_weight = 1.0 - weight if fake_weight is None else fake_weight
  return 0.5 * (tf.reduce_mean(tf.square(d_real - 1.0))
                + fake_weight * tf.reduce_mean(tf.square(d_fake))
                + weight * tf.reduce_mean(tf.square(d_mismatched)))


def lsgan_generator_loss(d_fake: tf.Tensor) -> tf.Tensor:
  """The conditional LSGAN's generator loss (eq. 7's L_real applied to fakes; Mao et al.,
  ICCV 2017), as the authors' code minimises it:

      L_G = mean_batch (D(G(z, c), c) - 1)^2                                      (eq. 7)

  Args:
    d_fake: D's raw scores (no sigmoid) on generated images, any shape.

  Returns:
    The scalar loss.
  """
  return tf.reduce_mean(tf.square(d_fake - 1.0))
