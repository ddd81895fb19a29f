"""Metric writers in the style of CLU's `metric_writers`.

A training stage writes each chunk's scalars through one `MetricWriter`:
`JsonlWriter` (the stage's `metrics.jsonl`, trimmed back to the restored
step when a run resumes), `LoggingWriter` (absl logging, shown with
`--verbosity=0`) and, when the optional `tensorboardX` package is installed,
`TensorBoardWriter` (event files for TensorBoard). `create_default_writer`
combines them.
"""

from __future__ import annotations

import abc
import importlib.util
import json
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from absl import logging

from avdigits.errors import storage_error
from avdigits.training import devices

Scalars = Mapping[str, float]


class MetricWriter(abc.ABC):
  """Where a stage's scalars and hyperparameters go."""

  @abc.abstractmethod
  def write_scalars(self, step: int, scalars: Scalars) -> None:
    """Records `scalars` at training step `step`."""

  @abc.abstractmethod
  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    """Records the settings the stage runs with."""

  @abc.abstractmethod
  def flush(self) -> None:
    """Makes everything written so far durable."""

  def close(self) -> None:
    self.flush()


class JsonlWriter(MetricWriter):
  """One JSON line {"step": s, **scalars} per call, appended to `path`.

  Hyperparameters are not written here: the stage's `config.json` holds
  them.
  """

  def __init__(self, path: str | pathlib.Path):
    self.path = pathlib.Path(path)

  def write_scalars(self, step: int, scalars: Scalars) -> None:
    """Appends the row; a write the machine refuses is a StorageError (a
    row it cut short is dropped when the stage resumes)."""
    try:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      with open(self.path, "a") as f:
        f.write(json.dumps({"step": step, **scalars}, sort_keys=True) + "\n")
    except OSError as error:
      raise storage_error(error, f"the metrics of step {step} to "
                          f"{self.path}") from None

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    del hparams

  def flush(self) -> None:
    """Nothing is buffered: each row is appended and the file closed."""

  def read(self, up_to_step: int | None = None) -> list[dict[str, Any]]:
    """The rows written, those after `up_to_step` left out; a last line cut
    by a kill is dropped, any other damaged line too, with a warning."""
    if not self.path.exists():
      return []
    rows = []
    lines = self.path.read_bytes().decode(errors="replace").splitlines()
    for number, line in enumerate(lines, 1):
      try:
        row = json.loads(line)
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
          raise ValueError("not a metrics row")
      except ValueError:
        if number < len(lines):
          logging.warning("%s: line %d is damaged; dropped", self.path,
                          number)
        continue
      if up_to_step is None or row["step"] <= up_to_step:
        rows.append(row)
    return rows

  def rewrite(self, rows: Sequence[Mapping[str, Any]]) -> None:
    """Replaces the file's rows with `rows`, atomically (used on resume)."""
    tmp = self.path.with_name(f".{self.path.name}.tmp")
    try:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      tmp.write_text("".join(json.dumps(dict(r), sort_keys=True) + "\n"
                             for r in rows))
      os.replace(tmp, self.path)
    except OSError as error:
      tmp.unlink(missing_ok=True)
      raise storage_error(error, f"the metrics {self.path}") from None


class LoggingWriter(MetricWriter):
  """Scalars and hyperparameters as absl INFO lines, tagged `collection`."""

  def __init__(self, collection: str):
    self.collection = collection

  def write_scalars(self, step: int, scalars: Scalars) -> None:
    values = ", ".join(f"{k}={v:.6g}" for k, v in sorted(scalars.items()))
    logging.info("[%s] step %d: %s", self.collection, step, values)

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    logging.info("[%s] hparams: %s", self.collection,
                 json.dumps(hparams, sort_keys=True, default=str))

  def flush(self) -> None:
    logging.flush()


def tensorboard_available() -> bool:
  return importlib.util.find_spec("tensorboardX") is not None


class TensorBoardWriter(MetricWriter):
  """TensorBoard event files in `logdir` (needs `tensorboardX`)."""

  def __init__(self, logdir: str | pathlib.Path):
    from tensorboardX import SummaryWriter  # optional dependency
    self._writer = SummaryWriter(logdir=str(logdir))

  def write_scalars(self, step: int, scalars: Scalars) -> None:
    for name, value in scalars.items():
      self._writer.add_scalar(name, value, global_step=step)

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    self._writer.add_text("hparams", "```\n" + json.dumps(
        hparams, indent=1, sort_keys=True, default=str) + "\n```")

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class MultiWriter(MetricWriter):
  """Writes to every writer it holds."""

  def __init__(self, writers: Sequence[MetricWriter]):
    self.writers = list(writers)

  def write_scalars(self, step: int, scalars: Scalars) -> None:
    for writer in self.writers:
      writer.write_scalars(step, scalars)

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    for writer in self.writers:
      writer.write_hparams(hparams)

  def flush(self) -> None:
    for writer in self.writers:
      writer.flush()

  def close(self) -> None:
    for writer in self.writers:
      writer.close()


def create_default_writer(directory: str | pathlib.Path, collection: str, *,
                          tensorboard: bool | None = None) -> MultiWriter:
  """JSONL (`directory/metrics.jsonl`), logging and, with `tensorboard`
  True (or None and tensorboardX installed), `directory/tensorboard/`.
  Files are written by process 0 of a multi-process job only."""
  directory = pathlib.Path(directory)
  writers: list[MetricWriter] = [LoggingWriter(collection)]
  if not devices.is_writer():
    return MultiWriter(writers)
  writers.append(JsonlWriter(directory / "metrics.jsonl"))
  if tensorboard is None:
    tensorboard = tensorboard_available()
  if tensorboard:
    writers.append(TensorBoardWriter(directory / "tensorboard"))
  return MultiWriter(writers)
