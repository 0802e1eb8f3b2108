"""The conditional LSGAN: losses (eq. 7), layer lists, parameter counts, training, export."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import errors
from dvbpr_tf.models import gan
from dvbpr_tf.models import losses

SMALL = 0.125  # width_multiplier where the full width is too slow for a test.


def _labels(ids, num_categories):
  return tf.one_hot(tf.constant(ids, tf.int32), num_categories)


# --- Losses (eq. 7) ----------------------------------------------------------------------


def test_lsgan_losses_hand_worked():
  # D(real) = [1, 0, 3]: (D - 1)^2 = [0, 1, 4], mean 5/3.
  # D(fake) = [0, 2]:    D^2 = [0, 4], mean 2.        L_D = (5/3 + 2) / 2 = 11/6.
  #                      (D - 1)^2 = [1, 1], mean 1.  L_G = 1.
  d_real = tf.constant([[1.0], [0.0], [3.0]])
  d_fake = tf.constant([[0.0], [2.0]])
  assert float(losses.lsgan_discriminator_loss(d_real, d_fake)) == pytest.approx(11 / 6)
  assert float(losses.lsgan_generator_loss(d_fake)) == pytest.approx(1.0)
  # The optimum: D says 1 on real, 0 on fake; G's optimum: D says 1 on fake.
  assert float(losses.lsgan_discriminator_loss(tf.ones([4, 1]), tf.zeros([4, 1]))) == 0.0
  assert float(losses.lsgan_generator_loss(tf.ones([4, 1]))) == 0.0


def test_lsgan_losses_against_numpy():
  rng = np.random.default_rng(0)
  d_real, d_fake = rng.normal(size=(16, 1)) * 3, rng.normal(size=(16, 1)) * 3
  expected_d = (np.mean((d_real - 1) ** 2) + np.mean(d_fake ** 2)) / 2
  expected_g = np.mean((d_fake - 1) ** 2)
  assert float(losses.lsgan_discriminator_loss(tf.constant(d_real), tf.constant(d_fake))) == (
      pytest.approx(expected_d, rel=1e-6))
  assert float(losses.lsgan_generator_loss(tf.constant(d_fake))) == pytest.approx(
      expected_g, rel=1e-6)


def test_matching_aware_discriminator_loss_against_numpy():
  rng = np.random.default_rng(1)
  d_real, d_fake, d_wrong = (rng.normal(size=(8, 1)) * 2 for _ in range(3))
  for weight in (0.0, 0.3, 0.5):
    expected = (np.mean((d_real - 1) ** 2) + (1 - weight) * np.mean(d_fake ** 2)
                + weight * np.mean(d_wrong ** 2)) / 2
    got = losses.matching_aware_discriminator_loss(
        tf.constant(d_real), tf.constant(d_fake), tf.constant(d_wrong), weight)
    assert float(got) == pytest.approx(expected, rel=1e-6)
  for weight in (0.0, 0.5):  # The generated images keep their full weight.
    expected = (np.mean((d_real - 1) ** 2) + np.mean(d_fake ** 2)
                + weight * np.mean(d_wrong ** 2)) / 2
    got = losses.matching_aware_discriminator_loss(
        tf.constant(d_real), tf.constant(d_fake), tf.constant(d_wrong), weight,
        fake_weight=1.0)
    assert float(got) == pytest.approx(expected, rel=1e-6)
  assert float(losses.matching_aware_discriminator_loss(
      tf.constant(d_real), tf.constant(d_fake), tf.constant(d_wrong), 0.0)) == pytest.approx(
          float(losses.lsgan_discriminator_loss(tf.constant(d_real), tf.constant(d_fake))))


# --- Config and z ------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("image_size", 96), ("image_size", 256), ("z_dim", 0), ("num_categories", 0),
    ("z_distribution", "gaussian"), ("width_multiplier", 0.0), ("bn_momentum", 1.0),
    ("bn_epsilon", 0.0), ("leaky_slope", -0.1), ("upsampling", "bilinear"),
    ("minibatch_stddev", 1),
])
def test_bad_config_names_the_field(field, value):
  with pytest.raises(errors.ConfigError, match=field):
    gan.GanConfig(**{field: value})


def test_sample_latent_distributions_and_seeds():
  normal = gan.GanConfig(z_dim=256, z_distribution="normal")
  z = gan.sample_latent(normal, 400, seed=3).numpy()
  assert z.shape == (400, 256) and z.dtype == np.float32
  assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02
  np.testing.assert_array_equal(z, gan.sample_latent(normal, 400, seed=3).numpy())
  assert not np.array_equal(z, gan.sample_latent(normal, 400, seed=4).numpy())
  uniform = gan.GanConfig(z_dim=100, z_distribution="uniform")
  u = gan.sample_latent(uniform, tf.constant(400), seed=tf.constant([1, 2])).numpy()
  assert u.shape == (400, 100) and u.min() >= -1.0 and u.max() <= 1.0
  assert abs(u.std() - np.sqrt(1 / 3)) < 0.01  # U(-1, 1) has variance 1/3.
  rng = tf.random.Generator.from_seed(0)
  first, second = gan.sample_latent(uniform, 5, rng), gan.sample_latent(uniform, 5, rng)
  assert not np.array_equal(first.numpy(), second.numpy())  # The generator's state moves.
  assert gan.sample_latent(uniform, 7).shape == (7, 100)


# --- Layer lists and parameter counts ----------------------------------------------------


def test_generator_layer_list_at_64():
  config = gan.GanConfig(image_size=64, z_dim=256, num_categories=6)
  generator = gan.Generator(config).build_for_input()
  assert generator.dense.units == 4 * 4 * 256
  assert [(d.filters, d.kernel_size, d.strides) for d in generator.deconvs] == [
      (256, (3, 3), (2, 2)), (256, (3, 3), (1, 1)), (256, (3, 3), (2, 2)),
      (256, (3, 3), (1, 1)), (128, (3, 3), (2, 2)), (64, (3, 3), (2, 2))]
  assert (generator.to_rgb.filters, generator.to_rgb.kernel_size, generator.to_rgb.strides) == (
      3, (3, 3), (1, 1))
  assert all(d.padding == "same" for d in (*generator.deconvs, generator.to_rgb))
  maps = generator.feature_maps(tf.zeros([2, 256]), _labels([0, 5], 6))
  assert [tuple(m.shape[1:]) for m in maps] == [
      (4, 4, 256), (8, 8, 256), (8, 8, 256), (16, 16, 256), (16, 16, 256), (32, 32, 128),
      (64, 64, 64), (64, 64, 3)]
  # Seven batch norms (the 4x4 map and each deconv block), none after to_rgb.
  for bn in (generator.dense_bn, *generator.bns):
    assert (bn.momentum, bn.epsilon, bn.center, bn.scale) == (0.9, 1e-5, True, True)
  assert generator.dense_bn.gamma.shape == (256,)  # Per channel of the reshaped 4x4 map.
  assert len(generator.bns) == 6


def test_discriminator_layer_list_at_64():
  config = gan.GanConfig(image_size=64, num_categories=6)
  discriminator = gan.Discriminator(config).build_for_input()
  assert [(c.filters, c.kernel_size, c.strides, c.padding) for c in discriminator.convs] == [
      (f, (5, 5), (2, 2), "same") for f in (64, 128, 256, 512)]
  # Batch norm on the 2nd-4th convs only.
  assert discriminator.bns[0] is None
  for bn in discriminator.bns[1:]:
    assert (bn.momentum, bn.epsilon, bn.center, bn.scale) == (0.9, 1e-5, True, True)
  # The label is concatenated to the input and to h1..h3, not to h4 (flattened for dense).
  assert [c.kernel.shape[2] for c in discriminator.convs] == [3 + 6, 64 + 6, 128 + 6, 256 + 6]
  assert discriminator.dense.kernel.shape == (4 * 4 * 512, 1)
  maps = discriminator.feature_maps(tf.zeros([2, 64, 64, 3]), _labels([0, 5], 6))
  assert [tuple(m.shape[1:]) for m in maps] == [
      (32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512), (1,)]


def test_parameter_counts_at_full_width():
  # Every count includes the batch norms' 4 vectors (gamma, beta, moving mean and variance).
  # Generator at 64, z 256, 6 categories:
  #   dense (256 + 6) * 4096 + 4096                          = 1,077,248
  #   BN on the 4x4x256 map 4 * 256                          =     1,024
  #   deconv1..4: 4 * (3*3*256*256 + 256 + 4*256)            = 2,364,416
  #   deconv5: 3*3*256*128 + 128 + 4*128                     =   295,552
  #   deconv6: 3*3*128*64 + 64 + 4*64                        =    74,048
  #   to_rgb: 3*3*64*3 + 3                                   =     1,731
  #                                                   total  = 3,814,019
  # At 128: to_rgb reads 32 channels (3*3*32*3 + 3 = 867) and deconv7 adds
  #   3*3*64*32 + 32 + 4*32 = 18,592:  3,814,019 - 1,731 + 18,592 + 867 = 3,831,747.
  # Discriminator at 64, 6 categories (each conv also reads the 6 label channels):
  #   conv1 5*5*(3+6)*64 + 64                                =    14,464
  #   conv2 5*5*(64+6)*128 + 128 + 4*128                     =   224,640
  #   conv3 5*5*(128+6)*256 + 256 + 4*256                    =   858,880
  #   conv4 5*5*(256+6)*512 + 512 + 4*512                    = 3,356,160
  #   dense 4*4*512 + 1                                      =     8,193
  #                                                   total  = 4,462,337
  # At 128: conv5 5*5*(512+6)*512 + 512 + 4*512 = 6,632,960 and the dense still reads
  #   4x4x512:  4,462,337 + 6,632,960 = 11,095,297.
  expected = {64: (3_814_019, 4_462_337), 128: (3_831_747, 11_095_297)}
  for size, (g_params, d_params) in expected.items():
    config = gan.GanConfig(image_size=size, z_dim=256, num_categories=6)
    assert gan.Generator(config).build_for_input().count_params() == g_params
    assert gan.Discriminator(config).build_for_input().count_params() == d_params
  # The paper's z (100-d) changes only the dense: 156 * 4096 fewer weights.
  paper = gan.GanConfig(image_size=128, z_dim=100, z_distribution="uniform")
  assert gan.Generator(paper).build_for_input().count_params() == 3_831_747 - 156 * 4096


def test_initialisers():
  config = gan.GanConfig(image_size=64, num_categories=6)
  generator = gan.Generator(config, seed=0).build_for_input()
  discriminator = gan.Discriminator(config, seed=0).build_for_input()
  for kernel in (generator.dense.kernel, generator.deconvs[3].kernel):  # N(0, 0.02)
    values = kernel.numpy()
    assert abs(values.std() - 0.02) < 0.0005 and abs(values.mean()) < 0.0005
  # Truncated normal(0.02), redrawn beyond 2 sigma: std 0.02 * 0.8796 = 0.0176.
  values = discriminator.convs[3].kernel.numpy()
  assert abs(values.std() - 0.0176) < 0.0005 and np.abs(values).max() <= 0.04 + 1e-6
  assert abs(discriminator.dense.kernel.numpy().std() - 0.02) < 0.001  # The authors' linear.
  layers = (generator.dense, *generator.deconvs, generator.to_rgb, *discriminator.convs,
            discriminator.dense)
  assert all(not np.any(layer.bias.numpy()) for layer in layers)
  for bn in (generator.dense_bn, *generator.bns, *discriminator.bns[1:]):
    np.testing.assert_array_equal(bn.gamma.numpy(), 1.0)
    np.testing.assert_array_equal(bn.beta.numpy(), 0.0)
  # The seed fixes the initial weights.
  again = gan.Generator(config, seed=0).build_for_input()
  np.testing.assert_array_equal(again.deconvs[0].kernel.numpy(),
                                generator.deconvs[0].kernel.numpy())
  assert not np.array_equal(generator.deconvs[0].kernel.numpy(),  # One stream per layer.
                            generator.deconvs[1].kernel.numpy())


# --- Shapes, labels, range ---------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("num_categories", [1, 6, 10, 53])
def test_output_shapes(size, num_categories):
  config = gan.GanConfig(image_size=size, z_dim=16, num_categories=num_categories,
                         width_multiplier=SMALL)
  generator = gan.Generator(config).build_for_input()
  discriminator = gan.Discriminator(config).build_for_input()
  labels = _labels(np.arange(3) % num_categories, num_categories)
  images = generator(gan.sample_latent(config, 3, seed=0), labels)
  assert images.shape == (3, size, size, 3)
  assert discriminator(images, labels).shape == (3, 1)
  assert discriminator(images, labels, training=True).shape == (3, 1)
  assert len(discriminator.convs) == (5 if size == 128 else 4)
  assert len(generator.deconvs) == {32: 5, 64: 6, 128: 7}[size]


def test_labels_change_both_networks_and_images_are_tanh():
  config = gan.GanConfig(image_size=32, z_dim=32, num_categories=6, width_multiplier=0.25)
  generator = gan.Generator(config, seed=1).build_for_input()
  discriminator = gan.Discriminator(config, seed=2).build_for_input()
  z = tf.repeat(gan.sample_latent(config, 1, seed=5), 2, axis=0)
  labels = _labels([0, 4], 6)
  images = generator(z, labels).numpy()
  # Same z, different category (at initialisation the images are ~1e-4, hence relative).
  assert np.abs(images[0] - images[1]).max() > 0.05 * np.abs(images).max() > 0
  np.testing.assert_array_equal(generator.generate(z, tf.constant([0, 4])).numpy(), images)
  same_images = tf.repeat(images[:1], 2, axis=0)
  scores = discriminator(same_images, labels).numpy()
  assert abs(scores[0, 0] - scores[1, 0]) > 1e-6  # Same image, different category.
  # Blow up the last kernel to reach tanh's tails.
  generator.to_rgb.kernel.assign(generator.to_rgb.kernel * 1e4)
  images = generator(z, labels, training=True).numpy()
  assert np.abs(images).max() <= 1.0 and np.abs(images).max() > 0.99
  assert images.min() < -0.99 and images.max() > 0.99


# --- Training, checkpoints, export -------------------------------------------------------


def test_alternating_steps_train_both_networks():
  config = gan.GanConfig(image_size=32, z_dim=32, num_categories=6, width_multiplier=SMALL)
  generator = gan.Generator(config, seed=1).build_for_input()
  discriminator = gan.Discriminator(config, seed=2).build_for_input()
  d_optimizer = keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.99)
  g_optimizer = keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.99)
  rng = tf.random.Generator.from_seed(0)

  @tf.function
  def d_step(images, labels):
    z = gan.sample_latent(config, tf.shape(images)[0], rng)
    with tf.GradientTape() as tape:
      loss = losses.lsgan_discriminator_loss(
          discriminator(images, labels, training=True),
          discriminator(generator(z, labels, training=True), labels, training=True))
    variables = discriminator.trainable_variables
    d_optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  @tf.function
  def g_step(labels):
    z = gan.sample_latent(config, tf.shape(labels)[0], rng)
    with tf.GradientTape() as tape:
      loss = losses.lsgan_generator_loss(
          discriminator(generator(z, labels, training=True), labels, training=True))
    variables = generator.trainable_variables
    g_optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  def snapshot(model):
    return [v.numpy().copy() for v in model.trainable_variables]

  def changed(before, model):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables)]

  images = tf.random.stateless_uniform([8, 32, 32, 3], [0, 1], -1.0, 1.0)
  labels = _labels(np.arange(8) % 6, 6)
  moving_mean = generator.bns[0].moving_mean.numpy().copy()
  for _ in range(3):
    g_before, d_before = snapshot(generator), snapshot(discriminator)
    d_loss = float(d_step(images, labels))
    assert all(changed(d_before, discriminator)) and not any(changed(g_before, generator))
    g_before, d_before = snapshot(generator), snapshot(discriminator)
    g_loss = float(g_step(labels))
    assert all(changed(g_before, generator)) and not any(changed(d_before, discriminator))
    assert np.isfinite(d_loss) and np.isfinite(g_loss)
  # training=True updates the batch-norm moving statistics.
  assert not np.array_equal(moving_mean, generator.bns[0].moving_mean.numpy())


def test_checkpoint_restores_and_export_serves_the_same_outputs(tmp_path):
  config = gan.GanConfig(image_size=32, z_dim=16, num_categories=6, width_multiplier=SMALL)
  generator = gan.Generator(config, seed=1).build_for_input()
  discriminator = gan.Discriminator(config, seed=2).build_for_input()
  z, labels = gan.sample_latent(config, 4, seed=0), _labels([0, 1, 2, 5], 6)
  discriminator(generator(z, labels, training=True), labels, training=True)  # Move BN stats.
  images = generator(z, labels).numpy()
  scores = discriminator(images, labels).numpy()

  path = tf.train.Checkpoint(generator=generator, discriminator=discriminator).write(
      str(tmp_path / "ckpt"))
  saved = [name for name, _ in tf.train.list_variables(path) if name.endswith("VALUE")]
  assert len(saved) == len(generator.weights) + len(discriminator.weights)  # BN stats too.
  fresh_g = gan.Generator(config, seed=3).build_for_input()
  fresh_d = gan.Discriminator(config, seed=4).build_for_input()
  assert not np.allclose(fresh_g(z, labels).numpy(), images)
  tf.train.Checkpoint(generator=fresh_g, discriminator=fresh_d).read(path).assert_consumed()
  np.testing.assert_array_equal(fresh_g(z, labels).numpy(), images)
  np.testing.assert_array_equal(fresh_d(images, labels).numpy(), scores)

  archive = keras.export.ExportArchive()
  archive.track(generator)
  archive.track(discriminator)
  archive.add_endpoint(
      "generate", lambda z, ids: generator.generate(z, ids),
      [tf.TensorSpec([None, 16], tf.float32), tf.TensorSpec([None], tf.int32)])
  archive.add_endpoint(
      "discriminate", lambda x, y: discriminator(x, y),
      [tf.TensorSpec([None, 32, 32, 3], tf.float32), tf.TensorSpec([None, 6], tf.float32)])
  archive.write_out(str(tmp_path / "export"), verbose=False)
  served = tf.saved_model.load(str(tmp_path / "export"))
  np.testing.assert_allclose(served.generate(z, tf.constant([0, 1, 2, 5])).numpy(), images,
                             atol=1e-6)
  np.testing.assert_allclose(served.discriminate(tf.constant(images), labels).numpy(), scores,
                             rtol=1e-5, atol=1e-6)


def test_config_round_trip():
  config = gan.GanConfig(image_size=32, z_dim=8, num_categories=3, width_multiplier=SMALL)
  for cls in (gan.Generator, gan.Discriminator):
    model = cls(config, seed=7)
    clone = cls.from_config(model.get_config())
    assert clone.config == config and clone.seed == 7


# --- The demo's options: resize upsampling, minibatch standard deviation -----------------


def _numpy_conv_same(x, kernel, bias):
  """[B, H, W, Cin] * [k, k, Cin, Cout], stride 1, SAME (odd k): the oracle."""
  k = kernel.shape[0]
  pad = k // 2
  padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
  for i in range(x.shape[1]):
    for j in range(x.shape[2]):
      patch = padded[:, i:i + k, j:j + k, :]
      out[:, i, j, :] = np.tensordot(patch, kernel, axes=([1, 2, 3], [0, 1, 2]))
  return out + bias


def test_resize_conv_is_nearest_upsampling_then_same_conv():
  layer = gan.ResizeConv(5, 3, strides=2, kernel_initializer="random_normal")
  x = np.random.default_rng(0).normal(size=(2, 3, 4, 3)).astype(np.float32)
  out = layer(x).numpy()
  kernel, bias = (w.numpy() for w in layer.conv.weights)
  bias = bias + 0.5
  layer.conv.bias.assign(bias)
  up = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
  np.testing.assert_allclose(layer(x).numpy(), _numpy_conv_same(up, kernel, bias), atol=1e-5)
  assert out.shape == (2, 6, 8, 5)


def test_resize_generator_has_no_transposed_convs_and_the_same_shapes():
  config = gan.GanConfig(image_size=32, z_dim=8, num_categories=3, width_multiplier=SMALL,
                         upsampling="resize")
  generator = gan.Generator(config, seed=0).build_for_input()
  assert not any(isinstance(layer, keras.layers.Conv2DTranspose)
                 for layer in generator.deconvs)
  maps = generator.feature_maps(gan.sample_latent(config, 2, seed=0), _labels([0, 2], 3))
  transposed = gan.Generator(dataclasses.replace(config, upsampling="transposed"),
                             seed=0).build_for_input()
  expected = transposed.feature_maps(gan.sample_latent(config, 2, seed=0), _labels([0, 2], 3))
  assert [m.shape for m in maps] == [m.shape for m in expected]


def test_minibatch_stddev_against_numpy_and_its_moving_average():
  layer = gan.MinibatchStddev(momentum=0.75)
  x = np.random.default_rng(1).normal(size=(6, 2, 3, 4)).astype(np.float32)
  out = layer(x, training=True).numpy()
  expected = np.sqrt(x.var(axis=0) + 1e-8).mean()  # Population std across the batch.
  np.testing.assert_allclose(out[..., :4], x)
  np.testing.assert_allclose(out[..., 4], expected, rtol=1e-5)
  assert float(layer.moving_stddev.numpy()) == pytest.approx(0.25 * expected, rel=1e-5)
  layer(x, training=True)
  moving = 0.75 * 0.25 * expected + 0.25 * expected
  assert float(layer.moving_stddev.numpy()) == pytest.approx(moving, rel=1e-5)
  inference = layer(x[:1], training=False).numpy()  # One image: the moving value.
  np.testing.assert_allclose(inference[..., 4], moving, rtol=1e-5)


def test_grouped_minibatch_stddev_against_numpy_keeps_real_and_fake_groups_apart():
  layer = gan.MinibatchStddev(momentum=0.5, group=2)
  rng = np.random.default_rng(2)
  real = rng.normal(size=(4, 2, 3, 4)).astype(np.float32)
  fake = np.repeat(rng.normal(size=(1, 2, 3, 4)), 4, axis=0).astype(np.float32)  # Collapsed.
  x = np.concatenate([real, fake])
  out = layer(x, training=True).numpy()
  groups = x.reshape(4, 2, 2, 3, 4)  # Consecutive pairs: (0, 1), (2, 3), (4, 5), (6, 7).
  expected = np.sqrt(groups.var(axis=1) + 1e-8).mean(axis=(1, 2, 3))
  np.testing.assert_allclose(out[..., :4], x)
  np.testing.assert_allclose(out[..., 4], np.repeat(expected, 2)[:, None, None] *
                             np.ones((8, 2, 3)), rtol=1e-5)
  assert out[:4, ..., 4].min() > 0.3 and out[4:, ..., 4].max() < 1e-3  # Fakes stand out.
  assert float(layer.moving_stddev.numpy()) == pytest.approx(0.5 * expected.mean(), rel=1e-5)
  one_group = gan.MinibatchStddev(momentum=0.5)(x, training=True).numpy()[..., 4]
  assert np.ptp(one_group) == 0  # The whole call's single value: the same for both halves.
  with pytest.raises(tf.errors.InvalidArgumentError):
    layer(x[:3], training=True)


def test_minibatch_stddev_group_must_divide_the_batch():
  network = gan.GanConfig(image_size=32, minibatch_stddev=True, minibatch_stddev_group=3)
  with pytest.raises(errors.ConfigError, match="minibatch_stddev_group.*must divide"):
    config_lib.GanTrainConfig(network=network, batch_size=16)
  config_lib.GanTrainConfig(network=network, batch_size=15)


def test_discriminator_with_minibatch_stddev_scores_each_image_alone_at_inference():
  config = gan.GanConfig(image_size=32, z_dim=8, num_categories=3, width_multiplier=SMALL,
                         minibatch_stddev=True)
  discriminator = gan.Discriminator(config, seed=0).build_for_input()
  images = tf.random.stateless_uniform([4, 32, 32, 3], [0, 1], -1.0, 1.0)
  labels = _labels([0, 1, 2, 0], 3)
  discriminator(images, labels, training=True)  # Moves the moving stddev off zero.
  assert float(discriminator.stddev.moving_stddev.numpy()) > 0
  together = discriminator(images, labels).numpy()
  alone = np.concatenate([discriminator(images[i:i + 1], labels[i:i + 1]).numpy()
                          for i in range(4)])
  np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-6)
  trained = discriminator(images, labels, training=True).numpy()
  shuffled = discriminator(tf.concat([images[:2], images[:2]], 0), labels, training=True)
  assert not np.allclose(trained[:2], shuffled.numpy()[:2])  # In training the batch matters.


@pytest.mark.parametrize("stddev", [False, True])
def test_projection_discriminator_adds_the_category_embeddings_inner_product(stddev):
  """D(x, c) = w^T h + b + (E c)^T h (Miyato & Koyama 2018), h the flattened last map."""
  config = gan.GanConfig(image_size=32, num_categories=3, width_multiplier=0.125,
                         minibatch_stddev=stddev, projection=True)
  d = gan.Discriminator(config, seed=0).build_for_input()
  images = tf.random.uniform([4, 32, 32, 3], -1, 1, seed=5)
  labels = tf.one_hot([0, 2, 1, 2], 3)
  maps = d.feature_maps(images, labels)
  last = maps[-2]
  if stddev:
    last = d.stddev(last, training=False)
  h = last.numpy().reshape(4, -1)
  assert h.shape[1] == gan.discriminator_features(config)
  kernel, bias = (w.numpy() for w in d.dense.weights)
  embedding = d.projection.kernel.numpy()  # [C, len(h)]
  expected = h @ kernel + bias + np.sum(embedding[[0, 2, 1, 2]] * h, -1, keepdims=True)
  np.testing.assert_allclose(maps[-1].numpy(), expected, rtol=1e-4, atol=1e-5)
  plain = gan.Discriminator(dataclasses.replace(config, projection=False), seed=0)
  assert plain.build_for_input().count_params() == d.count_params() - 3 * h.shape[1]
