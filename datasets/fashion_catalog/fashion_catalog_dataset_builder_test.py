"""TFDS builder test for `fashion_catalog` over `dummy_data/` (see make_dummy_data.py)."""

import dataclasses

import tensorflow_datasets as tfds

from dvbpr_tf_datasets.fashion_catalog import fashion_catalog_dataset_builder


class FashionCatalogTest(tfds.testing.DatasetBuilderTestCase):
  """32 dummy items: 027 is never bought, 028 has no image, 029 and 030 do not decode; 28
  items and 11 users are left."""

  DATASET_CLASS = fashion_catalog_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["default", "time"]
  SPLITS = {"catalog": 28}
  SKIP_CHECKSUMS = True

  def test_configs(self):
    configs = {c.name: c for c in fashion_catalog_dataset_builder.Builder.BUILDER_CONFIGS}
    self.assertEqual(configs["default"].split_method, "random")
    self.assertEqual(configs["default"].image_size, 64)
    self.assertEqual(configs["time"].split_method, "time")
    self.assertEqual(configs["size224_time"].image_size, 224)
    self.assertIsNone(configs["original"].image_size)
    self.assertLen(configs, 6)
    with self.assertRaises(dataclasses.FrozenInstanceError):
      configs["default"].split_method = "time"


if __name__ == "__main__":
  tfds.testing.test_main()
