"""Stage bookkeeping in a workdir: atomic results, config fingerprints.

Each stage of a run owns `<workdir>/<stage>/`: `config.json` (the settings
that determine its output), `ckpt/` (Orbax checkpoints while it runs),
`metrics.jsonl` (one JSON line per logged step) and, once finished,
`result.json`. A stage whose `result.json` exists is skipped; one whose
settings changed is refused rather than silently reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
from absl import logging

from avdigits.errors import (
  ConfigError,
  StorageError,
  TrainingError,
)

# Re-exported: callers import the atomic writes from here too.
from avdigits.files import read_json as read_json
from avdigits.files import write_atomic as write_atomic
from avdigits.files import write_json_atomic as write_json_atomic
from avdigits.training import devices
from avdigits.training.checkpoint import Checkpointer
from avdigits.training.metrics import JsonlWriter

# Metric keys that measure speed, not training: written, never compared.
TIMING_KEYS = ("steps_per_second",)


LOCK_NAME = ".lock"


@contextlib.contextmanager
def exclusive(workdir: str | pathlib.Path, flag: str = "--workdir"
              ) -> Iterator[None]:
  """Holds `<workdir>/.lock` for one writing process at a time.

  A second process gets a one-line ConfigError naming the holder's pid and
  command. The lock is an flock(2) on an open file, so the kernel drops it
  when its holder exits or is killed: a killed run never leaves it stuck.
  The processes of one multi-process job share it: process 0 holds it for
  them all.
  """
  if not devices.is_writer():
    yield
    return
  workdir = pathlib.Path(workdir)
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    fd = os.open(workdir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as error:
    raise ConfigError(f"{flag}={workdir}: cannot create or write it "
                      f"({(error.strerror or str(error)).lower()}); choose "
                      f"a writable {flag}") from None
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
      raise ConfigError(
          f"{flag}={workdir} is in use by another run ({holder or 'pid ?'}); "
          f"wait for it to finish or use another {flag}") from None
    try:
      os.ftruncate(fd, 0)
      os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv)}".encode(), 0)
    except OSError as error:
      raise ConfigError(f"{flag}={workdir}: cannot write it "
                        f"({(error.strerror or str(error)).lower()}); free "
                        f"space or choose another {flag}") from None
    yield
  finally:
    os.close(fd)  # releases the flock


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
  changes = []
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
    if isinstance(a, dict) and isinstance(b, dict):
      changes += _diff(a, b, f"{prefix}{key}.")
    elif a != b:
      changes.append(f"{prefix}{key}: {a!r} -> {b!r}")
  return changes


class Stage:
  """One resumable stage of a run, stored under `<workdir>/<name>/`."""

  def __init__(self, workdir: str | pathlib.Path, name: str,
               settings: dict[str, Any]):
    self.name = name
    self.directory = pathlib.Path(workdir) / name
    self.settings = json.loads(json.dumps(settings))  # normalise to JSON
    self._result: dict[str, Any] | None = None
    self._check_settings()

  def _check_settings(self) -> None:
    path = self.directory / "config.json"
    if not path.exists() and not devices.is_writer():
      return
    if path.exists():
      old = read_json(path, f"delete {self.directory} to rerun this stage")
      changes = _diff(old, self.settings)
      if changes:
        raise ConfigError(
            f"{self.directory}: written by a different config "
            f"({'; '.join(changes[:4])}); use another --workdir or delete "
            f"{self.directory} to rerun this stage")
    else:
      write_json_atomic(path, self.settings, f"the config of stage "
                        f"{self.name}")

  @property
  def checkpoint_dir(self) -> pathlib.Path:
    return self.directory / "ckpt"

  @property
  def metrics_path(self) -> pathlib.Path:
    return self.directory / "metrics.jsonl"

  def check_finite(self, values: np.ndarray, step: int, what: str,
                   flag: str) -> None:
    """Raises TrainingError if a logged loss of the chunk after `step` is
    not finite, naming the stage, the step and the surviving checkpoint."""
    finite = np.isfinite(values)
    if finite.all():
      return
    bad = step + int(np.argmin(finite)) + 1
    kept = ("no checkpoint had been written yet" if step == 0 else
            f"the last good checkpoint (step {step}) is kept in "
            f"{self.checkpoint_dir}")
    raise TrainingError(f"stage {self.name}: non-finite {what} at step "
                        f"{bad}; {kept}; lower --config.{flag}.learning_rate")

  def done(self) -> bool:
    """Whether the stage finished: its result.json is there and readable.
    A damaged one is derived (from the last checkpoint, which a finished
    stage keeps): it is removed with a warning, and the stage finishes
    again from that checkpoint."""
    path = self.directory / "result.json"
    if not path.exists():
      return False
    try:
      self._result = read_json(path)
    except StorageError as error:
      logging.warning("%s; finishing stage %s again from its last "
                      "checkpoint", str(error).split(";")[0], self.name)
      if devices.is_writer():
        path.unlink(missing_ok=True)
      return False
    return True

  def result(self) -> dict[str, Any]:
    if self._result is None:
      self._result = read_json(self.directory / "result.json")
    return self._result

  def finish(self, result: dict[str, Any]) -> None:
    """Writes result.json (process 0 of a multi-process job)."""
    if devices.is_writer():
      write_json_atomic(self.directory / "result.json", result,
                        f"the result of stage {self.name}")

  def resume(self, initial_state: Any, step: int | None = None
             ) -> tuple[Checkpointer, Any, list]:
    """(checkpointer, state, metric rows so far): from the newest readable
    checkpoint (or the one of `step`; 0 is the start) if there is one, else
    `initial_state` and no rows. The stage's metrics.jsonl is cut back to
    the restored step, and with `step` its newer checkpoints are removed
    (they are written again); the rows returned leave out `TIMING_KEYS`, so
    a resumed history equals an uninterrupted one."""
    checkpointer = Checkpointer(self.checkpoint_dir,
                                label=f"stage {self.name}")
    if step is not None:
      checkpointer.discard_after(step)
    restored = (checkpointer.restore_latest(initial_state) if step is None
                else None if step == 0
                else checkpointer.restore(step, initial_state))
    jsonl = JsonlWriter(self.metrics_path)
    if restored is None:
      if devices.is_writer():
        jsonl.rewrite([])
      return checkpointer, initial_state, []
    state = restored[1]
    rows = jsonl.read(up_to_step=int(state["step"]))
    if devices.is_writer():
      jsonl.rewrite(rows)
    history = [{k: v for k, v in row.items() if k not in TIMING_KEYS}
               for row in rows]
    return checkpointer, state, history


def split_dir(workdir: pathlib.Path, spec: str, specs: list[str]
              ) -> pathlib.Path:
  """Where one speech split's speech and alignment stages live: the workdir
  itself for a single split, `<workdir>/loso_<speaker>` under "loso"."""
  return workdir if len(specs) == 1 else workdir / spec.replace(":", "_")
