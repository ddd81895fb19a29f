"""The package's own error types: one line, naming the file or flag at fault."""

import errno
import os


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


class StorageError(AvdigitsError, RuntimeError):
  """The machine refused a write (no space, no permission) or a stored file
  is damaged; the message names the path, the cause and what to do."""


class Interrupted(BaseException):
  """SIGINT or SIGTERM stopped the run (a BaseException, as
  KeyboardInterrupt, so that no `except Exception` swallows it).

  `where` is filled in by the code that knows, e.g. the training loop:
  "stage S at step N, its last checkpoint".
  """

  def __init__(self, signum: int, where: str | None = None):
    super().__init__(signum)
    self.signum = signum
    self.where = where


# Causes, by errno, that the machine (not the data) is responsible for.
_CAUSES = {errno.ENOSPC: "no space left on device",
           errno.EDQUOT: "disk quota exceeded",
           errno.EACCES: "permission denied",
           errno.EPERM: "operation not permitted",
           errno.EROFS: "read-only file system",
           errno.EFBIG: "file too large",
           errno.EIO: "input/output error"}
# The same causes as native libraries (TensorStore, under Orbax) word them.
_NATIVE_CAUSES = (("RESOURCE_EXHAUSTED", errno.ENOSPC),
                  ("No space left", errno.ENOSPC),
                  ("Disk quota exceeded", errno.EDQUOT),
                  ("PERMISSION_DENIED", errno.EACCES),
                  ("Permission denied", errno.EACCES),
                  ("Read-only file system", errno.EROFS))


def storage_cause(error: BaseException) -> int | None:
  """The errno of a failed write, from an OSError or from a native
  library's error text; None when `error` is not a storage failure."""
  if isinstance(error, OSError):
    return error.errno or 0
  text = str(error)
  return next((code for marker, code in _NATIVE_CAUSES if marker in text),
              None)


def storage_error(error: BaseException, writing: str, kept: str = ""
                  ) -> StorageError | None:
  """The one-line error for a failed write of `writing` ("the checkpoint
  of ... in PATH"), or None when `error` is no storage failure. `kept` says
  what survives ("the last complete checkpoint (step 10) is kept")."""
  code = storage_cause(error)
  if code is None:
    return None
  cause = _CAUSES.get(code) or (os.strerror(code).lower() if code
                                else str(error).splitlines()[0][:200])
  fix = ("free space" if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
         else "make it writable" if code in (errno.EACCES, errno.EPERM,
                                              errno.EROFS)
         else "check the disk")
  return StorageError(f"{cause} while writing {writing}"
                      f"{'; ' + kept if kept else ''}; {fix} and run the "
                      f"same command again to resume")
