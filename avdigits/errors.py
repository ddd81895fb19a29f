"""The package's own error types: one line, naming the file or flag at fault."""


class AvdigitsError(Exception):
  """Base class of every error avdigits raises on purpose."""


class DataError(AvdigitsError, ValueError):
  """A data file or directory is missing, unreadable or malformed.

  The message names the file (or directory) and what is wrong with it.
  """


class ConfigError(AvdigitsError, ValueError):
  """A flag or config value is invalid; the message names the flag."""


class TrainingError(AvdigitsError, RuntimeError):
  """Training cannot continue (e.g. a non-finite loss); names stage and step."""
