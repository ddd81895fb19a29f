"""The entry points (flags only) and their configs."""

import os
import signal
import sys

# The user's own TF_CPP_MIN_LOG_LEVEL (None if unset), read before any entry
# point imports JAX, which sets it to "1" when unset; cli.run keeps a user's
# value and otherwise sets its own.
USER_TF_CPP_MIN_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")


def _stopped_while_starting(signum: int, frame: object) -> None:
  """Ctrl-C (or SIGTERM) while an entry point still imports JAX and its
  modules: nothing has been written yet; one line, exit 128 + signal."""
  del frame
  sys.stderr.write(f"stopped by {signal.Signals(signum).name} while "
                   f"starting; nothing was written\n")
  sys.stderr.flush()
  os._exit(128 + signum)


# `python -m experiments.X` imports this package first (with argv[0] still
# "-m"), then X's imports take seconds; cli.run installs the run's own
# handlers once they are done. Importing the package otherwise (tests, a
# user's `from experiments.configs import ...`) changes no handler.
if sys.argv[:1] == ["-m"]:
  for _signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_signum, _stopped_while_starting)
