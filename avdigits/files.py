"""Files that are whole or absent: atomic writes (temporary file, fsync,
rename) and JSON reads that name a damaged file in one line. Used by every
layer that writes (data caches, stages, reports)."""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from collections.abc import Callable
from typing import IO, Any

from avdigits.errors import StorageError, storage_error


def write_atomic(path: str | pathlib.Path, write: Callable[[IO], None],
                 what: str = "", binary: bool = False) -> None:
  """Calls `write(file)` on a temporary file in `path`'s directory, then
  renames it to `path`: a reader sees the old file or the whole new one.

  A write the machine refuses (no space, no permission) removes the
  temporary file and raises a one-line StorageError naming `what` (e.g.
  "the result of stage image") and `path`.
  """
  path = pathlib.Path(path)
  temporary = None
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb" if binary else "w",
                                     dir=path.parent, delete=False,
                                     prefix=f".{path.name}.",
                                     suffix=".tmp") as f:
      temporary = f.name
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(temporary, path)
  except BaseException as error:
    if temporary is not None:
      pathlib.Path(temporary).unlink(missing_ok=True)
    if not isinstance(error, OSError):
      raise
    raise storage_error(error, f"{what + ' ' if what else ''}{path}"
                        ) from None


def write_json_atomic(path: str | pathlib.Path, obj: Any,
                      what: str = "") -> None:
  """Writes JSON to a temporary file in the same directory, then renames."""
  write_atomic(path, lambda f: json.dump(obj, f, indent=1, sort_keys=True),
               what)


def read_json(path: str | pathlib.Path,
              fix: str = "delete it and run again") -> Any:
  """The JSON in `path`; a damaged file is a one-line StorageError naming it
  and `fix`, what to do about it."""
  try:
    with open(path) as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise StorageError(f"{path} is damaged ({str(error)[:100]}); "
                       f"{fix}") from None
