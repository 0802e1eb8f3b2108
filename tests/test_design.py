"""Personalised design: retrieval (eq. 8), preference maximisation (eqs. 9-11), tailoring
(eq. 12), on tiny random networks."""

# pylint: disable=protected-access

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from dvbpr_tf.core import errors
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.design import designer as design
from dvbpr_tf.models import cnn_f
from dvbpr_tf.models import dvbpr
from dvbpr_tf.models import gan

NUM_USERS, NUM_CATEGORIES, Z_DIM, K = 5, 3, 8, 4


def _calibrate_batch_norm(model, *inputs):
  """Sets every batch norm's moving statistics to one batch's statistics, so that inference
  mode normalises (fresh moving statistics, mean 0 and variance 1, leave the random networks'
  outputs ~1e-4, too flat to optimise or to check gradients on)."""
  norms = [layer for layer in model._flatten_layers()
           if isinstance(layer, keras.layers.BatchNormalization)]
  momenta = [bn.momentum for bn in norms]
  for bn in norms:
    bn.momentum = 0.0  # moving = batch statistics after one training-mode call.
  model(*inputs, training=True)
  for bn, momentum in zip(norms, momenta):
    bn.momentum = momentum


def _networks(seed=1):
  """A 32x32 GAN and a 64x64 tower (so Delta upscales 2x), with O(1) outputs."""
  config = gan.GanConfig(image_size=32, z_dim=Z_DIM, num_categories=NUM_CATEGORIES,
                         width_multiplier=0.125)
  generator = gan.Generator(config, seed=seed).build_for_input()
  discriminator = gan.Discriminator(config, seed=seed + 1).build_for_input()
  keras.utils.set_random_seed(seed)  # The tower's Glorot initialisers.
  labels = tf.one_hot(np.arange(64) % NUM_CATEGORIES, NUM_CATEGORIES)
  z = tf.random.stateless_uniform([64, Z_DIM], [0, seed], -1.0, 1.0)
  _calibrate_batch_norm(generator, z, labels)
  generator.to_rgb.kernel.assign(generator.to_rgb.kernel * 4.0)  # Images of std ~0.5.
  _calibrate_batch_norm(discriminator, generator(z, labels), labels)
  model = dvbpr.Dvbpr(NUM_USERS, cnn_f.TowerConfig(embedding_dim=K, input_size=64,
                                                   width_multiplier=0.125)).build_for_input()
  model.theta.assign(np.random.default_rng(seed).normal(size=(NUM_USERS, K)) * 10.0)
  return model, generator, discriminator


@pytest.fixture(scope="module")
def networks():
  return _networks()


@pytest.fixture(scope="module")
def designer(networks):
  return design.Designer(*networks)


# --- Configs -----------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("num_starts", 0), ("steps", -1), ("learning_rate", 0.0), ("learning_rate", float("nan")),
    ("eta", -1.0), ("top_k", 0), ("top_k", 65), ("selection", "best"), ("seed", -1),
    ("start", "random"), ("start_inversion_steps", -1),
])
def test_bad_design_config_names_the_field(field, value):
  with pytest.raises(errors.ConfigError, match=field):
    design.DesignConfig(**{field: value})


@pytest.mark.parametrize("field, value", [
    ("steps", -1), ("learning_rate", -0.1), ("num_starts", 0), ("seed", 1.5)])
def test_bad_inversion_config_names_the_field(field, value):
  with pytest.raises(errors.ConfigError, match=field):
    design.InversionConfig(**{field: value})


def test_defaults_are_the_papers_and_the_authors_script():
  config = design.DesignConfig()
  assert (config.num_starts, config.steps, config.learning_rate, config.eta, config.top_k,
          config.selection, config.start) == (64, 10, 0.05, 1.0, 3, "softmax", "uniform")
  with pytest.raises(errors.ConfigError, match="eta"):
    design.TailorConfig(eta=-0.5)


# --- Retrieval (eq. 8) -------------------------------------------------------------------


def test_retrieve_against_brute_force():
  rng = np.random.default_rng(3)
  items = rng.normal(size=(200, 6)).astype(np.float32)
  categories = rng.integers(0, 4, size=200)
  theta = rng.normal(size=6).astype(np.float32)
  exclude = rng.choice(200, size=30, replace=False)
  ids, scores = design.retrieve(theta, items, categories, 2, 5, exclude=exclude)
  brute = sorted(((float(items[i] @ theta), i) for i in range(200)
                  if categories[i] == 2 and i not in set(exclude)), reverse=True)[:5]
  np.testing.assert_array_equal(ids, [i for _, i in brute])
  np.testing.assert_allclose(scores, [s for s, _ in brute], rtol=1e-5)
  assert np.all(categories[ids] == 2) and not set(ids) & set(exclude)
  # Hand-worked: theta = [1, 0]; items 0..3 score 3, 5, 5, 1; item 1 is excluded.
  ids, scores = design.retrieve([1.0, 0.0], [[3, 0], [5, 0], [5, 1], [1, 9]], [0, 0, 0, 1],
                                0, 3, exclude=[1])
  np.testing.assert_array_equal(ids, [2, 0])  # Fewer than k left in category 0.
  np.testing.assert_array_equal(scores, [5.0, 3.0])
  ids, _ = design.retrieve([1.0, 0.0], [[3, 0], [5, 0], [5, 1]], [0, 0, 0], 0, 2)
  np.testing.assert_array_equal(ids, [1, 2])  # A tie goes to the lower id.
  with pytest.raises(errors.UserError, match="category 7"):
    design.retrieve(theta, items, categories, 7, 3)


# --- Selection (eq. 11) ------------------------------------------------------------------


def test_softmax_select_frequencies_match_softmax():
  objective = np.array([1.0, 0.0, -1.0, 2.0, 0.5])
  p = np.exp(objective) / np.exp(objective).sum()
  rng = np.random.default_rng(0)
  draws = 20000
  firsts = np.array([design.softmax_select(objective, 1, rng)[0] for _ in range(draws)])
  counts = np.bincount(firsts, minlength=5)
  chi2 = np.sum((counts - draws * p) ** 2 / (draws * p))
  assert chi2 < 20.5  # chi-square, 4 degrees of freedom: P(> 20.5) < 0.0005.
  # k = 2 without replacement: P(i then j) = p_i p_j / (1 - p_i).
  pairs = np.array([design.softmax_select(objective, 2, rng) for _ in range(draws)])
  assert np.all(pairs[:, 0] != pairs[:, 1])
  expected = np.array([[0 if i == j else p[i] * p[j] / (1 - p[i]) for j in range(5)]
                       for i in range(5)])
  observed = np.zeros((5, 5))
  np.add.at(observed, (pairs[:, 0], pairs[:, 1]), 1)
  mask = expected > 0
  chi2 = np.sum((observed[mask] - draws * expected[mask]) ** 2 / (draws * expected[mask]))
  assert chi2 < 50.0  # 19 degrees of freedom: P(> 50) < 0.0002.
  # Large gaps do not underflow into an error: the best is drawn first, then the next.
  np.testing.assert_array_equal(design.softmax_select([0.0, 1000.0, 500.0], 3, 1), [1, 2, 0])
  # A seed fixes the draw.
  np.testing.assert_array_equal(design.softmax_select(objective, 3, 7),
                                design.softmax_select(objective, 3, 7))
  with pytest.raises(errors.UserError, match="k=6"):
    design.softmax_select(objective, 6, 0)


def test_top_select_picks_the_best():
  np.testing.assert_array_equal(design.top_select([0.3, 2.0, -1.0, 2.0, 1.5], 3), [1, 3, 4])


# --- The objective (eqs. 9, 10) ----------------------------------------------------------


def test_objective_against_numpy_recomputation(networks):
  model, generator, discriminator = networks
  z_prime = np.random.default_rng(1).normal(size=(4, Z_DIM)).astype(np.float32)
  user, category, eta = 3, 2, 0.7
  out = design.preference_objective(model, generator, discriminator, user, category, z_prime,
                                    eta)
  labels = tf.one_hot([category] * 4, NUM_CATEGORIES)
  images = generator(np.tanh(z_prime), labels, training=False).numpy()
  upscaled = images.repeat(2, axis=1).repeat(2, axis=2)  # Nearest, 32 -> 64.
  phi = model.item_embeddings(upscaled, training=False).numpy()
  preference = phi @ model.theta.numpy()[user]
  realism = discriminator(images, labels, training=False).numpy()[:, 0]
  np.testing.assert_allclose(out["images"].numpy(), images, atol=1e-5)
  np.testing.assert_allclose(out["preference"].numpy(), preference, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out["realism"].numpy(), realism, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(out["objective"].numpy(),
                             preference - eta * (realism - 1.0) ** 2, rtol=1e-4, atol=1e-5)
  assert np.std(images) > 0.1 and np.std(preference) > 0.01  # Not a degenerate case.
  # Inference mode: dropout off, so the same codes give the same scores again.
  again = design.preference_objective(model, generator, discriminator, user, category,
                                      z_prime, eta)
  np.testing.assert_array_equal(again["objective"].numpy(), out["objective"].numpy())


def test_objective_gradient_through_tanh_against_finite_differences():
  # float64 networks, so that central differences with a tiny step resolve the gradient of
  # these piecewise-linear (ReLU, max-pool) networks between their kinks.
  policy = keras.config.dtype_policy()
  keras.config.set_dtype_policy("float64")
  try:
    model, generator, discriminator = _networks(seed=3)
  finally:
    keras.config.set_dtype_policy(policy)
  designer = design.Designer(model, generator, discriminator)
  rng = np.random.default_rng(2)
  z_prime = tf.Variable(rng.normal(size=(3, Z_DIM)))  # Codes past tanh's linear range too.
  for eta in (0.0, 1.0):
    with tf.GradientTape() as tape:
      total = tf.reduce_sum(designer.objective(1, 0, z_prime, eta)["objective"])
    assert total.dtype == tf.float64
    gradient = tape.gradient(total, z_prime).numpy()
    assert np.abs(gradient).max() > 1e-2
    f = lambda x: float(tf.reduce_sum(designer.objective(1, 0, x, eta)["objective"]))
    eps = 1e-6
    for _ in range(3):
      direction = rng.normal(size=(3, Z_DIM))
      direction /= np.linalg.norm(direction)
      numeric = (f(z_prime + eps * direction) - f(z_prime - eps * direction)) / (2 * eps)
      assert float(np.sum(gradient * direction)) == pytest.approx(numeric, rel=1e-4,
                                                                   abs=1e-6)


# --- Synthesis ---------------------------------------------------------------------------


def test_synthesis_ascends_records_and_selects(designer):
  config = design.DesignConfig(num_starts=16, steps=10, top_k=3, seed=5)
  result = designer.synthesize(2, 1, config, record_steps=[0, 4, 10])
  m = 16
  assert result.z_prime.shape == (m, Z_DIM) and result.images.shape == (m, 32, 32, 3)
  assert result.trajectory.shape == (11, m)
  assert np.abs(result.images).max() <= 1.0
  # The starts are atanh(U(-1, 1)).
  assert np.abs(np.tanh(result.start_z_prime)).max() < 1.0
  start = designer.objective(2, 1, result.start_z_prime, 1.0)["objective"].numpy()
  np.testing.assert_allclose(result.trajectory[0], start, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(result.trajectory[-1], result.objective)
  # Ascent: every start ends higher than it began.
  assert np.all(result.trajectory[-1] > result.trajectory[0])
  assert result.objective.mean() > start.mean() + 0.1
  # The snapshots agree with the trajectory and the final state.
  assert [s.step for s in result.recorded] == [0, 4, 10]
  for snapshot in result.recorded:
    np.testing.assert_allclose(snapshot.objective, result.trajectory[snapshot.step],
                               rtol=1e-4, atol=1e-4)
  np.testing.assert_array_equal(result.recorded[0].z_prime, result.start_z_prime)
  np.testing.assert_array_equal(result.recorded[-1].images, result.images)
  # Selection: three distinct indices; the same seed, the same result.
  assert len(set(result.chosen.tolist())) == 3
  assert result.chosen_images.shape == (3, 32, 32, 3)
  again = designer.synthesize(2, 1, config)
  np.testing.assert_array_equal(again.chosen, result.chosen)
  np.testing.assert_allclose(again.objective, result.objective, rtol=1e-5, atol=1e-5)
  top = designer.synthesize(2, 1, design.DesignConfig(num_starts=16, selection="top",
                                                      seed=5))
  np.testing.assert_array_equal(top.chosen, np.argsort(-top.objective)[:3])
  # New users, categories, etas and step counts reuse the compiled loop.
  designer.synthesize(0, 2, design.DesignConfig(num_starts=16, steps=3, eta=0.0))
  assert designer._ascent(16).run.experimental_get_tracing_count() == 1
  with pytest.raises(errors.UserError, match="record_steps"):
    designer.synthesize(2, 1, config, record_steps=[11])
  with pytest.raises(errors.UserError, match="user 5"):
    designer.synthesize(5, 1, config)


def test_batched_starts_equal_separate_runs(designer):
  config = design.DesignConfig(num_starts=4, steps=6, top_k=1, selection="top")
  starts = design.uniform_starts(4, Z_DIM, 11)
  batched = designer.synthesize(4, 0, config, start_z_prime=starts)
  for i in range(4):
    single = designer.synthesize(4, 0, config, start_z_prime=starts[i])
    np.testing.assert_allclose(single.z_prime[0], batched.z_prime[i], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(single.trajectory[:, 0], batched.trajectory[:, i], rtol=1e-4,
                               atol=1e-4)
  # One trace per batch size, whatever the starts.
  assert designer._ascent(1).run.experimental_get_tracing_count() == 1
  # The eager debugging path takes the same steps.
  eager = design.Designer(designer.dvbpr, designer.generator, designer.discriminator,
                          run_eagerly=True).synthesize(4, 0, config, start_z_prime=starts)
  np.testing.assert_allclose(eager.trajectory, batched.trajectory, rtol=1e-4, atol=1e-4)


# --- Inversion and tailoring (eq. 12) ----------------------------------------------------


def test_downscale_matches_the_input_pipeline():
  rng = np.random.default_rng(0)
  # Nabla of a uniform image is the same uniform image, scaled to [-1, 1].
  flat = design.downscale(np.full((50, 70, 3), 255, np.uint8), 32).numpy()
  assert flat.shape == (32, 32, 3)
  np.testing.assert_allclose(flat, 1.0, atol=1e-6)
  # The query is downscaled as the pipeline made the GAN's training images (up to the
  # pipeline's rounding to uint8).
  image = rng.integers(0, 256, size=(80, 80, 3)).astype(np.uint8)
  jpeg = tf.io.encode_jpeg(image, quality=100)
  pipeline = input_pipeline.scale_images(input_pipeline.decode_image(jpeg, 32)).numpy()
  ours = design.downscale(tf.io.decode_jpeg(jpeg, channels=3), 32).numpy()
  np.testing.assert_allclose(ours, pipeline, atol=0.5 / 127.5 + 1e-6)
  # Floats must already be in [-1, 1]; images at the GAN's size pass through.
  with pytest.raises(errors.UserError, match=r"\[-1, 1\]"):
    design.downscale(image.astype(np.float32), 32)
  same = rng.uniform(-1, 1, size=(32, 32, 3)).astype(np.float32)
  np.testing.assert_array_equal(design.downscale(same, 32).numpy(), same)


def test_inversion_recovers_a_generated_query(networks):
  _, generator, _ = networks
  z_star = design.uniform_starts(1, Z_DIM, 21)
  query = generator(np.tanh(z_star), tf.one_hot([1], NUM_CATEGORIES)).numpy()[0]
  result = design.invert(generator, 1, query,
                         design.InversionConfig(steps=150, learning_rate=0.05, num_starts=4))
  assert result.l1_trajectory.shape == (151, 4)
  assert result.l1_after < 0.5 * result.l1_before
  assert result.l1_after < 0.5 * result.l1_trajectory[0].min()
  assert result.l1_after < 0.05 * np.abs(query).mean() + 0.02  # Close to the query.
  np.testing.assert_allclose(
      result.reconstruction,
      generator(np.tanh(result.z_prime[None]), tf.one_hot([1], NUM_CATEGORIES)).numpy()[0],
      atol=1e-5)
  assert np.mean(np.abs(result.reconstruction - query)) == pytest.approx(result.l1_after,
                                                                         rel=1e-4)


def test_invert_each_recovers_each_generated_query_and_matches_one_at_a_time(designer):
  generator = designer.generator
  z_star = design.uniform_starts(3, Z_DIM, 5)
  labels = tf.one_hot([2] * 3, NUM_CATEGORIES)
  queries = generator(np.tanh(z_star), labels).numpy()
  z_prime, l1 = designer.inverter.invert_each(2, queries, steps=150, learning_rate=0.05,
                                              seed=9)
  assert z_prime.shape == (3, Z_DIM) and l1.shape == (3,)
  reconstructions = generator(np.tanh(z_prime), labels).numpy()
  np.testing.assert_allclose(l1, np.abs(reconstructions - queries).mean(axis=(1, 2, 3)),
                             rtol=1e-4)
  before = np.abs(generator(np.tanh(design.uniform_starts(3, Z_DIM, 9)), labels).numpy()
                  - queries).mean(axis=(1, 2, 3))
  assert np.all(l1 < 0.5 * before)
  with pytest.raises(errors.UserError, match=r"invert_each wants images \[m, 32, 32, 3\]"):
    designer.inverter.invert_each(2, queries[0], steps=1, learning_rate=0.05)


def test_synthesis_from_retrieved_starts_begins_at_their_inversions(designer, networks):
  from experiments import design as design_experiment  # pylint: disable=import-outside-toplevel
  model = networks[0]
  num_items, category = 12, 1
  images = designer.generator(
      np.tanh(design.uniform_starts(num_items, Z_DIM, 3)),
      tf.one_hot([category] * num_items, NUM_CATEGORIES)).numpy()
  jpegs = [tf.io.encode_jpeg(input_pipeline.to_uint8(image), quality=95).numpy()
           for image in images]

  class Catalog:  # What synthesis_start reads of a catalog.
    item_category = np.array([category] * 8 + [0] * 4)

  Catalog.jpegs = jpegs
  item_vectors = model.item_embeddings(design.upscale(images, 64), training=False).numpy()
  theta = model.theta.numpy()[0]
  config = design.DesignConfig(num_starts=4, top_k=2, start="retrieved",
                               start_inversion_steps=30)
  start = design_experiment.synthesis_start(designer, config, Catalog, theta, item_vectors,
                                            category)
  ids, _ = design.retrieve(theta, item_vectors, Catalog.item_category, category, 4)
  targets = input_pipeline.decode_items(jpegs, ids, 32)
  expected, _ = designer.inverter.invert_each(category, targets, 30, 0.05, seed=0)
  np.testing.assert_allclose(start, expected, rtol=1e-5, atol=1e-6)
  result = designer.synthesize(0, category, dataclasses.replace(config, steps=3),
                               start_z_prime=start)
  np.testing.assert_allclose(result.start_z_prime, start)
  assert design_experiment.synthesis_start(
      designer, design.DesignConfig(), Catalog, theta, item_vectors, category) is None


def test_tailor_records_steps_and_raises_the_preference(designer):
  query = np.random.default_rng(4).integers(0, 256, size=(48, 48, 3)).astype(np.uint8)
  config = design.TailorConfig(inversion=design.InversionConfig(steps=20, num_starts=2),
                               eta=0.0)
  result = designer.tailor(3, 2, query, config, record_steps=(0, 10, 20, 30, 40, 50))
  np.testing.assert_array_equal(result.steps, [0, 10, 20, 30, 40, 50])
  assert result.images.shape == (6, 32, 32, 3) and result.preference.shape == (6,)
  assert result.inversion.target.shape == (32, 32, 3)
  assert result.inversion.l1_after < result.inversion.l1_before
  np.testing.assert_allclose(result.images[0], result.inversion.reconstruction, atol=1e-5)
  np.testing.assert_allclose(result.synthesis.start_z_prime[0], result.inversion.z_prime)
  np.testing.assert_allclose(result.objective, result.preference)  # eta = 0.
  assert result.preference[-1] >= result.preference[0]
  assert result.synthesis.trajectory.shape == (51, 1)
