"""TFDS builder test for fashion_mnist_shoppers over dummy_data/ (drawn shapes in IDX files)."""

import tensorflow_datasets as tfds

from dvbpr_tf_datasets.fashion_mnist_shoppers import fashion_mnist_shoppers_dataset_builder


class FashionMnistShoppersTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = fashion_mnist_shoppers_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["tiny"]
  # 200 images drawn from dummy_data's 240, 50 shoppers; the items nobody picked are dropped.
  SPLITS = {"catalog": 139}
  SKIP_CHECKSUMS = True


if __name__ == "__main__":
  tfds.testing.test_main()
