"""What every experiment entry point shares: config path, device and job
flags, clean one-line errors, quiet libraries (experiments/quiet.py) and
supervised multi-process jobs (experiments/supervise.py)."""

from __future__ import annotations

import os
import pathlib
import signal
import sys
from collections.abc import Callable

import jax
import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

import experiments
from avdigits.errors import (
  AvdigitsError,
  ConfigError,
  Interrupted,
  storage_error,
)
from avdigits.training import devices
from avdigits.training.workdir import write_atomic
from experiments import quiet, supervise

CONFIG_DIR = pathlib.Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = str(CONFIG_DIR / "default.py")
# The docs page (relative to the repository root) holding each generated
# table's <!-- NAME:begin/end --> markers: what --readme names.
DOCS_PAGES = {"draws": "docs/paper.md", "pool": "docs/paper.md",
              "voices": "docs/voices.md", "voices_val": "docs/voices.md",
              "select": "docs/voices.md",
              "study": "docs/study.md"}

_PLATFORM = flags.DEFINE_enum(
    "platform", None, list(devices.PLATFORMS), "Device platform (default "
    "$JAX_PLATFORMS, else the best present); a clear error if absent.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 of a multi-process "
    "job (jax.distributed).")
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Processes in the job (-1: detected, on TPU "
    "pods and SLURM).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's "
                                   "index in the job.")
_DETERMINISTIC = flags.DEFINE_bool(
    "deterministic", True, "Deterministic GPU reductions (XLA's "
    "--xla_gpu_deterministic_ops), so that runs and resumes repeat exactly; "
    "no effect on CPU.")


def _stop(signum: int, frame: object) -> None:
  """SIGINT or SIGTERM: stop once (a second signal while stopping, e.g. a
  terminal's and a supervisor's, is ignored)."""
  del frame
  for other in (signal.SIGINT, signal.SIGTERM):
    signal.signal(other, signal.SIG_IGN)
  raise Interrupted(signum)


def _stopped(stop: BaseException) -> None:
  """One line for a run stopped by SIGINT or SIGTERM; exit 128 + signal."""
  signum = getattr(stop, "signum", signal.SIGINT)
  where = getattr(stop, "where", None)
  workdir = flags.FLAGS["workdir"].value if "workdir" in flags.FLAGS else None
  place = (f" in {where}" if where else
           f"; finished stages are kept in {workdir}" if workdir else "")
  logging.flush()
  print(f"stopped by {signal.Signals(signum).name}{place}; run the same "
        f"command again to resume", file=sys.stderr, flush=True)
  sys.exit(128 + signum)


def run(main: Callable[[list[str]], None]) -> None:
  """absl's app.run, with the package's own errors as one line, exit 1.

  A write that the machine refuses (no space, no permission) is one such
  line too, naming the path and the cause. SIGINT and SIGTERM stop a run
  cleanly (a checkpoint being written is finished first): one line saying
  where it stopped, exit 130 or 143.

  Without --verbosity, logging is at WARNING and other libraries' warnings
  are off (see quiet_libraries); --verbosity=0 (INFO) shows all of them,
  native TensorFlow/XLA logs included, and -1 (WARNING) their warnings. A
  process of a multi-process job (--num_processes > 1) runs its work in a
  supervised child, so that a lost peer, too, ends it with one line.
  """

  def wrapped(argv: list[str]) -> None:
    if (_NUM_PROCESSES.value not in (None, 1)
        and not os.environ.get(supervise.CHILD_ENV)):
      sys.exit(supervise.supervise(_PROCESS_ID.value, _NUM_PROCESSES.value))
    user_native_level = experiments.USER_TF_CPP_MIN_LOG_LEVEL
    if not flags.FLAGS["verbosity"].present:
      quiet.quiet_libraries(user_native_level)
    elif user_native_level is None:
      os.environ["TF_CPP_MIN_LOG_LEVEL"] = quiet.native_log_level(
          flags.FLAGS.verbosity)
    for signum in (signal.SIGINT, signal.SIGTERM):
      signal.signal(signum, _stop)
    try:
      devices.configure(_PLATFORM.value,
                        coordinator_address=_COORDINATOR.value,
                        num_processes=_NUM_PROCESSES.value,
                        process_id=_PROCESS_ID.value,
                        deterministic=_DETERMINISTIC.value)
      main(argv)
    except AvdigitsError as error:
      logging.flush()
      print(f"error: {error}", file=sys.stderr)
      sys.exit(1)
    except (Interrupted, KeyboardInterrupt) as stop:
      _stopped(stop)
    except OSError as error:
      # A write or read the machine refused where no code said more.
      failure = storage_error(error, str(error.filename or "a file"))
      logging.flush()
      print(f"error: {failure}", file=sys.stderr)
      sys.exit(1)
    except jax.errors.JaxRuntimeError as error:
      if jax.process_count() == 1:
        raise
      # A collective failed because a peer is gone; exiting normally would
      # wait on the coordinator for the lost process.
      first = str(error).splitlines()[0] if str(error) else ""
      print(f"error: process {jax.process_index()} of {jax.process_count()}"
            f": the job lost another process ({first[:200]}); run every "
            f"process again with the same flags to resume from the last "
            f"checkpoints", file=sys.stderr, flush=True)
      os._exit(1)

  app.run(wrapped, flags_parser=_parse_flags)


def _no_such_setting(error: Exception, argv: list[str]) -> None:
  """One line for a --config.<field> override the config does not have."""
  field = str(error).strip("\"'")
  bad = [a for a in argv[1:] if a.startswith("--config.")
         and a.split("=", 1)[0].rsplit(".", 1)[-1] == field]
  flag = bad[0].split("=", 1)[0] if bad else f"--config.*{field}"
  print(f"error: {flag}: the config has no setting {field!r}",
        file=sys.stderr)
  sys.exit(1)


def define_config_file(default: str) -> flags.FlagHolder:
  """--config (a config file with --config.* overrides). ml_collections
  applies the overrides of a default config as the flag is defined: one it
  does not have is one line, exit 1, not a traceback."""
  try:
    return config_flags.DEFINE_config_file("config", default,
                                           "Experiment config file.")
  except (AttributeError, KeyError) as error:
    _no_such_setting(error, sys.argv)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing; a --config.<field> override the config does not
  have (ml_collections raises AttributeError or KeyError while parsing)
  becomes one line naming the flag, exit 1."""
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as error:
    _no_such_setting(error, argv)


def define_run_flags(workdir_help: str) -> tuple[flags.FlagHolder,
                                                 flags.FlagHolder]:
  """--workdir (required) and --data_dir, as every training entry point
  defines them."""
  workdir = flags.DEFINE_string("workdir", None, workdir_help, required=True)
  data_dir = flags.DEFINE_string(
      "data_dir", None, "Data directory (mnist/, fsdd/, tidigits/, "
      "audiomnist/); default $AVDIGITS_DATA_DIR, else TFDS.")
  return workdir, data_dir


def freeze(cfg: ml_collections.ConfigDict) -> ml_collections.FrozenConfigDict:
  """The config as the run uses it, after every override: immutable, so no
  part of a run can change what the others (and report.json) see."""
  return ml_collections.FrozenConfigDict(cfg)


def update_readme(path: pathlib.Path, section: str,
                  figures: list[pathlib.Path], suite: str = "study") -> None:
  """Replaces the text between `<!-- suite:begin/end -->` in `path`
  (atomically, through a uniquely named temporary file in its directory)
  with `section` and links to `figures`."""
  begin, end = f"<!-- {suite}:begin -->", f"<!-- {suite}:end -->"
  text = path.read_text()
  if begin not in text or end not in text:
    page = DOCS_PAGES.get(suite)
    raise ConfigError(f"--readme={path}: no {begin} ... {end} markers"
                      + (f" (they are in {page})" if page else ""))
  links = "".join(
      f"\n![{f.stem}]({os.path.relpath(f, path.parent)})\n" for f in figures)
  head, rest = text.split(begin, 1)
  _, tail = rest.split(end, 1)
  new = f"{head}{begin}\n{section}{links}{end}{tail}"
  write_atomic(path, lambda f: f.write(new), "the --readme page")
