"""What every experiment entry point shares: config path, clean errors."""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Callable

import ml_collections
from absl import app, flags, logging

from avdigits import devices
from avdigits.errors import AvdigitsError, ConfigError

CONFIG_DIR = pathlib.Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = str(CONFIG_DIR / "default.py")

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


def run(main: Callable[[list[str]], None]) -> None:
  """absl's app.run, with the package's own errors as one line, exit 1.

  Logging defaults to WARNING (pass --verbosity=0 for INFO).
  """

  def wrapped(argv: list[str]) -> None:
    if not flags.FLAGS["verbosity"].present:  # library INFO chatter off
      logging.set_verbosity(logging.WARNING)
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

  app.run(wrapped)


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
