"""Atomic checkpoints with resume and fallback, on top of Orbax.

Orbax writes each checkpoint into a temporary directory and renames it into
place when complete, so a killed run never leaves a half-written checkpoint
that looks finished. If the newest checkpoint is nevertheless unreadable
(disk corruption, a file removed by hand), `restore_latest` falls back to the
previous one with a warning. A save that the machine refuses (no space, no
permission) is one line naming the checkpoint and the one kept; SIGINT and
SIGTERM wait until the checkpoint being written (or read) is complete.
"""

from __future__ import annotations

import contextlib
import logging as std_logging
import os
import pathlib
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from avdigits.errors import ConfigError, StorageError, storage_error
from avdigits.training import devices

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _FailedWriteNoise(std_logging.Filter):
  """Drops what Orbax's threads (and asyncio, of their tasks) log about a
  failed write: `Checkpointer.save` raises it as one line instead."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return not (f"{os.sep}orbax{os.sep}" in record.pathname
                or (record.name == "asyncio"
                    and "orbax" in record.getMessage()))


def _is_noise(unraisable: Any) -> bool:
  """Whether an error a native callback could not raise is a failed write's
  echo: TensorStore ending a write whose asyncio loop Orbax has closed."""
  return (isinstance(unraisable.exc_value, RuntimeError)
          and "Event loop is closed" in str(unraisable.exc_value))


@contextlib.contextmanager
def _quiet_if_failing() -> Iterator[None]:
  """Keeps _FailedWriteNoise on the root logger's handlers, and the echoes
  of a failed write out of sys.unraisablehook (which TensorStore's callbacks
  report through), while inside and, if it fails, for good: the writes
  still in flight report when they end."""
  noise = _FailedWriteNoise()
  handlers = list(std_logging.getLogger().handlers)
  for handler in handlers:
    handler.addFilter(noise)
  hook = sys.unraisablehook
  sys.unraisablehook = lambda error: None if _is_noise(error) else hook(error)
  yield
  sys.unraisablehook = hook
  for handler in handlers:
    handler.removeFilter(noise)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
  """SIGINT and SIGTERM received inside are delivered on leaving it, so
  that what is written inside is finished first."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  pending = []
  previous = {s: signal.getsignal(s) for s in _STOP_SIGNALS}
  for s in _STOP_SIGNALS:
    signal.signal(s, lambda signum, frame: pending.append(signum))
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    if pending:
      signal.raise_signal(pending[0])


class Checkpointer:
  """Keeps the newest `max_to_keep` checkpoints of one training stage."""

  def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 2,
               label: str = "", kept: str = ""):
    """`label` names the checkpoints' owner in errors ("stage image");
    `kept` says what survives a failed save when no earlier checkpoint
    does."""
    self.directory = pathlib.Path(directory).absolute()
    self.label = label
    self._kept_otherwise = kept
    # The step of the newest checkpoint this object finished writing (a
    # signal deferred by `save` is raised after it is set).
    self.last_saved: int | None = None
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=False,
            create=True, cleanup_tmp_directories=True))

  def save(self, step: int, state: Any) -> None:
    """Writes `state` (any pytree of arrays) for `step`, atomically.

    SIGINT and SIGTERM wait for it. A write the machine refuses leaves the
    earlier checkpoints, removes the partial one and raises a one-line
    StorageError naming both.
    """
    try:
      with signals_deferred(), _quiet_if_failing():
        self._manager.save(step, args=ocp.args.StandardSave(state),
                           force=True)
        self._manager.wait_until_finished()
        self.last_saved = step
    except Exception as error:
      failure = storage_error(error, self._describe(step), self._kept(step))
      if failure is None:
        raise
      raise failure from None

  def _describe(self, step: int) -> str:
    owner = f" of {self.label}" if self.label else ""
    return f"the checkpoint{owner} at step {step} in {self.directory}"

  def _kept(self, failed: int) -> str:
    """What survives a failed save of step `failed`, its partial files
    removed (Orbax writes a step into a temporary directory first)."""
    for partial in self.directory.glob(f"{failed}.orbax-checkpoint-tmp*"):
      shutil.rmtree(partial, ignore_errors=True)
    steps = sorted(int(p.name) for p in self.directory.iterdir()
                   if p.name.isdigit() and p.is_dir() and int(p.name)
                   != failed) if self.directory.is_dir() else []
    return (f"the last complete checkpoint (step {steps[-1]}) is kept"
            if steps else self._kept_otherwise
            or "no complete checkpoint had been written")

  def restore_latest(self, template: Any) -> tuple[int, Any] | None:
    """Returns (step, state) of the newest readable checkpoint, else None.

    An unreadable checkpoint is removed (by process 0), with a warning, so
    that the step can be written again.

    Args:
      template: a pytree with the structure, shapes and dtypes to restore.
    """
    self._manager.reload()
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        with signals_deferred():
          state = self._manager.restore(
              step, args=ocp.args.StandardRestore(template))
      except Exception as error:  # noqa: BLE001 - any unreadable checkpoint
        logging.warning("checkpoint %s/%d is unreadable (%s); removed, "
                        "falling back to the previous one", self.directory,
                        step, str(error).splitlines()[0][:200]
                        if str(error) else type(error).__name__)
        if devices.is_writer():
          shutil.rmtree(self.directory / str(step), ignore_errors=True)
        continue
      self._manager.reload()
      return step, state
    self._manager.reload()
    return None

  def restore(self, step: int, template: Any) -> tuple[int, Any]:
    """(step, state) of the checkpoint of `step`; an unreadable one is a
    one-line StorageError."""
    self._manager.reload()
    try:
      with signals_deferred():
        return step, self._manager.restore(
            step, args=ocp.args.StandardRestore(template))
    except Exception as error:  # noqa: BLE001 - any unreadable checkpoint
      first = str(error).splitlines()[0][:200] if str(error) else ""
      raise StorageError(
          f"{self.directory}/{step}: checkpoint is unreadable ({first}); "
          f"delete {self.directory.parent} to rerun its stage") from None

  def discard_after(self, step: int) -> None:
    """Removes (on process 0) every checkpoint newer than `step`, so that a
    run resumed from `step` can write those steps again."""
    self._manager.reload()
    newer = [s for s in self._manager.all_steps() if s > step]
    if newer and devices.is_writer():
      for s in newer:
        shutil.rmtree(self.directory / str(s), ignore_errors=True)
    self._manager.reload()

  def close(self) -> None:
    self._manager.close()


def save_params(directory: str | pathlib.Path, params: Any) -> None:
  """Keeps a finished stage's parameters in `directory/params` (in place of
  any there: they count only once the stage's result is written)."""
  path = pathlib.Path(directory) / "params"
  shutil.rmtree(path, ignore_errors=True)
  checkpointer = Checkpointer(
      path, max_to_keep=1, label=f"the parameters of {path.parent.name}",
      kept="the stage's last training checkpoint is kept")
  checkpointer.save(0, {"params": params})
  checkpointer.close()


def restore_params(directory: str | pathlib.Path, template: Any) -> Any:
  """The parameters `save_params` kept in `directory`, shaped like
  `template`, as numpy arrays."""
  restored = Checkpointer(pathlib.Path(directory) / "params").restore_latest(
      {"params": template})
  if restored is None:
    raise ConfigError(f"{directory}: parameters are unreadable; delete "
                      f"{pathlib.Path(directory) / 'result.json'} to finish "
                      f"the stage again from its last checkpoint")
  return jax.tree.map(np.asarray, restored[1]["params"])
