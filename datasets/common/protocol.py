"""Facts of the paper's evaluation protocol that the builders and the evaluation share.

Plain constants, importable from anywhere without TensorFlow (docs/reproduction.md, section
"Evaluation protocol").
"""

COLD_THRESHOLD = 5  # Cold items: fewer than 5 observations at training time (Table III).
