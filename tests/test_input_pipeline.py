"""tf.data pipelines over the tiny catalog: dtypes, shapes, range, cache equivalence."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from dvbpr_tf.data import input_pipeline
from dvbpr_tf.data import sampler as sampler_lib


@pytest.fixture(scope="module")
def tables(tiny_catalog):
  config = input_pipeline.PipelineConfig(image_size=40, batch_size=8)
  cached = input_pipeline.ImageTable(tiny_catalog.jpegs, 40, cache_decoded="always")
  on_demand = input_pipeline.ImageTable(tiny_catalog.jpegs, 40, cache_decoded="never")
  return config, cached, on_demand


def _sampler(catalog, seed=0):
  users, items = catalog.interactions("train")
  return sampler_lib.TripletSampler(users, items, catalog.num_users, catalog.num_items, seed)


def test_triplet_batches(tiny_catalog, tables):
  config, cached, on_demand = tables
  for table in (cached, on_demand):
    batch = next(iter(input_pipeline.triplet_dataset(_sampler(tiny_catalog), table, config)))
    assert batch["user"].dtype == tf.int64 and batch["user"].shape == (8,)
    for key in ("pos_image", "neg_image"):
      images = batch[key].numpy()
      assert images.dtype == np.float32 and images.shape == (8, 40, 40, 3)
      assert images.min() >= -1.0 and images.max() <= 1.0
      assert images.max() == 1.0  # white product background


def test_cached_and_on_demand_tables_agree(tiny_catalog, tables):
  config, cached, on_demand = tables
  a = next(iter(input_pipeline.triplet_dataset(_sampler(tiny_catalog), cached, config)))
  b = next(iter(input_pipeline.triplet_dataset(_sampler(tiny_catalog), on_demand, config)))
  for key in a:
    np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())


def test_horizontal_flips_mirror_about_half_the_images_and_resume_exactly(tiny_catalog,
                                                                          tables):
  config, cached, _ = tables
  flipped = dataclasses.replace(config, horizontal_flip=True)
  plain = list(input_pipeline.triplet_dataset(_sampler(tiny_catalog), cached, config).take(4))
  flips = list(input_pipeline.triplet_dataset(_sampler(tiny_catalog), cached, flipped,
                                              seed=3).take(4))
  mirrored = 0
  for a, b in zip(plain, flips):
    np.testing.assert_array_equal(a["pos"].numpy(), b["pos"].numpy())  # Same triplets.
    for key in ("pos_image", "neg_image"):
      x, y = a[key].numpy(), b[key].numpy()
      same = np.all(x == y, axis=(1, 2, 3))
      mirror = np.all(x[:, :, ::-1] == y, axis=(1, 2, 3))
      assert np.all(same | mirror)  # Each image is either as stored or mirrored.
      mirrored += int(np.sum(mirror & ~same))
  assert 0.25 * 64 < mirrored < 0.75 * 64  # 4 batches x 2 keys x 8 images.
  # A run resumed at batch 2 draws the same flips as the straight run's batches 2 and 3.
  resumed = list(input_pipeline.triplet_dataset(_sampler(tiny_catalog), cached, flipped,
                                                start=2, seed=3).take(2))
  for a, b in zip(flips[2:], resumed):
    for key in a:
      np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
  # Another seed, other flips.
  other = next(iter(input_pipeline.triplet_dataset(_sampler(tiny_catalog), cached, flipped,
                                                   seed=4)))
  assert not np.array_equal(other["pos_image"].numpy(), flips[0]["pos_image"].numpy())


def test_images_match_the_stored_jpeg(tiny_catalog, tables):
  _, cached, _ = tables
  item = 5
  expected = tf.io.decode_jpeg(tiny_catalog.jpegs[item], channels=3)
  expected = tf.image.resize(expected, [40, 40], antialias=True)
  got = cached.lookup(tf.constant([item]))[0]
  np.testing.assert_allclose(got.numpy(), np.round(expected.numpy()), atol=1)
  scaled = input_pipeline.scale_images(tf.constant([[0, 255]], tf.uint8)).numpy()
  np.testing.assert_allclose(scaled, [[-1.0, 1.0]])


def test_item_dataset_yields_every_item_once_in_order(tiny_catalog, tables):
  _, cached, on_demand = tables
  for table in (cached, on_demand):
    batches = list(input_pipeline.item_dataset(table, batch_size=32))
    items = np.concatenate([b["item"].numpy() for b in batches])
    np.testing.assert_array_equal(items, np.arange(tiny_catalog.num_items))
    assert batches[-1]["image"].shape[1:] == (40, 40, 3)


def test_gan_batches_are_one_hot_and_each_epoch_is_a_permutation(tiny_catalog, tables):
  _, cached, _ = tables
  batch_size = 16
  per_epoch = tiny_catalog.num_items // batch_size
  dataset = input_pipeline.gan_dataset(cached, tiny_catalog.item_category,
                                       tiny_catalog.num_categories, batch_size, seed=2)
  batches = list(dataset.take(2 * per_epoch))
  for b in batches:
    np.testing.assert_array_equal(np.argmax(b["label"].numpy(), 1), b["category"].numpy())
    np.testing.assert_array_equal(tiny_catalog.item_category[b["item"].numpy()],
                                  b["category"].numpy())
  first = np.concatenate([b["item"].numpy() for b in batches[:per_epoch]])
  second = np.concatenate([b["item"].numpy() for b in batches[per_epoch:]])
  assert len(set(first)) == len(first) and len(set(second)) == len(second)
  assert not np.array_equal(first, second)
  # Resuming at epoch 1 gives the second epoch again.
  resumed = input_pipeline.gan_dataset(cached, tiny_catalog.item_category,
                                       tiny_catalog.num_categories, batch_size, seed=2,
                                       epoch_start=1)
  np.testing.assert_array_equal(next(iter(resumed))["item"].numpy(), second[:batch_size])


def test_bad_config_is_refused():
  with pytest.raises(ValueError, match="cache_decoded"):
    input_pipeline.PipelineConfig(cache_decoded="sometimes")
  with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
    input_pipeline.PipelineConfig(batch_size=0)


def test_plain_bilinear_resize_is_close_to_antialiased_on_mild_downscales(tiny_catalog):
  """`resize="bilinear"` (PipelineConfig.resize) reads the 4 nearest pixels instead of the
  widened filter: near the antialiased image for 50 -> 40, identical at the stored size."""
  rng = np.random.default_rng(0)
  smooth = tf.image.resize(rng.uniform(0, 255, (1, 6, 6, 3)), [50, 50]).numpy()[0]
  jpeg = tf.io.encode_jpeg(smooth.astype(np.uint8), quality=100)
  plain = input_pipeline.decode_image(jpeg, 40, "bilinear").numpy().astype(float)
  antialiased = input_pipeline.decode_image(jpeg, 40, "antialiased").numpy().astype(float)
  assert plain.shape == antialiased.shape == (40, 40, 3)
  assert 0 < np.abs(plain - antialiased).mean() < 3.0
  stored = input_pipeline.decode_image(jpeg, 50, "bilinear").numpy()
  np.testing.assert_array_equal(stored, input_pipeline.decode_image(jpeg, 50).numpy())
  table = input_pipeline.ImageTable.from_config(
      tiny_catalog.jpegs, input_pipeline.PipelineConfig(image_size=40, resize="bilinear",
                                                        cache_decoded="never"))
  looked_up = table.lookup(tf.constant([0, 1], tf.int64)).numpy()
  np.testing.assert_array_equal(looked_up, input_pipeline.decode_items(tiny_catalog.jpegs,
                                                                       [0, 1], 40, "bilinear"))
  with pytest.raises(Exception, match="resize"):
    input_pipeline.PipelineConfig(resize="cubic")
