"""Bad flags, configs and data give one clear line and a non-zero exit."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from avdigits import models
from avdigits.errors import TrainingError
from avdigits.train import ClassifierSchedule, train_classifier
from avdigits.workdir import Stage

REPO = pathlib.Path(__file__).resolve().parents[1]
SYNTHETIC = ["--config=experiments/configs/quick.py",
             "--config.data.images=synthetic",
             "--config.data.speech=synthetic",
             "--config.data.speech_split=stratified",
             "--config.data.synthetic_images_per_class=10",
             "--config.data.synthetic_speech_per_class=4", "--progress=false"]


def _reproduce(tmp_path, *flags):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("AVDIGITS_DATA_DIR", None)
  return subprocess.run(
      [sys.executable, "-m", "experiments.reproduce",
       f"--workdir={tmp_path / 'w'}", *flags], cwd=REPO, env=env,
      capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("flags, message", [
    (["--data_dir={tmp}/missing"], "--data_dir={tmp}/missing: no such "
     "directory"),
    (["--data_dir={tmp}"], "{tmp}/mnist: no such MNIST directory"),
    (SYNTHETIC + ["--config.image.batch_size=0"],
     "--config.image.batch_size must be > 0"),
    (SYNTHETIC + ["--config.speech.learning_rate=-1"],
     "--config.speech: learning_rate must be > 0"),
    (SYNTHETIC + ["--config.data.speech=tidigitz"],
     "--config.data.speech='tidigitz': choose one of"),
    (SYNTHETIC + ["--config.data.speech_split=upstream"], "upstream"),
    (SYNTHETIC + ["--config.align.speech_hidden=7"],
     "--config.align.speech_hidden=7 is not among"),
])
def test_bad_input_is_one_line_naming_the_flag(tmp_path, flags, message):
  flags = [f.format(tmp=tmp_path) for f in flags]
  proc = _reproduce(tmp_path, *flags)
  assert proc.returncode == 1, proc.stderr[-2000:]
  error_lines = [line for line in proc.stderr.splitlines()
                 if line.startswith("error: ")]
  assert len(error_lines) == 1, proc.stderr[-2000:]
  assert message.format(tmp=tmp_path) in error_lines[0]
  assert "Traceback" not in proc.stderr


def test_unknown_config_field_is_rejected(tmp_path):
  proc = _reproduce(tmp_path, *SYNTHETIC, "--config.image.no_such_field=1")
  assert proc.returncode != 0
  assert "no_such_field" in proc.stderr


def test_non_finite_loss_names_stage_and_step_and_keeps_checkpoint(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 28, 28)).astype(np.float32) * 1e3
  y = rng.integers(0, 10, 64).astype(np.int32)
  stage = Stage(tmp_path, "image", {})
  schedule = ClassifierSchedule(batch_size=16, steps=40, steps_per_chunk=4,
                                optimizer="sgd", learning_rate=1e9)
  with pytest.raises(TrainingError, match=r"stage image: non-finite loss at "
                     r"step \d+; (the last good checkpoint \(step \d+\) is "
                     r"kept|no checkpoint had been written)"):
    train_classifier(models.ImageNet(), x, y, x, y, schedule, seed=0,
                     stage=stage, flag="image", show_progress=False)
