"""dvbpr-tf: visually-aware fashion recommendation and design (Kang et al., ICDM 2017).

The data flow, one subpackage per stage (each `__init__` says what may be imported there):

    dvbpr_tf_datasets (datasets/)  TFDS builders -> TFRecords
    core/        errors, work dir (atomic writes, lock), tf.distribute
    config       the configuration tree of a run and its named presets
    data/        catalog, triplet sampler, image pipeline
    models/      CNN-F tower, DVBPR, GAN networks
    baselines/   the other methods of Table III
    features/    pre-trained item features and their cache
    training/    losses, tasks, the Trainer
    evaluation/  AUC metrics, evaluator, generated-image metrics
    design/      retrieval, preference maximisation, tailoring
    serving/     SavedModel export, embedding projector
    reporting/   tables, charts, report.html
    experiments/ (beside this package) reads the flags and runs the above
"""
