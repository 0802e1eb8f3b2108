"""The simulated shoppers of `fashion_mnist_shoppers` (pure NumPy, no I/O).

What is real: the garment shapes, which are Fashion-MNIST photographs (10 classes).
What is simulated, all from one seed:

1. Rendering (`render_products`): each 28x28 grayscale garment x in [0, 1] is upsampled to the
   stored size (bilinear) and dyed a random colour c (HSV: hue uniform, saturation in
   [0.3, 1], value in [0.3, 0.95]) on a white background: pixel = 1 - x * (1 - c).
2. Style (`style_features`): a fixed function of the stored (JPEG-decoded) pixels, six numbers,
   each standardised over the catalog: the garment's mean colour in two opponent axes
   (red-green, yellow-blue) and its lightness, its ink mass (mean darkness), the height of
   its centre of mass, and its texture (mean absolute pixel gradient). Colour is independent
   of the category; the shape terms vary within every category, so the category alone does
   not explain the style.
3. Shoppers (`simulate_shoppers`): user u has an ideal style a_u, the style of a random
   catalog image plus N(0, taste_spread^2) noise in each coordinate. Item i has a latent
   popularity log p_i ~ N(0, popularity_sigma^2) that no pixel shows. User u picks
   n_u = 5 + Geometric distinct items (mean extra `extra_interactions_mean`, at most
   `max_interactions`) by the Plackett-Luce choice model with utilities
       v_ui = -taste_strength / 2 * ||s_i - a_u||^2 + log p_i,
   i.e. the top n_u items of v_ui + Gumbel noise. Since
   -||s - a||^2 / 2 = a . s - ||s||^2 / 2 - ||a||^2 / 2, the taste term is linear in the
   image features (s, ||s||^2): a model of the form theta_u . Phi(image) can express it.
   Items nobody picked are left out of the catalog (as in review-based datasets, where an
   item exists because someone reviewed it).
4. The oracle ranks items for user u by v_ui: the ceiling any learner can reach.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

# Beside the records of a built dataset: the planted model (ideal, style, log_popularity,
# taste_strength, fashion_mnist_index), from which the evaluation computes the oracle AUC.
PLANTED_MODEL_FILE = "planted_model.npz"

STYLE_NAMES = (
    "red_green", "yellow_blue", "lightness", "ink_mass", "centre_height", "texture")


@dataclasses.dataclass(frozen=True)
class ShopperModel:
  """Parameters of the shopper simulation (see the module docstring)."""

  num_images: int
  users_per_image: float = 0.25
  extra_interactions_mean: float = 3.0
  max_interactions: int = 60
  taste_strength: float = 1.0
  taste_spread: float = 0.5
  popularity_sigma: float = 1.0
  seed: int = 0


def render_products(gray: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
  """Dyes grayscale garments (uint8 [n, 28, 28], ink high) into RGB product images.

  Returns:
    uint8 [n, size, size, 3].
  """
  n = len(gray)
  hue = rng.uniform(0.0, 1.0, n)
  saturation = rng.uniform(0.3, 1.0, n)
  value = rng.uniform(0.3, 0.95, n)
  colour = hsv_to_rgb(hue, saturation, value)  # [n, 3] in [0, 1]
  out = np.empty((n, size, size, 3), np.uint8)
  for k in range(n):
    x = gray[k]
    if x.shape != (size, size):
      x = np.asarray(Image.fromarray(x).resize((size, size), Image.BILINEAR))
    x = x.astype(np.float32)[..., None] / 255.0
    rgb = 1.0 - x * (1.0 - colour[k][None, None, :])
    out[k] = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
  return out


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Vectorised HSV -> RGB, all in [0, 1]; returns [n, 3]."""
  i = np.floor(h * 6.0).astype(int) % 6
  f = h * 6.0 - np.floor(h * 6.0)
  p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
  table = np.stack([
      np.stack([v, t, p], -1), np.stack([q, v, p], -1), np.stack([p, v, t], -1),
      np.stack([p, q, v], -1), np.stack([t, p, v], -1), np.stack([v, p, q], -1)], 0)
  return table[i, np.arange(len(h))]


def raw_style(images: np.ndarray) -> np.ndarray:
  """The six style measurements of uint8 RGB images [n, H, W, 3] (before standardising)."""
  img = images.astype(np.float32) / 255.0
  darkness = 1.0 - img.mean(axis=-1)  # [n, H, W]; 0 on the white background
  mass = darkness.sum(axis=(1, 2)) + 1e-6
  mean_colour = (img * darkness[..., None]).sum(axis=(1, 2)) / mass[:, None]  # [n, 3]
  red_green = mean_colour[:, 0] - mean_colour[:, 1]
  yellow_blue = 0.5 * (mean_colour[:, 0] + mean_colour[:, 1]) - mean_colour[:, 2]
  lightness = mean_colour.mean(axis=1)
  height = images.shape[1]
  rows = (np.arange(height, dtype=np.float32) + 0.5) / height
  centre_height = 1.0 - (darkness.sum(axis=2) * rows[None, :]).sum(axis=1) / mass
  ink_mass = darkness.mean(axis=(1, 2))
  texture = (np.abs(np.diff(img, axis=1)).mean(axis=(1, 2, 3))
             + np.abs(np.diff(img, axis=2)).mean(axis=(1, 2, 3)))
  return np.stack(
      [red_green, yellow_blue, lightness, ink_mass, centre_height, texture], axis=1
  ).astype(np.float64)


def standardise(raw: np.ndarray) -> np.ndarray:
  mean, std = raw.mean(axis=0), raw.std(axis=0)
  return (raw - mean) / np.where(std > 0, std, 1.0)


@dataclasses.dataclass(frozen=True)
class Shoppers:
  """The simulated interactions and the planted model behind them."""

  users: np.ndarray  # [M] user of each interaction
  items: np.ndarray  # [M] item (index into the images given to simulate_shoppers)
  ideal: np.ndarray  # [U, 6] each user's ideal style a_u
  log_popularity: np.ndarray  # [n] per image
  taste_strength: float

  def utilities(self, users: np.ndarray, style: np.ndarray, log_popularity=None) -> np.ndarray:
    """v_ui of the given users over all items of `style` ([n, 6]): the oracle's scores."""
    if log_popularity is None:
      log_popularity = self.log_popularity
    return preference(self.ideal[users], style, self.taste_strength) + log_popularity[None, :]


def preference(ideal: np.ndarray, style: np.ndarray, taste_strength: float) -> np.ndarray:
  """The taste term -taste_strength / 2 * ||s_i - a_u||^2 for ideals [B, 6], styles [n, 6]."""
  squared = ((ideal ** 2).sum(1)[:, None] - 2.0 * ideal @ style.T
             + (style ** 2).sum(1)[None, :])
  return -0.5 * taste_strength * squared


def simulate_shoppers(style: np.ndarray, model: ShopperModel, rng: np.random.Generator,
                      chunk_size: int = 512) -> Shoppers:
  """Draws users and their distinct picks by the Plackett-Luce model (module docstring)."""
  n = len(style)
  num_users = max(1, int(round(model.users_per_image * n)))
  ideal = style[rng.integers(0, n, num_users)] + rng.normal(
      0.0, model.taste_spread, (num_users, style.shape[1]))
  log_popularity = rng.normal(0.0, model.popularity_sigma, n)
  extra = rng.geometric(1.0 / (1.0 + model.extra_interactions_mean), num_users) - 1
  counts = np.minimum(5 + extra, min(model.max_interactions, n))
  shoppers = Shoppers(np.zeros(0, np.int64), np.zeros(0, np.int64), ideal, log_popularity,
                      model.taste_strength)
  users, items = [], []
  for start in range(0, num_users, chunk_size):
    block = np.arange(start, min(start + chunk_size, num_users))
    noisy = shoppers.utilities(block, style) + rng.gumbel(size=(len(block), n))
    top = np.argpartition(-noisy, counts[block].max() - 1, axis=1)[:, :counts[block].max()]
    # Order each row's candidates by noisy utility, keep the first n_u.
    order = np.argsort(-np.take_along_axis(noisy, top, axis=1), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    for row, user in enumerate(block):
      picks = top[row, :counts[user]]
      users.append(np.full(len(picks), user, np.int64))
      items.append(picks.astype(np.int64))
  return dataclasses.replace(shoppers, users=np.concatenate(users), items=np.concatenate(items))
