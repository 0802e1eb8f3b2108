"""GAN training on the tiny catalog: resume, export reload in plain TensorFlow."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import workdir as workdir_lib
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.models import gan
from dvbpr_tf.serving import export as export_lib
from dvbpr_tf.training import gan_task
from dvbpr_tf.training import trainer as trainer_lib


# The smoke GAN with a moving-average generator, so that resuming covers it too.
EMA_CONFIG = config_lib.override(config_lib.preset("smoke").gan, {"generator_ema": 0.9})


def _run(catalog, workdir, until_step=None):
  task = gan_task.GanTask(catalog, EMA_CONFIG)
  loop = trainer_lib.LoopConfig(epochs=2, steps_per_epoch=3, steps_per_loop=1,
                                checkpoint_every_steps=2, best_metric="")
  summary = trainer_lib.Trainer(task, loop, workdir_lib.Workdir(workdir)).run(until_step)
  return task, summary


def test_training_changes_both_networks_and_resumes_exactly(tiny_catalog, tmp_path):
  fresh = gan_task.GanTask(tiny_catalog, EMA_CONFIG)
  straight, summary = _run(tiny_catalog, tmp_path / "straight")
  assert summary["steps"] == 6
  assert all(np.isfinite(v) for v in summary["last_metrics"].values())
  for before, after in ((fresh.generator, straight.generator),
                        (fresh.discriminator, straight.discriminator)):
    assert any(not np.allclose(a.numpy(), b.numpy())
               for a, b in zip(after.trainable_weights, before.trainable_weights))
  _run(tiny_catalog, tmp_path / "resumed", until_step=4)
  resumed, summary = _run(tiny_catalog, tmp_path / "resumed")
  assert summary["steps"] == 6
  for model in ("generator", "discriminator", "generator_ema"):
    a, b = getattr(resumed, model), getattr(straight, model)
    assert len(a.weights) == len(b.weights)
    for x, y in zip(a.weights, b.weights):  # BN moving statistics included.
      np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=1e-5, err_msg=x.path)


RELOAD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    path, out = sys.argv[1], sys.argv[2]
    data = np.load(out + "/inputs.npz")
    model = tf.saved_model.load(path)
    made = model.generate(tf.constant(data["z"]), tf.constant(data["category"]))
    scores = model.discriminate(made["images_uint8"], tf.constant(data["category"]))
    try:
      model.generate(tf.constant(data["z"][:1]), tf.constant([99], tf.int64))
      error = None
    except tf.errors.InvalidArgumentError as e:
      error = e.message
    np.savez(out + "/outputs.npz", images=made["images"].numpy(), scores=scores.numpy())
    json.dump({"error": error, "dvbpr_tf_imported": "dvbpr_tf" in sys.modules},
              open(out + "/info.json", "w"))
""")


def test_gan_export_reloads_in_plain_tensorflow(tiny_catalog, tmp_path):
  task = gan_task.GanTask(tiny_catalog, config_lib.preset("smoke").gan)
  network = task.network
  path = export_lib.export_gan(task.generator, task.discriminator, network.num_categories,
                               network.z_dim, tmp_path / "gan")
  z = np.random.default_rng(0).normal(size=(3, network.z_dim)).astype(np.float32)
  category = np.array([0, 3, 9], np.int64)
  np.savez(tmp_path / "inputs.npz", z=z, category=category)
  subprocess.run([sys.executable, "-c", RELOAD, str(path), str(tmp_path)], check=True,
                 capture_output=True, timeout=300)
  out = np.load(tmp_path / "outputs.npz")
  info = json.loads((tmp_path / "info.json").read_text())
  assert not info["dvbpr_tf_imported"]
  expected = task.generator(z, tf.one_hot(category, network.num_categories), training=False)
  np.testing.assert_allclose(out["images"], expected.numpy(), atol=1e-5)
  assert out["scores"].shape == (3,)
  assert "category out of range" in info["error"]


def test_joint_discriminator_batch_scores_real_and_fake_in_one_call(tiny_catalog):
  config = config_lib.override(config_lib.preset("smoke").gan,
                               {"discriminator_batch": "joint"})
  task = gan_task.GanTask(tiny_catalog, config)
  batch = next(iter(task.dataset(0)))
  fake = task.generator(gan.sample_latent(task.network, config.batch_size, seed=0),
                        batch["label"], training=True)
  d_real, d_fake = task._discriminate(batch["image"], fake, batch["label"])
  both = task.discriminator(tf.concat([batch["image"], fake], 0),
                            tf.concat([batch["label"]] * 2, 0), training=True).numpy()
  np.testing.assert_allclose(np.concatenate([d_real, d_fake]), both, rtol=1e-5, atol=1e-6)
  separate = task.discriminator(fake, batch["label"], training=True).numpy()
  assert not np.allclose(d_fake.numpy(), separate)  # Shared batch statistics differ.
  metrics = task.train_step(batch)
  assert all(np.isfinite(float(v)) for v in metrics.values())


def test_mismatched_labels_are_always_another_category_and_cover_all_of_them():
  categories = np.arange(600) % 5
  labels = tf.one_hot(categories, 5)
  wrong = gan_task.mismatched_labels(labels, seed=tf.constant([3, 7], tf.int64)).numpy()
  assert wrong.shape == (600, 5) and np.all(wrong.sum(-1) == 1)
  moved = np.argmax(wrong, -1)
  assert not np.any(moved == categories)
  shifts = (moved - categories) % 5
  assert set(np.unique(shifts)) == {1, 2, 3, 4}  # Every other category, about equally.
  assert np.all(np.bincount(shifts, minlength=5)[1:] > 100)
  again = gan_task.mismatched_labels(labels, seed=tf.constant([3, 7], tf.int64)).numpy()
  np.testing.assert_array_equal(wrong, again)  # Keyed on the seed: resumes the same.


@pytest.mark.parametrize("batch", ["separate", "joint"])
def test_matching_aware_discriminator_scores_real_images_under_wrong_labels(tiny_catalog,
                                                                          batch):
  config = config_lib.override(config_lib.preset("smoke").gan,
                               {"discriminator_batch": batch, "mismatched_labels": 0.5})
  task = gan_task.GanTask(tiny_catalog, config)
  data = next(iter(task.dataset(0)))
  fake = task.generator(gan.sample_latent(task.network, config.batch_size, seed=0),
                        data["label"], training=True)
  wrong = gan_task.mismatched_labels(data["label"], seed=tf.constant([0, 0], tf.int64))
  d_real, d_fake, d_wrong = task._discriminate(data["image"], fake, data["label"],
                                               wrong=wrong)
  if batch == "joint":
    together = task.discriminator(tf.concat([data["image"], fake, data["image"]], 0),
                                  tf.concat([data["label"], data["label"], wrong], 0),
                                  training=True).numpy()
    np.testing.assert_allclose(np.concatenate([d_real, d_fake, d_wrong]), together,
                               rtol=1e-5, atol=1e-6)
  else:
    alone = task.discriminator(data["image"], wrong, training=True).numpy()
    np.testing.assert_allclose(d_wrong, alone, rtol=1e-5, atol=1e-6)
  metrics = task.train_step(data)
  assert all(np.isfinite(float(v)) for v in metrics.values())


def test_mismatched_term_starts_at_its_epoch_and_can_keep_the_fakes_full_weight(tiny_catalog):
  config = config_lib.override(config_lib.preset("smoke").gan, {
      "discriminator_batch": "joint", "mismatched_labels": 0.5,
      "mismatched_labels_split": False, "mismatched_labels_from_epoch": 1})
  task = gan_task.GanTask(tiny_catalog, config)
  data = next(iter(task.dataset(0)))

  def expected_d_loss(step: int, weight: float) -> float:
    """What train_step's D loss must be at `step`, from its own z and wrong labels."""
    z = gan.sample_latent(task.network, config.batch_size,
                          seed=tf.constant([config.seed, step], tf.int64))
    wrong = gan_task.mismatched_labels(data["label"],
                                       seed=tf.constant([config.seed + 1, step], tf.int64))
    fake = task.generator(z, data["label"], training=True)
    scores = task.discriminator(tf.concat([data["image"], fake, data["image"]], 0),
                                tf.concat([data["label"], data["label"], wrong], 0),
                                training=True).numpy()
    real, generated, mismatched = np.split(scores, 3)
    return 0.5 * (np.mean((real - 1) ** 2) + np.mean(generated ** 2)
                  + weight * np.mean(mismatched ** 2))

  before = expected_d_loss(0, 0.0)  # Epoch 0: the plain eq. 7.
  assert float(task.train_step(data)["d_loss"]) == pytest.approx(before, rel=1e-4)
  start = task.steps_per_epoch
  task.d_optimizer.iterations.assign(start)
  after = expected_d_loss(start, 0.5)  # From epoch 1: fakes keep weight 1, plus w L_mis.
  assert after > expected_d_loss(start, 0.0)
  assert float(task.train_step(data)["d_loss"]) == pytest.approx(after, rel=1e-4)


def test_fidelity_with_a_feature_scorer_gives_the_frechet_distance(tiny_catalog):
  class PixelMeans:  # Stands in for the category classifier: 3 features an image.
    def features(self, images):
      return np.asarray(images, np.float32).mean(axis=(1, 2))

  task = gan_task.GanTask(tiny_catalog, config_lib.preset("smoke").gan, PixelMeans())
  fidelity = task.colour_fidelity(per_category=8)
  assert fidelity["frechet_classifier"] > fidelity["frechet_classifier_real_halves"] >= 0
  assert task.colour_fidelity(per_category=8) is fidelity  # Cached for the same step.


def test_moving_average_follows_the_numpy_recurrence_with_its_warm_up(tiny_catalog):
  network = config_lib.GanConfig(image_size=32, width_multiplier=0.125,
                                 num_categories=tiny_catalog.num_categories)
  fast = gan.Generator(network, seed=1).build_for_input()
  slow = gan.Generator(network, seed=2).build_for_input()
  fast.dense_bn.moving_mean.assign(fast.dense_bn.moving_mean + 3.0)
  statistics = [w.numpy().copy() for w in slow.non_trainable_weights]
  for step, decay in ((0, 0.999), (500, 0.999), (5, 0.5)):
    expected_d = min(decay, (1 + step) / (10 + step))
    old = [w.numpy().copy() for w in slow.trainable_weights]
    gan_task.update_moving_average(slow, fast, decay, step)
    for new, o, f in zip(slow.trainable_weights, old, fast.trainable_weights):
      np.testing.assert_allclose(new.numpy(), expected_d * o + (1 - expected_d) * f.numpy(),
                                 rtol=1e-5, atol=1e-7, err_msg=new.path)
  for new, old in zip(slow.non_trainable_weights, statistics):  # Not averaged.
    np.testing.assert_array_equal(new.numpy(), old)


def test_batch_norm_recalibration_gives_the_mean_of_the_batch_statistics(tiny_catalog):
  network = config_lib.GanConfig(image_size=32, width_multiplier=0.125,
                                 num_categories=tiny_catalog.num_categories)
  g = gan.Generator(network, seed=1).build_for_input()
  g.dense_bn.moving_mean.assign(g.dense_bn.moving_mean + 5.0)  # Stale statistics.
  momentum = g.dense_bn.momentum
  gan_task.recalibrate_batch_norm(g, seed=4, batches=3, batch_size=8)
  labels = tf.one_hot(np.arange(8) % network.num_categories, network.num_categories)
  means, variances = [], []
  for k in range(3):  # The first BN's input, in NumPy, for each of the three batches.
    z = gan.sample_latent(network, 8, seed=4 + k).numpy()
    x = np.concatenate([z, g._labels(labels, z).numpy()], axis=-1)  # pylint: disable=protected-access
    kernel, bias = (w.numpy() for w in g.dense.weights)
    h = (x @ kernel + bias).reshape(8, 4, 4, -1)
    means.append(h.mean(axis=(0, 1, 2)))
    variances.append(h.var(axis=(0, 1, 2)))
  np.testing.assert_allclose(g.dense_bn.moving_mean.numpy(), np.mean(means, 0), rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(g.dense_bn.moving_variance.numpy(), np.mean(variances, 0),
                             rtol=1e-3, atol=1e-5)
  assert g.dense_bn.momentum == momentum  # Put back.
  before = [w.numpy().copy() for w in g.non_trainable_weights]
  gan_task.recalibrate_batch_norm(g, seed=4, batches=3, batch_size=8)  # Deterministic.
  for a, b in zip(g.non_trainable_weights, before):
    np.testing.assert_allclose(a.numpy(), b, rtol=1e-6)


def test_the_moving_average_generator_draws_samples_and_is_checkpointed(tiny_catalog,
                                                                        tmp_path):
  task, _ = _run(tiny_catalog, tmp_path)
  assert task.inference_generator is task.generator_ema
  assert gan_task.inference_key(EMA_CONFIG) == "generator_ema" in task.trackables()
  # After training the average lags the last iterate, and the grid comes from the average.
  assert any(not np.allclose(a.numpy(), b.numpy())
             for a, b in zip(task.generator_ema.trainable_weights,
                             task.generator.trainable_weights))
  expected = task.generator_ema(task.grid_z, tf.one_hot(task.grid_categories,
                                                        task.network.num_categories),
                                training=False)
  np.testing.assert_array_equal(task.sample_grid(), input_pipeline.to_uint8(expected))
  # Restoring by the inference key gives the average, batch-norm statistics included.
  generator, _ = gan_task.build_networks(tiny_catalog, EMA_CONFIG)
  trainer_lib.restore_model(workdir_lib.Workdir(tmp_path), "latest",
                            **{gan_task.inference_key(EMA_CONFIG): generator})
  for a, b in zip(generator.weights, task.generator_ema.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  # Off (the authors'): no average, the trained generator draws.
  plain = gan_task.GanTask(tiny_catalog, config_lib.preset("smoke").gan)
  assert plain.inference_generator is plain.generator and "generator_ema" not in (
      plain.trackables())


def test_cosine_schedule_decays_both_networks_step_sizes(tiny_catalog):
  config = config_lib.override(config_lib.preset("smoke").gan,
                               {"schedule": "cosine", "epochs": 3})
  task = gan_task.GanTask(tiny_catalog, config)
  total = task.steps_per_epoch * config.epochs
  for optimizer in (task.g_optimizer, task.d_optimizer):
    for step in (0, total // 3, total):
      optimizer.iterations.assign(step)
      expected = config.learning_rate * 0.5 * (1 + np.cos(np.pi * step / total))
      assert float(optimizer.learning_rate) == pytest.approx(expected, rel=1e-5, abs=1e-12)
  assert gan_task.GanTask(tiny_catalog, config_lib.preset("smoke").gan).learning_rate() == (
      pytest.approx(config.learning_rate))
