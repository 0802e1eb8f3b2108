"""From built TFDS records to batches: catalog (a dataset in memory), sampler (triplets),
input_pipeline (images). May import: core, config, the builders' record schema."""
