"""What every experiment entry point shares: config path, clean errors."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable

from absl import app, flags, logging

from avdigits.errors import AvdigitsError

CONFIG_DIR = pathlib.Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = str(CONFIG_DIR / "default.py")


def run(main: Callable[[list[str]], None]) -> None:
  """absl's app.run, with the package's own errors as one line, exit 1.

  Logging defaults to WARNING (pass --verbosity=0 for INFO).
  """

  def wrapped(argv: list[str]) -> None:
    if not flags.FLAGS["verbosity"].present:  # library INFO chatter off
      logging.set_verbosity(logging.WARNING)
    try:
      main(argv)
    except AvdigitsError as error:
      logging.flush()
      print(f"error: {error}", file=sys.stderr)
      sys.exit(1)

  app.run(wrapped)
