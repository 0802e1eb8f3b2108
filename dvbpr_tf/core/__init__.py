"""What every other part stands on: errors, files (the one atomic writer), cache (stamped
caches beside a dataset), workdir (run folders and their lock), distribution (tf.distribute).
May import: nothing else of dvbpr_tf; the builders' shared error type."""
