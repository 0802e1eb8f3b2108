"""Personalised design: retrieval (eq. 8), synthesis by preference maximisation (eqs. 9-11)
and tailoring of a query image (eq. 12). docs/reproduction.md §5 and §6.

Retrieval: the best real items of a category for a user,

    delta(u, c) = argmax_{e in X_c} theta_u^T Phi(e)                                 (eq. 8)

Synthesis: the best generated image, searched over the unconstrained z' in R^d,

    delta-hat(u, c) = G_c(tanh z'*),                                                 (eq. 9)
    z'* = argmax_{z'} theta_u^T Phi(Delta G_c(tanh z')) - eta (D_c(G_c(tanh z')) - 1)^2
                                                                                     (eq. 10)

with Delta the nearest-neighbour resize from the GAN's resolution to the tower's input (an
upscaling in the paper, 128 -> 224; skipped when the sizes agree), and
D's raw least-squares score (no sigmoid: 1 means "real", as the LSGAN of eq. 7 trains it).
The ascent starts from m points z ~ U(-1, 1), z' = atanh(z), all optimised together as one
batch with Adam: the batch's objective is the sum over starts, and Adam works element by
element, so every start follows exactly the path it would follow alone. Several images
(top-k) are chosen by sampling the m end points without replacement with probabilities

    P(i) = exp(f_i) / sum_j exp(f_j),   f_i the objective of start i                 (eq. 11)

(or, as the paper's less diverse alternative, the k best).

`DesignConfig.start='retrieved'` (not the paper's; off in its presets) starts the ascent
instead from the user's m best real items of the category (eq. 8's ranking), each inverted
into z' by eq. 12 (`Inverter.invert_each`): the search then tailors the retrieved items
(the paper's Fig. 6 applied to delta) rather than searching from random codes.

Tailoring: the query's latent code, then preference maximisation from it,

    z'_query = argmin_{z'} || G_c(tanh z') - Nabla X_query ||_1                     (eq. 12)

with Nabla the (antialiased bilinear) downscaling of the query to the GAN's resolution, as
the input pipeline makes the GAN's training images.

Everything here takes models and arrays, never files or flags. The networks run in inference
mode (no dropout; batch norm with its moving statistics). A `Designer` holds three networks and
compiles its ascent once per batch size m; the module-level functions build a fresh one per
call (each call then traces again: for many calls, keep one `Designer`).

Differences from the authors' PM script (docs/reproduction.md §5), which draws 16 codes from
N(0, 0.5^2) without tanh and averages the objective: here the paper's text (tanh / atanh,
U(-1, 1) starts, m = 64, the sum). With Adam the sum and the mean give the same steps up to
Adam's epsilon.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import checks
from dvbpr_tf.core import errors
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.models import dvbpr as dvbpr_lib
from dvbpr_tf.models import gan

ATANH_CLIP = 1e-6  # z is clipped to (-1 + 1e-6, 1 - 1e-6) before atanh.
ADAM_EPSILON = 1e-8  # TF1's AdamOptimizer default (the authors' script); Keras's is 1e-7.


# --- Configs -----------------------------------------------------------------------------


DesignConfig = config_lib.DesignConfig  # Parts of the configuration tree.
InversionConfig = config_lib.InversionConfig
TailorConfig = config_lib.TailorConfig


# --- Results -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Snapshot:
  """The m points after `step` Adam steps. Arrays: z_prime [m, d], images [m, S, S, 3] in
  [-1, 1], objective / preference / realism [m] (see `preference_objective`)."""

  step: int
  z_prime: np.ndarray
  images: np.ndarray
  objective: np.ndarray
  preference: np.ndarray
  realism: np.ndarray


@dataclasses.dataclass(frozen=True)
class SynthesisResult:
  """The outcome of `synthesize`.

  Attributes:
    user, category: whom and what was designed for.
    start_z_prime: [m, d] the starting points.
    z_prime: [m, d] the end points.
    images: [m, S, S, 3] G_c(tanh z') in [-1, 1] at the end points.
    objective, preference, realism: [m] at the end points (see `preference_objective`).
    chosen: [k] indices into the m end points (by `DesignConfig.selection`), in draw order
      (softmax) or best first (top).
    trajectory: [steps + 1, m] the objective after 0, 1, ..., steps Adam steps.
    recorded: a Snapshot per requested record step, in increasing step order.
  """

  user: int
  category: int
  start_z_prime: np.ndarray
  z_prime: np.ndarray
  images: np.ndarray
  objective: np.ndarray
  preference: np.ndarray
  realism: np.ndarray
  chosen: np.ndarray
  trajectory: np.ndarray
  recorded: tuple[Snapshot, ...]

  @property
  def chosen_images(self) -> np.ndarray:
    """[k, S, S, 3] the chosen images."""
    return self.images[self.chosen]


@dataclasses.dataclass(frozen=True)
class InversionResult:
  """The outcome of `invert`.

  Attributes:
    category: the category the generator was conditioned on.
    target: [S, S, 3] Nabla X_query, the query at the GAN's resolution, in [-1, 1].
    z_prime: [d] the best end point.
    reconstruction: [S, S, 3] G_c(tanh z_prime).
    best_start: index of the kept start.
    l1_before, l1_after: the kept start's L1 error at step 0 and at the end.
    l1_trajectory: [steps + 1, num_starts] every start's L1 error after 0..steps steps.
  The L1 error is the mean absolute difference per pixel and channel (|| . ||_1 divided by
  S*S*3, in units of the [-1, 1] pixel scale); the division does not change the argmin.
  """

  category: int
  target: np.ndarray
  z_prime: np.ndarray
  reconstruction: np.ndarray
  best_start: int
  l1_before: float
  l1_after: float
  l1_trajectory: np.ndarray


@dataclasses.dataclass(frozen=True)
class TailorResult:
  """The outcome of `tailor`: the inversion, the maximisation (a single start from the
  query's code), and, per recorded step, the image and its scores (the paper's Fig. 6).

  Attributes:
    steps: [R] the recorded steps, increasing.
    images: [R, S, S, 3] in [-1, 1].
    objective, preference, realism: [R].
  """

  inversion: InversionResult
  synthesis: SynthesisResult
  steps: np.ndarray
  images: np.ndarray
  objective: np.ndarray
  preference: np.ndarray
  realism: np.ndarray


# --- Retrieval (eq. 8) -------------------------------------------------------------------


def retrieve(user_vector, item_vectors, item_categories, category: int, k: int,
             exclude: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
  """The k real items of `category` a user prefers most: delta(u, c) of eq. 8, generalised
  to the top k by theta_u^T Phi(e).

  Args:
    user_vector: [K] theta_u.
    item_vectors: [N, K] Phi of every item (e.g. `evaluation.embed_items`).
    item_categories: [N] int category of every item.
    category: c.
    k: how many items (fewer are returned when the category has fewer eligible items).
    exclude: item ids never to return (e.g. the user's training items).
  Returns:
    (item ids [k'] int64, scores [k'] float32), best first; ties go to the lower id.
  Raises:
    UserError: shapes disagree, k < 1, or no item of the category is eligible.
  """
  theta = np.asarray(user_vector, np.float32)
  vectors = np.asarray(item_vectors, np.float32)
  categories = np.asarray(item_categories)
  if theta.ndim != 1 or vectors.ndim != 2 or vectors.shape[1] != theta.shape[0]:
    raise errors.UserError(f"retrieve needs user_vector [K] and item_vectors [N, K], got "
                           f"{theta.shape} and {vectors.shape}")
  if categories.shape != (vectors.shape[0],):
    raise errors.UserError(f"item_categories must be [N] = [{vectors.shape[0]}], got "
                           f"{categories.shape}")
  checks.integer("k", k, 1)
  eligible = categories == category
  if exclude is not None:
    exclude = np.asarray(list(exclude), np.int64)
    eligible[exclude[(exclude >= 0) & (exclude < len(eligible))]] = False
  ids = np.flatnonzero(eligible)
  if ids.size == 0:
    raise errors.UserError(f"no eligible item of category {category} to retrieve "
                           f"(after excluding {0 if exclude is None else len(exclude)} items)")
  scores = vectors[ids] @ theta
  order = np.argsort(-scores, kind="stable")[:k]
  return ids[order].astype(np.int64), scores[order].astype(np.float32)


# --- Selection (eq. 11) ------------------------------------------------------------------


def _rng(rng) -> np.random.Generator:
  if isinstance(rng, np.random.Generator):
    return rng
  return np.random.default_rng(rng)


def softmax_select(objective, k: int, rng=None) -> np.ndarray:
  """k distinct indices drawn without replacement, each draw with probability softmax of
  the objective over the indices not yet drawn (eq. 11, sequential sampling).

  Args:
    objective: [m] objective values f_i.
    k: 1 <= k <= m.
    rng: a `np.random.Generator`, an int seed, or None (fresh entropy).
  Returns:
    int64 [k] indices in draw order.
  """
  values = np.asarray(objective, np.float64)
  if values.ndim != 1 or not np.all(np.isfinite(values)):
    raise errors.UserError(f"objective must be a finite vector [m], got shape {values.shape}")
  checks.integer("k", k, 1)
  if k > values.size:
    raise errors.UserError(f"cannot draw k={k} distinct indices from m={values.size}")
  generator = _rng(rng)
  remaining = np.arange(values.size)
  chosen = []
  for _ in range(k):
    logits = values[remaining]
    weights = np.exp(logits - logits.max())  # Stable: the largest weight is 1.
    pick = generator.choice(remaining.size, p=weights / weights.sum())
    chosen.append(remaining[pick])
    remaining = np.delete(remaining, pick)
  return np.asarray(chosen, np.int64)


def top_select(objective, k: int) -> np.ndarray:
  """The k indices of the largest objective values, best first (ties: lower index)."""
  values = np.asarray(objective, np.float64)
  checks.integer("k", k, 1)
  return np.argsort(-values, kind="stable")[:k].astype(np.int64)


# --- Latent codes and images -------------------------------------------------------------


def uniform_starts(num_starts: int, z_dim: int, rng=None) -> np.ndarray:
  """z' = atanh(z) for z ~ U(-1, 1), z clipped to (-1 + 1e-6, 1 - 1e-6): float32 [m, d]."""
  z = _rng(rng).uniform(-1.0, 1.0, size=(num_starts, z_dim))
  z = np.clip(z, -1.0 + ATANH_CLIP, 1.0 - ATANH_CLIP)
  return np.arctanh(z).astype(np.float32)


def to_unit_range(image) -> tf.Tensor:
  """An image as float32 in [-1, 1]: uint8 pixels are scaled as the input pipeline does;
  floats are taken to be in [-1, 1] already (UserError when they are not)."""
  image = tf.convert_to_tensor(image)
  if image.dtype == tf.uint8:
    return input_pipeline.scale_images(image)
  image = tf.cast(image, tf.float32)
  low, high = float(tf.reduce_min(image)), float(tf.reduce_max(image))
  if low < -1.0 - 1e-3 or high > 1.0 + 1e-3:
    raise errors.UserError(
        f"a float image must be in [-1, 1] (got values in [{low:.3g}, {high:.3g}]); pass "
        "uint8 pixels or scale with input_pipeline.scale_images")
  return tf.clip_by_value(image, -1.0, 1.0)


def downscale(image, size: int) -> tf.Tensor:
  """Nabla of eq. 12: [H, W, 3] (uint8 or [-1, 1]) -> [size, size, 3] in [-1, 1], antialiased
  bilinear, as `input_pipeline.decode_image` makes the GAN's training images."""
  image = to_unit_range(image)
  if image.shape.rank != 3 or image.shape[-1] != 3:
    raise errors.UserError(f"the query must be one image [H, W, 3], got {image.shape}")
  if tuple(image.shape[:2]) == (size, size):
    return image
  resized = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
  return tf.clip_by_value(resized, -1.0, 1.0)


def upscale(images: tf.Tensor, size: int) -> tf.Tensor:
  """Delta of eq. 10: [B, S, S, 3] -> [B, size, size, 3], nearest neighbour."""
  if images.shape[1] == size and images.shape[2] == size:
    return images
  return tf.image.resize(images, [size, size], method="nearest")


# --- Compiled Adam over a batch of codes -------------------------------------------------


class _AdamLoop:
  """Adam on one tf.Variable z' [m, d], minimising the sum over rows of a per-row loss.

  `run(num_steps, *args)` takes num_steps steps in one compiled call and returns the per-row
  loss before each step, [num_steps, m]. The args are tensors, so new users, categories,
  etas or step counts do not retrace.
  """

  def __init__(self, loss_fn, num_rows: int, z_dim: int, dtype: tf.DType,
               run_eagerly: bool = False):
    self._loss_fn = loss_fn
    self.num_rows = num_rows
    self.dtype = dtype
    self.z_prime = tf.Variable(tf.zeros([num_rows, z_dim], dtype), name="z_prime")
    self.optimizer = keras.optimizers.Adam(learning_rate=0.05, epsilon=ADAM_EPSILON)
    self.optimizer.build([self.z_prime])
    self.run = self._run if run_eagerly else tf.function(self._run)

  def reset(self, start: np.ndarray, learning_rate: float) -> None:
    """New starting points and a fresh Adam state (moments and step count zero)."""
    self.z_prime.assign(tf.cast(start, self.dtype))
    self.optimizer.iterations.assign(0)
    for variable in self.optimizer.variables:
      if tuple(variable.shape) == tuple(self.z_prime.shape):  # The moment slots.
        variable.assign(tf.zeros_like(variable))
    self.optimizer.learning_rate = float(learning_rate)  # A variable: no retracing.

  def _run(self, num_steps, *args):
    losses = tf.TensorArray(self.dtype, size=num_steps, element_shape=[self.num_rows])
    for step in tf.range(num_steps):
      with tf.GradientTape() as tape:
        loss = self._loss_fn(self.z_prime, *args)
        total = tf.reduce_sum(loss)  # Each row's gradient is its own.
      gradient = tape.gradient(total, self.z_prime)
      self.optimizer.apply_gradients([(gradient, self.z_prime)])
      losses = losses.write(step, loss)
    return losses.stack()

  def run_steps(self, num_steps: int, *args) -> np.ndarray:
    if num_steps == 0:
      return np.zeros([0, self.num_rows], self.dtype.as_numpy_dtype)
    return self.run(tf.constant(num_steps, tf.int32), *args).numpy()


def _compile(fn, run_eagerly: bool):
  return fn if run_eagerly else tf.function(fn, reduce_retracing=True)


# --- The designer ------------------------------------------------------------------------


class Inverter:
  """Inversion of images into a conditional generator's latent space (eq. 12): needs only the
  generator. Holds one compiled Adam loop per number of starts (made on first use)."""

  def __init__(self, generator: gan.Generator, run_eagerly: bool = False):
    self.generator = generator
    self.run_eagerly = run_eagerly
    # The codes' dtype: float32 unless the networks were built under another dtype policy.
    self.dtype = tf.as_dtype(generator.variable_dtype)
    self.z_dim = generator.config.z_dim
    self.image_size = generator.config.image_size
    self.num_categories = generator.config.num_categories
    self._inverters: dict[int, _AdamLoop] = {}
    self._reconstruct = _compile(self.images, run_eagerly)

  def check_category(self, category) -> int:
    checks.integer("category", category, 0)
    if category >= self.num_categories:
      raise errors.UserError(f"category {category} out of range: the GAN has "
                             f"{self.num_categories} categories")
    return int(category)

  def images(self, z_prime, category):
    """G_c(tanh z'): [m, S, S, 3] in (-1, 1)."""
    labels = self.generator.one_hot(tf.fill(tf.shape(z_prime)[:1], category))
    return tf.cast(self.generator(tf.tanh(z_prime), labels, training=False), self.dtype)

  def _inverter(self, num_rows: int) -> _AdamLoop:
    """Adam on eq. 12's L1 error of each row against `targets` [1 or num_rows, S, S, 3]
    (one query for every start, or one query per row)."""
    if num_rows not in self._inverters:
      def l1(z_prime, category, targets):
        return tf.reduce_mean(tf.abs(self.images(z_prime, category) - targets), axis=[1, 2, 3])
      self._inverters[num_rows] = _AdamLoop(l1, num_rows, self.z_dim, self.dtype,
                                            self.run_eagerly)
    return self._inverters[num_rows]

  def invert_each(self, category: int, images, steps: int, learning_rate: float,
                  seed=0) -> tuple[np.ndarray, np.ndarray]:
    """eq. 12 for each of m images of one category at once (uint8 or [-1, 1], at the GAN's
    size), one uniform start each (not the best of several, as `invert`): (z' [m, d], the
    final L1 error [m])."""
    category = self.check_category(category)
    targets = tf.cast(to_unit_range(images), self.dtype)
    size = self.image_size
    if targets.shape.rank != 4 or tuple(targets.shape[1:]) != (size, size, 3):
      raise errors.UserError(f"invert_each wants images [m, {size}, {size}, 3] (the GAN's "
                             f"size), got {tuple(targets.shape)}")
    loop = self._inverter(int(targets.shape[0]))
    loop.reset(uniform_starts(int(targets.shape[0]), self.z_dim, seed), learning_rate)
    args = (tf.constant(category, tf.int32), targets)
    loop.run_steps(steps, *args)
    errors_after = tf.reduce_mean(tf.abs(self._reconstruct(
        tf.convert_to_tensor(loop.z_prime), args[0]) - targets), axis=[1, 2, 3])
    return loop.z_prime.numpy().copy(), errors_after.numpy()

  def invert(self, category: int, query_image,
             config: InversionConfig = InversionConfig()) -> InversionResult:
    """z'_query of eq. 12 by Adam on the L1 error from several random starts (one batch);
    the start with the lowest final error is kept."""
    category = self.check_category(category)
    target = tf.cast(downscale(query_image, self.image_size), self.dtype)
    start = uniform_starts(config.num_starts, self.z_dim, config.seed)
    loop = self._inverter(config.num_starts)
    loop.reset(start, config.learning_rate)
    args = (tf.constant(category, tf.int32), target[tf.newaxis])
    trajectory = loop.run_steps(config.steps, *args)
    z_prime = loop.z_prime.numpy().copy()
    images = self._reconstruct(tf.convert_to_tensor(loop.z_prime), args[0]).numpy()
    final = np.mean(np.abs(images - target.numpy()[None]), axis=(1, 2, 3))
    trajectory = np.concatenate([trajectory, final[None]])
    best = int(np.argmin(final))
    return InversionResult(
        category=category, target=target.numpy(), z_prime=z_prime[best],
        reconstruction=images[best], best_start=best, l1_before=float(trajectory[0, best]),
        l1_after=float(trajectory[-1, best]), l1_trajectory=trajectory)


class Designer:
  """Preference maximisation and tailoring with one trained DVBPR and one conditional GAN.

  Holds the networks, and one compiled Adam loop per batch size m (made on first use), so
  that repeated `synthesize` / `tailor` calls (e.g. the 1000 trials of Table IV) trace once.
  `run_eagerly=True` runs the same steps without tf.function, for debugging.
  """

  def __init__(self, dvbpr: dvbpr_lib.Dvbpr, generator: gan.Generator,
               discriminator: gan.Discriminator, run_eagerly: bool = False):
    g, d = generator.config, discriminator.config
    if (g.image_size, g.num_categories) != (d.image_size, d.num_categories):
      raise errors.UserError(
          f"the generator ({g.image_size}px, {g.num_categories} categories) and the "
          f"discriminator ({d.image_size}px, {d.num_categories} categories) do not match")
    self.dvbpr, self.generator, self.discriminator = dvbpr, generator, discriminator
    self.inverter = Inverter(generator, run_eagerly)
    self.dtype = self.inverter.dtype
    self.z_dim = g.z_dim
    self.image_size = g.image_size
    self.num_categories = g.num_categories
    self.tower_size = dvbpr.tower_config.input_size
    self.run_eagerly = run_eagerly
    self._ascents: dict[int, _AdamLoop] = {}
    self._evaluate = _compile(self._terms, run_eagerly)

  # Checks -------------------------------------------------------------------------------

  def _check_user(self, user) -> int:
    checks.integer("user", user, 0)
    if user >= self.dvbpr.num_users:
      raise errors.UserError(f"user {user} out of range: the model has "
                             f"{self.dvbpr.num_users} users")
    return int(user)

  def _check_category(self, category) -> int:
    return self.inverter.check_category(category)

  def _check_z_prime(self, z_prime) -> np.ndarray:
    z_prime = np.asarray(z_prime, self.dtype.as_numpy_dtype)
    if z_prime.ndim == 1:
      z_prime = z_prime[None]
    if z_prime.ndim != 2 or z_prime.shape[1] != self.z_dim or z_prime.shape[0] < 1:
      raise errors.UserError(f"z' must be [m, {self.z_dim}] (or [{self.z_dim}]), got "
                             f"{z_prime.shape}")
    if not np.all(np.isfinite(z_prime)):
      raise errors.UserError("z' has non-finite values")
    return z_prime

  # The objective (eqs. 9, 10) -----------------------------------------------------------

  def _terms(self, z_prime, user, category, eta):
    labels = self.generator.one_hot(tf.fill(tf.shape(z_prime)[:1], category))
    images = tf.cast(self.generator(tf.tanh(z_prime), labels, training=False), self.dtype)
    phi = self.dvbpr.item_embeddings(upscale(images, self.tower_size), training=False)
    theta = tf.cast(self.dvbpr.user_vectors(user), self.dtype)
    preference = tf.linalg.matvec(tf.cast(phi, self.dtype), theta)
    realism = tf.cast(tf.squeeze(self.discriminator(images, labels, training=False), -1),
                      self.dtype)
    objective = preference - eta * tf.square(realism - 1.0)
    return {"objective": objective, "preference": preference, "realism": realism,
            "images": images}

  def objective(self, user: int, category: int, z_prime, eta: float) -> dict:
    """`preference_objective` with this designer's networks (eager: differentiable)."""
    user, category = self._check_user(user), self._check_category(category)
    checks.number("eta", eta, minimum=0)
    z_prime = tf.convert_to_tensor(z_prime)  # A variable's read: gradients still flow.
    if z_prime.dtype != self.dtype:
      z_prime = tf.cast(z_prime, self.dtype)
    return self._terms(z_prime, tf.constant(user, tf.int32), tf.constant(category, tf.int32),
                       tf.constant(eta, self.dtype))

  def _ascent(self, num_rows: int) -> _AdamLoop:
    if num_rows not in self._ascents:
      self._ascents[num_rows] = _AdamLoop(
          lambda z, u, c, eta: -self._terms(z, u, c, eta)["objective"], num_rows, self.z_dim,
          self.dtype, self.run_eagerly)
    return self._ascents[num_rows]

  # Synthesis (eqs. 9-11) ----------------------------------------------------------------

  def synthesize(self, user: int, category: int, config: DesignConfig = DesignConfig(),
                 start_z_prime=None, record_steps: Sequence[int] = (),
                 rng=None) -> SynthesisResult:
    """delta-hat(u, c): gradient ascent on eq. 10 from m starts, then top-k by eq. 11.

    Args:
      user, category: u and c.
      config: m, steps, learning rate, eta, k, selection, seed.
      start_z_prime: [m, d] (or [d]) starting codes instead of m random ones (then m is its
        number of rows and config.num_starts is not used; config.top_k must be <= m).
      record_steps: steps (0..config.steps) after which to keep every point's images and
        scores (0 = the starts).
      rng: a `np.random.Generator` or int seed for the starts and the softmax draws, in place
        of config.seed (pass one Generator across trials to vary them).
    """
    user, category = self._check_user(user), self._check_category(category)
    generator = _rng(config.seed if rng is None else rng)
    if start_z_prime is None:
      start = uniform_starts(config.num_starts, self.z_dim, generator).astype(
          self.dtype.as_numpy_dtype)
    else:
      start = self._check_z_prime(start_z_prime)
    if config.top_k > start.shape[0]:
      raise errors.UserError(f"top_k={config.top_k} exceeds the {start.shape[0]} starts")
    record = sorted({int(s) for s in record_steps})
    if record and (record[0] < 0 or record[-1] > config.steps):
      raise errors.UserError(
          f"record_steps must lie in [0, steps={config.steps}], got {list(record_steps)}")

    loop = self._ascent(start.shape[0])
    loop.reset(start, config.learning_rate)
    args = (tf.constant(user, tf.int32), tf.constant(category, tf.int32),
            tf.constant(config.eta, self.dtype))
    trajectory, snapshots, done = [], [], 0
    for target in record:
      trajectory.append(-loop.run_steps(target - done, *args))
      done = target
      snapshots.append(self._snapshot(loop, done, args))
    trajectory.append(-loop.run_steps(config.steps - done, *args))
    final = self._snapshot(loop, config.steps, args)
    trajectory.append(final.objective[None])
    if config.selection == "softmax":
      chosen = softmax_select(final.objective, config.top_k, generator)
    else:
      chosen = top_select(final.objective, config.top_k)
    return SynthesisResult(
        user=user, category=category, start_z_prime=start, z_prime=final.z_prime,
        images=final.images, objective=final.objective, preference=final.preference,
        realism=final.realism, chosen=chosen, trajectory=np.concatenate(trajectory),
        recorded=tuple(snapshots))

  def _snapshot(self, loop: _AdamLoop, step: int, args) -> Snapshot:
    terms = self._evaluate(tf.convert_to_tensor(loop.z_prime), *args)
    return Snapshot(step=step, z_prime=loop.z_prime.numpy().copy(),
                    images=terms["images"].numpy(), objective=terms["objective"].numpy(),
                    preference=terms["preference"].numpy(), realism=terms["realism"].numpy())

  # Tailoring (eq. 12, then eq. 10) ------------------------------------------------------

  def tailor(self, user: int, category: int, query_image,
             config: TailorConfig = TailorConfig(),
             record_steps: Sequence[int] = (0, 10, 20, 30, 40, 50)) -> TailorResult:
    """Invert the query, then maximise the user's objective from its code (one start),
    keeping the image and scores at each recorded step (the paper's Fig. 6)."""
    user, category = self._check_user(user), self._check_category(category)
    record = sorted({int(s) for s in record_steps})
    if not record or record[0] < 0:
      raise errors.UserError(f"record_steps must be steps >= 0, got {list(record_steps)}")
    inversion = self.inverter.invert(category, query_image, config.inversion)
    design = DesignConfig(num_starts=1, steps=record[-1], learning_rate=config.learning_rate,
                          eta=config.eta, top_k=1, selection="top")
    synthesis = self.synthesize(user, category, design, start_z_prime=inversion.z_prime,
                                record_steps=record)
    shots = synthesis.recorded
    return TailorResult(
        inversion=inversion, synthesis=synthesis,
        steps=np.asarray([s.step for s in shots], np.int64),
        images=np.stack([s.images[0] for s in shots]),
        objective=np.asarray([s.objective[0] for s in shots]),
        preference=np.asarray([s.preference[0] for s in shots]),
        realism=np.asarray([s.realism[0] for s in shots]))


# --- Functions over given networks -------------------------------------------------------


def preference_objective(dvbpr: dvbpr_lib.Dvbpr, generator: gan.Generator,
                         discriminator: gan.Discriminator, user: int, category: int,
                         z_prime, eta: float) -> dict:
  """The objective of eq. 10 at m codes, as differentiable tensors.

    image_i      = G_c(tanh z'_i)                                 [m, S, S, 3] in (-1, 1)
    preference_i = theta_u^T Phi(Delta image_i)                   (eq. 6 on the image)
    realism_i    = D_c(image_i), the raw LSGAN score (1 = real)
    objective_i  = preference_i - eta (realism_i - 1)^2           (eq. 10)

  Args:
    z_prime: [m, d] codes (a tensor or variable: gradients flow through tanh).
  Returns:
    dict of `objective`, `preference`, `realism` [m] and `images` [m, S, S, 3].
  """
  return Designer(dvbpr, generator, discriminator).objective(user, category, z_prime, eta)


def invert(generator: gan.Generator, category: int, query_image,
           config: InversionConfig = InversionConfig()) -> InversionResult:
  """z'_query of eq. 12 (`Inverter.invert`)."""
  return Inverter(generator).invert(category, query_image, config)
