"""Metric writers: JSONL rows, logging lines, TensorBoard event files."""

import numpy as np
import pytest
from absl import logging

from avdigits.errors import TrainingError
from avdigits.training import loop, metrics
from avdigits.training.workdir import Stage


def test_jsonl_writer_appends_rows_and_rewrites(tmp_path):
  writer = metrics.JsonlWriter(tmp_path / "m.jsonl")
  writer.write_scalars(1, {"loss": 0.5})
  writer.write_scalars(2, {"loss": 0.25})
  assert writer.read() == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
  assert writer.read(up_to_step=1) == [{"step": 1, "loss": 0.5}]
  writer.rewrite([{"step": 1, "loss": 0.5}])
  assert writer.read() == [{"step": 1, "loss": 0.5}]


def test_logging_writer_logs_scalars_and_hparams(monkeypatch):
  lines = []
  monkeypatch.setattr(logging, "info", lambda fmt, *a: lines.append(fmt % a))
  writer = metrics.LoggingWriter("image")
  writer.write_scalars(7, {"loss": 0.125})
  writer.write_hparams({"lr": 0.01})
  assert lines == ["[image] step 7: loss=0.125",
                   '[image] hparams: {"lr": 0.01}']


def test_tensorboard_writer_events_read_back(tmp_path):
  pytest.importorskip("tensorboardX")
  tf = pytest.importorskip("tensorflow")
  writer = metrics.create_default_writer(tmp_path, "s", tensorboard=True)
  writer.write_hparams({"lr": 0.01})
  writer.write_scalars(3, {"loss": 0.5})
  writer.write_scalars(6, {"loss": 0.25})
  writer.close()
  events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
  assert len(events) == 1
  scalars = [(e.step, v.tag, v.simple_value)
             for e in tf.compat.v1.train.summary_iterator(str(events[0]))
             for v in e.summary.value if v.HasField("simple_value")]
  assert scalars == [(3, "loss", 0.5), (6, "loss", 0.25)]
  assert [r["step"] for r in metrics.JsonlWriter(
      tmp_path / "metrics.jsonl").read()] == [3, 6]


def _count_chunk(state, step, num_steps):
  del step
  values = np.arange(num_steps, dtype=np.float32) + float(state["step"])
  return {"step": state["step"] + num_steps}, values


def test_loop_rows_checkpoints_and_speed(tmp_path):
  stage = Stage(tmp_path, "s", {"lr": 1.0})
  out = loop.train_in_chunks(
      stage, {"step": np.array(0, np.int32)}, steps=10, steps_per_chunk=4,
      run_chunk=_count_chunk,
      summarise=lambda state, v: {"mean": float(v.mean())},
      tensorboard=False)
  # Chunks of 4, 4, 2 steps; each row's mean is over its chunk's values.
  assert out.history == [{"step": 4, "mean": 1.5}, {"step": 8, "mean": 5.5},
                         {"step": 10, "mean": 8.5}]
  rows = metrics.JsonlWriter(stage.metrics_path).read()
  assert [r["step"] for r in rows] == [4, 8, 10]
  assert all(r["steps_per_second"] > 0 for r in rows)
  # Run again: it resumes at step 10 and does no work.
  again = loop.train_in_chunks(
      stage, {"step": np.array(0, np.int32)}, steps=10, steps_per_chunk=4,
      run_chunk=lambda *a: pytest.fail("resumed run trained again"),
      summarise=lambda state, v: {}, tensorboard=False)
  assert again.history == out.history


def test_loop_stops_on_non_finite_naming_the_kept_checkpoint(tmp_path):
  stage = Stage(tmp_path, "s", {})

  def chunk(state, step, num_steps):
    values = np.full(num_steps, np.nan if step >= 4 else 1.0, np.float32)
    return {"step": state["step"] + num_steps}, values

  with pytest.raises(TrainingError, match=(
      r"stage s: non-finite loss at step 5; the last good checkpoint "
      r"\(step 4\) is kept in .*ckpt; lower --config.image.learning_rate")):
    loop.train_in_chunks(stage, {"step": np.array(0, np.int32)}, steps=8,
                         steps_per_chunk=4, run_chunk=chunk,
                         summarise=lambda s, v: {}, flag="image",
                         tensorboard=False)


def test_run_stage_trains_once_then_restores(tmp_path):
  stage = Stage(tmp_path, "s", {})
  params = {"w": np.arange(3, dtype=np.float32)}
  result, got = loop.run_stage(stage, lambda: ({"acc": 1.0}, params))
  assert result == {"acc": 1.0} and got is params
  result, got = loop.run_stage(
      stage, lambda: pytest.fail("a finished stage trained again"),
      lambda: {"w": np.zeros(3, np.float32)})
  assert result == {"acc": 1.0}
  np.testing.assert_array_equal(got["w"], params["w"])
