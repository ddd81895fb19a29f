"""Stage bookkeeping, atomic JSON and checkpoint fallback."""

import json
import os
import pathlib

import numpy as np
import pytest

from avdigits.errors import ConfigError
from avdigits.training.checkpoint import Checkpointer
from avdigits.training.metrics import JsonlWriter
from avdigits.training.workdir import Stage, write_json_atomic


def test_write_json_atomic_leaves_no_temporaries(tmp_path):
  write_json_atomic(tmp_path / "a" / "r.json", {"x": 1})
  write_json_atomic(tmp_path / "a" / "r.json", {"x": 2})
  assert json.loads((tmp_path / "a" / "r.json").read_text()) == {"x": 2}
  assert [p.name for p in (tmp_path / "a").iterdir()] == ["r.json"]


def test_stage_refuses_changed_config(tmp_path):
  Stage(tmp_path, "image", {"lr": 1e-3, "seed": 0})
  Stage(tmp_path, "image", {"lr": 1e-3, "seed": 0})  # same: fine
  with pytest.raises(ConfigError, match=r"lr: 0.001 -> 0.01"):
    Stage(tmp_path, "image", {"lr": 1e-2, "seed": 0})


def test_stage_resume_keeps_metric_rows_up_to_the_checkpoint(tmp_path):
  stage = Stage(tmp_path, "s", {})
  ckpt = Checkpointer(stage.checkpoint_dir)
  ckpt.save(20, {"w": np.ones(2, np.float32), "step": np.array(20, np.int32)})
  ckpt.close()
  writer = JsonlWriter(stage.metrics_path)
  for step in (10, 20, 30):
    writer.write_scalars(step, {"loss": step / 10, "steps_per_second": 5.0})
  with open(stage.metrics_path, "a") as f:
    f.write('{"step": 4')  # a line cut by a kill
  template = {"w": np.zeros(2, np.float32), "step": np.array(0, np.int32)}
  checkpointer, state, history = stage.resume(template)
  checkpointer.close()
  assert int(state["step"]) == 20 and state["w"].tolist() == [1.0, 1.0]
  # The rows after the restored step are dropped, in the file too; speed
  # figures stay in the file but not in the history a run compares.
  assert history == [{"step": 10, "loss": 1.0}, {"step": 20, "loss": 2.0}]
  assert [r["step"] for r in writer.read()] == [10, 20]
  assert writer.read()[0]["steps_per_second"] == 5.0


def test_stage_resume_without_checkpoint_starts_clean(tmp_path):
  stage = Stage(tmp_path, "s", {})
  JsonlWriter(stage.metrics_path).write_scalars(10, {"loss": 1.0})
  checkpointer, state, history = stage.resume({"step": np.array(0, np.int32)})
  checkpointer.close()
  assert history == [] and int(state["step"]) == 0
  assert JsonlWriter(stage.metrics_path).read() == []


def test_checkpointer_falls_back_to_previous_when_newest_is_corrupt(tmp_path):
  ckpt = Checkpointer(tmp_path / "ckpt", max_to_keep=3)
  for step in (1, 2):
    ckpt.save(step, {"w": np.full((3,), step, np.float32)})
  # Corrupt every file of the newest checkpoint.
  for path in (tmp_path / "ckpt" / "2").rglob("*"):
    if path.is_file():
      path.write_bytes(b"garbage")
  step, state = Checkpointer(tmp_path / "ckpt").restore_latest(
      {"w": np.zeros((3,), np.float32)})
  assert step == 1
  np.testing.assert_array_equal(state["w"], [1, 1, 1])


def test_checkpointer_empty_returns_none(tmp_path):
  assert Checkpointer(tmp_path / "c").restore_latest({"w": np.zeros(2)}) is None


_HOLD = """
import sys, time
from avdigits.training import workdir
with workdir.exclusive(sys.argv[1]):
  print("held", flush=True)
  time.sleep(600)
"""


def test_one_writer_per_workdir_and_a_killed_holder_frees_it(tmp_path):
  import signal
  import subprocess
  import sys

  from avdigits.training import workdir as workdir_lib
  repo = pathlib.Path(__file__).resolve().parents[1]
  holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)],
                            cwd=repo, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(ConfigError, match=rf"in use by another run \(pid "
                       rf"{holder.pid}:"):
      with workdir_lib.exclusive(tmp_path):
        pass
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.reproduce",
         f"--workdir={tmp_path}", "--config=experiments/configs/quick.py"],
        cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert f"pid {holder.pid}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  with workdir_lib.exclusive(tmp_path):  # the kernel dropped the dead lock
    assert (tmp_path / workdir_lib.LOCK_NAME).read_text().startswith(
        f"pid {os.getpid()}:")
