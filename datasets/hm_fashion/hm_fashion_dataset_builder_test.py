"""TFDS builder test for `hm_fashion` over `dummy_data/` (see make_dummy_data.py)."""

import dataclasses

import tensorflow_datasets as tfds

from dvbpr_tf_datasets.hm_fashion import hm_fashion_dataset_builder


class HmFashionTest(tfds.testing.DatasetBuilderTestCase):
  """Builds the 1% sample: 12 of the 14 dummy customers, 10 kept, 30 articles."""

  DATASET_CLASS = hm_fashion_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["sample_1pct"]
  # 36 articles: 33 bought by the sample, one without an image, one truncated, one bought
  # only by the customer with 4 articles.
  SPLITS = {"catalog": 30}
  SKIP_CHECKSUMS = True

  def test_configs(self):
    configs = {c.name: c for c in hm_fashion_dataset_builder.Builder.BUILDER_CONFIGS}
    self.assertEqual(configs["sample_1pct"].sample_fraction, 0.01)
    self.assertEqual(configs["sample_1pct"].image_size, 64)
    self.assertEqual(configs["sample_10pct_time"].split_method, "time")
    self.assertEqual(configs["full"].image_size, 224)
    self.assertEqual(configs["full"].sample_fraction, 1.0)
    self.assertLen(configs, 6)
    with self.assertRaises(dataclasses.FrozenInstanceError):
      configs["full"].sample_fraction = 0.5


class HmFashionTimeTest(tfds.testing.DatasetBuilderTestCase):
  """Every dummy customer, the time split: 12 customers kept, 32 articles."""

  DATASET_CLASS = hm_fashion_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["full_time"]
  SPLITS = {"catalog": 32}
  SKIP_CHECKSUMS = True


if __name__ == "__main__":
  tfds.testing.test_main()
