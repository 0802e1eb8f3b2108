"""TFDS builder test for `dvbpr_authors` over `dummy_data/` (see make_dummy_data.py)."""

import dataclasses

import tensorflow_datasets as tfds

from dvbpr_tf_datasets.dvbpr_authors import dvbpr_authors_dataset_builder


class DvbprAuthorsTest(tfds.testing.DatasetBuilderTestCase):
  """Builds `amazon_fashion` from the 12-item dummy file; item 7 does not decode."""

  DATASET_CLASS = dvbpr_authors_dataset_builder.Builder
  SPLITS = {"catalog": 11}
  BUILDER_CONFIG_NAMES_TO_TEST = ["amazon_fashion"]

  def test_configs(self):
    configs = {c.name: c for c in dvbpr_authors_dataset_builder.Builder.BUILDER_CONFIGS}
    self.assertEqual(configs["amazon_women"].filename, "AmazonWomenWithImgPartitioned.npy")
    self.assertIsNone(configs["tradesy"].image_size)
    self.assertEqual(configs["tradesy_64"].image_size, 64)
    self.assertEqual(configs["amazon_fashion_224"].image_size, 224)
    self.assertEqual(configs["tradesy_64"].filename, "TradesyImgPartitioned.npy")
    self.assertLen(configs, 12)
    with self.assertRaises(dataclasses.FrozenInstanceError):
      configs["amazon_men"].image_size = 32


if __name__ == "__main__":
  tfds.testing.test_main()
