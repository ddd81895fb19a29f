"""What a normal run prints of other libraries: their errors only.

`--verbosity` (absl) shows everything again.
"""

from __future__ import annotations

import logging as std_logging
import os
import re
import warnings

from absl import logging

# Libraries whose warnings are noise in a normal run: the data loaders'
# (TFDS and the TensorFlow under it), checkpointing's (Orbax) and plotting's.
# JAX's are kept: they say when a run falls back from its accelerator.
QUIET_PACKAGES = ("tensorflow", "tensorflow_datasets", "orbax", "etils",
                  "matplotlib")
# TF_CPP_MIN_LOG_LEVEL (native TensorFlow/XLA logs) in a normal run: errors
# only.
QUIET_NATIVE_LOG_LEVEL = "2"


class LibraryFilter(std_logging.Filter):
  """Drops log records below ERROR logged from inside QUIET_PACKAGES (by the
  caller's file, as absl's logger is shared by every library using it)."""

  def __init__(self, packages: tuple[str, ...] = QUIET_PACKAGES):
    super().__init__()
    self._parts = tuple(f"{os.sep}{package}{os.sep}" for package in packages)

  def filter(self, record: std_logging.LogRecord) -> bool:
    return (record.levelno >= std_logging.ERROR
            or not any(part in record.pathname for part in self._parts))


def quiet_libraries(user_native_level: str | None) -> None:
  """What a run without --verbosity prints of other packages: nothing below
  ERROR from QUIET_PACKAGES, through Python logging (absl's handler, so
  named loggers and absl's shared one alike), Python warnings or native
  logs (TF_CPP_MIN_LOG_LEVEL, unless the user set it: `user_native_level`).
  avdigits' own warnings still show; so does everything with --verbosity.
  """
  logging.set_verbosity(logging.WARNING)
  handler = logging.get_absl_handler()
  if not any(isinstance(f, LibraryFilter) for f in handler.filters):
    handler.addFilter(LibraryFilter())
  modules = "|".join(re.escape(package) for package in QUIET_PACKAGES)
  warnings.filterwarnings("ignore", module=rf"(?:{modules})(?:\.|$)")
  if user_native_level is None:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = QUIET_NATIVE_LOG_LEVEL


def native_log_level(verbosity: int) -> str:
  """TF_CPP_MIN_LOG_LEVEL for absl's --verbosity: INFO (0) and DEBUG (1)
  show every native log, WARNING (-1) warnings and up, and so on."""
  return str(min(max(-verbosity, 0), 3))
