"""Code shared by the dataset builders: the record schema, splits, images, statistics.

Imported as `dvbpr_tf_datasets.common` (see setup.py for why the folder `datasets/` is
installed under that name).
"""
