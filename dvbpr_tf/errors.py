"""Errors a user can cause: each says what was wrong and what to do.

The command line (`experiments/main.py`) prints these as one line and exits non-zero, without
a traceback; anything else is a bug and keeps its traceback.
"""

from dvbpr_tf_datasets.common.errors import DatasetError  # Re-exported: bad source data.


class UserError(Exception):
  """A request that cannot be carried out as given (unknown name, value out of range, ...)."""


class ConfigError(UserError, ValueError):
  """A configuration value out of its allowed range."""


EXPECTED_ERRORS = (UserError, DatasetError, FileNotFoundError, PermissionError)
