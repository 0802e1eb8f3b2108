"""Pre-trained item features for VisRank, FM and VBPR (sources: a file, a Keras application, a
category CNN trained on the dataset), cached beside the dataset. May import: core, data."""
