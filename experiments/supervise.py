"""One process of a multi-process job, run as a supervised child.

When another process of the job (or its coordinator) is lost, JAX's runtime
aborts the survivors with a C++ stack dump; the supervisor prints one line
in its place.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

# Set in the child that runs the work when a multi-process job's process
# supervises itself (see `supervise`).
CHILD_ENV = "AVDIGITS_JOB_CHILD"
# Lines that start the runtime's own fatal report (a lost peer or
# coordinator): the supervisor prints one line instead of them.
_FATAL_MARKERS = ("*** Check failure", "Fatal Python error", "Check failed")


def _die_with_parent() -> None:
  """In the child: be killed (SIGKILL) when the supervisor dies."""
  try:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG, Linux
  except (OSError, AttributeError):
    pass


def supervise(process_id: int | None, num_processes: int) -> int:
  """Runs this command again as a child and waits for it.

  When another process of the job (or its coordinator) is lost, JAX's
  runtime aborts the survivors after its heartbeat timeout with a C++
  stack dump; the supervisor prints one line in its place, and exit 1.
  """
  child = subprocess.Popen(
      [sys.executable, *sys.orig_argv[1:]], env={**os.environ,
                                                 CHILD_ENV: "1"},
      stderr=subprocess.PIPE, text=True, errors="replace",
      preexec_fn=_die_with_parent)
  # SIGINT and SIGTERM are the child's to handle (it stops cleanly and
  # says where): passed on, and its exit status returned.
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, lambda s, frame: child.send_signal(s))
  fatal = False
  for line in child.stderr:
    fatal = fatal or line.lstrip().startswith(_FATAL_MARKERS) or (
        line[:1] == "F" and line[1:5].isdigit())  # absl FATAL log lines
    if not fatal:
      sys.stderr.write(line)
  code = child.wait()
  if code in (0, 1, 130, 143):  # done, our own one-line errors, stopped
    return code
  print(f"error: process {process_id} of {num_processes}: the job stopped "
        f"(another process or the coordinator was lost; exit {code}); run "
        f"every process again with the same flags to resume from the last "
        f"checkpoints", file=sys.stderr)
  return 1
