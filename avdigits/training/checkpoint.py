"""Atomic checkpoints with resume and fallback, on top of Orbax.

Orbax writes each checkpoint into a temporary directory and renames it into
place when complete, so a killed run never leaves a half-written checkpoint
that looks finished. If the newest checkpoint is nevertheless unreadable
(disk corruption, a file removed by hand), `restore_latest` falls back to the
previous one with a warning.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from avdigits.errors import ConfigError


class Checkpointer:
  """Keeps the newest `max_to_keep` checkpoints of one training stage."""

  def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 2):
    self.directory = pathlib.Path(directory).absolute()
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=False,
            create=True))

  def save(self, step: int, state: Any) -> None:
    """Writes `state` (any pytree of arrays) for `step`, atomically."""
    self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
    self._manager.wait_until_finished()

  def restore_latest(self, template: Any) -> tuple[int, Any] | None:
    """Returns (step, state) of the newest readable checkpoint, else None.

    Args:
      template: a pytree with the structure, shapes and dtypes to restore.
    """
    self._manager.reload()
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        state = self._manager.restore(
            step, args=ocp.args.StandardRestore(template))
      except Exception as error:  # noqa: BLE001 - any unreadable checkpoint
        logging.warning("checkpoint %s/%d is unreadable (%s); falling back "
                        "to the previous one", self.directory, step,
                        str(error).splitlines()[0] if str(error) else error)
        continue
      return step, state
    return None

  def restore(self, step: int, template: Any) -> tuple[int, Any]:
    """(step, state) of the checkpoint of `step`."""
    self._manager.reload()
    return step, self._manager.restore(
        step, args=ocp.args.StandardRestore(template))

  def close(self) -> None:
    self._manager.close()


def save_params(directory: str | pathlib.Path, params: Any) -> None:
  """Keeps a finished stage's parameters in `directory/params`."""
  checkpointer = Checkpointer(pathlib.Path(directory) / "params",
                              max_to_keep=1)
  checkpointer.save(0, {"params": params})
  checkpointer.close()


def restore_params(directory: str | pathlib.Path, template: Any) -> Any:
  """The parameters `save_params` kept in `directory`, shaped like
  `template`, as numpy arrays."""
  restored = Checkpointer(pathlib.Path(directory) / "params").restore_latest(
      {"params": template})
  if restored is None:
    raise ConfigError(f"{directory}: parameters are unreadable")
  return jax.tree.map(np.asarray, restored[1]["params"])
