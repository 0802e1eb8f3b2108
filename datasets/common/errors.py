"""The error type of the dataset builders: bad or missing source data, said plainly."""


class DatasetError(ValueError):
  """Source data that cannot be built: what was wrong, where, and what to do."""
