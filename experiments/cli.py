"""What every experiment entry point shares: config path, clean errors,
quiet libraries."""

from __future__ import annotations

import logging as std_logging
import os
import pathlib
import re
import sys
import warnings
from collections.abc import Callable

from absl import app, flags, logging

import experiments
from avdigits.errors import AvdigitsError, ConfigError

CONFIG_DIR = pathlib.Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = str(CONFIG_DIR / "default.py")

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


def run(main: Callable[[list[str]], None]) -> None:
  """absl's app.run, with the package's own errors as one line, exit 1.

  Without --verbosity, logging is at WARNING and other libraries' warnings
  are off (see quiet_libraries); --verbosity=0 (INFO) shows all of them,
  native TensorFlow/XLA logs included, and -1 (WARNING) their warnings.
  """

  def wrapped(argv: list[str]) -> None:
    user_native_level = experiments.USER_TF_CPP_MIN_LOG_LEVEL
    if not flags.FLAGS["verbosity"].present:
      quiet_libraries(user_native_level)
    elif user_native_level is None:
      os.environ["TF_CPP_MIN_LOG_LEVEL"] = native_log_level(
          flags.FLAGS.verbosity)
    try:
      main(argv)
    except AvdigitsError as error:
      logging.flush()
      print(f"error: {error}", file=sys.stderr)
      sys.exit(1)

  app.run(wrapped)


def update_readme(path: pathlib.Path, section: str,
                  figures: list[pathlib.Path], suite: str = "study") -> None:
  """Replaces the text between `<!-- suite:begin/end -->` in `path`
  (atomically) with `section` and links to `figures`."""
  begin, end = f"<!-- {suite}:begin -->", f"<!-- {suite}:end -->"
  text = path.read_text()
  if begin not in text or end not in text:
    raise ConfigError(f"--readme={path}: no {begin} ... {end} markers")
  links = "".join(
      f"\n![{f.stem}]({os.path.relpath(f, path.parent)})\n" for f in figures)
  head, rest = text.split(begin, 1)
  _, tail = rest.split(end, 1)
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(f"{head}{begin}\n{section}{links}{end}{tail}")
  os.replace(tmp, path)
