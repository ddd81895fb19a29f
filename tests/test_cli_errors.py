"""Bad flags, configs and data give one clear line and a non-zero exit.

The flags are parsed in-process exactly as `experiments.reproduce` parses
them (ml_collections' config flag with its --config.* overrides) and go
through what its main() runs before training (`validation.validate_reproduce`,
`sources.resolve_data_dir`, `two_stage.run_all`); one subprocess checks the
command-line rule itself: one `error: ` line, exit status 1, no traceback.
"""

import pathlib

import jax
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from avdigits.data import sources
from avdigits.digits import two_stage, validation
from avdigits.errors import AvdigitsError, TrainingError
from avdigits.models import convnets
from avdigits.training.checkpoint import Checkpointer
from avdigits.training.classifier import (
  ClassifierSchedule,
  _init_state,
  batch_indices,
  train_classifier,
)
from avdigits.training.optim import make_optimizer
from avdigits.training.workdir import Stage
from experiments import cli
from tests.conftest import finished_steps, run_reproduce

REPO = pathlib.Path(__file__).resolve().parents[1]
SYNTHETIC = ["--config=experiments/configs/quick.py",
             "--config.data.images=synthetic",
             "--config.data.speech=synthetic",
             "--config.data.speech_split=stratified",
             "--config.data.synthetic_images_per_class=10",
             "--config.data.synthetic_speech_per_class=4", "--progress=false"]


def _parse(*argv: str) -> flags.FlagValues:
  """reproduce's --config and --data_dir flags, parsed from `argv`."""
  argv = ["reproduce", *argv]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", cli.DEFAULT_CONFIG, "",
                                  flag_values=values, sys_argv=argv)
  flags.DEFINE_string("data_dir", None, "", flag_values=values)
  flags.DEFINE_bool("progress", True, "", flag_values=values)
  values(argv)
  return values


def _reproduce_in_process(workdir: pathlib.Path, *argv: str) -> None:
  """What reproduce's main() does with the flags, up to training."""
  parsed = _parse(*argv)
  cfg = parsed.config
  validation.validate_reproduce(cfg)
  data_dir = sources.resolve_data_dir(parsed.data_dir)
  two_stage.run_all(cfg, data_dir, workdir, [cfg.seed], show_progress=False)


@pytest.mark.parametrize("argv, message", [
    (["--data_dir={tmp}/missing"], "--data_dir={tmp}/missing: no such "
     "directory"),
    (["--data_dir={tmp}"], "{tmp}/mnist: no such MNIST directory"),
    (SYNTHETIC + ["--config.image.batch_size=0"],
     "--config.image.batch_size must be > 0, got 0"),
    (SYNTHETIC + ["--config.speech.features=0"],
     "--config.speech.features must be > 0, got 0"),
    (SYNTHETIC + ["--config.speech.learning_rate=-1"],
     "--config.speech: learning_rate must be > 0, got -1"),
    (SYNTHETIC + ["--config.data.speech=tidigitz"],
     "--config.data.speech='tidigitz': choose one of"),
    (SYNTHETIC + ["--config.data.speech_split=upstream"], "upstream"),
    (SYNTHETIC + ["--config.align.speech_hidden=7"],
     "--config.align.speech_hidden=7 is not among"),
])
def test_bad_input_is_one_line_naming_the_flag(tmp_path, monkeypatch, argv,
                                               message):
  monkeypatch.delenv(sources.ENV_VAR, raising=False)
  argv = [a.format(tmp=tmp_path) for a in argv]
  with pytest.raises(AvdigitsError) as error:
    _reproduce_in_process(tmp_path / "w", *argv)
  assert message.format(tmp=tmp_path) in str(error.value)
  assert "\n" not in str(error.value)   # cli.run prints it as one line
  assert not (tmp_path / "w" / "seed_0").exists()  # nothing trained


def test_unknown_config_field_is_rejected():
  # ml_collections refuses it while parsing (the command exits non-zero).
  with pytest.raises(AttributeError, match="no_such_field"):
    _parse(*SYNTHETIC, "--config.image.no_such_field=1")
  # The same flags without it parse.
  assert _parse(*SYNTHETIC).config.image.batch_size == 64


def test_command_line_error_is_one_line_and_exit_status_1(tmp_path):
  proc = run_reproduce(f"--workdir={tmp_path / 'w'}", *SYNTHETIC,
                       "--config.image.batch_size=0")
  assert proc.returncode == 1, proc.stderr[-2000:]
  error_lines = [line for line in proc.stderr.splitlines()
                 if line.startswith("error: ")]
  assert error_lines == ["error: --config.image.batch_size must be > 0, "
                         "got 0"], proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr


# --------------------------------------------------------- non-finite loss

# 64 examples in batches of 8: an epoch is 8 steps, so the first chunk of 4
# steps sees half of the examples and the second chunk the other half.
N, BATCH, CHUNK, SEED = 64, 8, 4, 0


def _poisoned(chunk: int):
  """Data with one example, first drawn by the given chunk (0 or 1), whose
  label is outside the 10 classes: its cross-entropy gathers an
  out-of-range logit, NaN. Returns (x, y, the 1-based step whose loss is
  non-finite). (A NaN pixel would not do: the convnet's max-pool and ReLU
  drop NaNs, and the loss stays finite.)"""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(N, 28, 28)).astype(np.float32)
  y = rng.integers(0, 10, N).astype(np.int32)
  rows = batch_indices(SEED, 0, 2 * CHUNK, N, BATCH)
  earlier = set(rows[:chunk * CHUNK].ravel().tolist())
  step, victim = next((s, i) for s in range(chunk * CHUNK, 2 * CHUNK)
                      for i in rows[s].tolist() if i not in earlier)
  y[victim] = 10
  return x, y, step + 1


def _train(tmp_path, x, y):
  stage = Stage(tmp_path, "image", {})
  schedule = ClassifierSchedule(batch_size=BATCH, steps=4 * CHUNK,
                                steps_per_chunk=CHUNK, optimizer="sgd",
                                learning_rate=0.01)
  train_classifier(convnets.ImageNet(widths=(4, 8), hidden=16), x, y, x,
                   np.minimum(y, 9), schedule, seed=SEED, stage=stage,
                   flag="image", show_progress=False)
  return stage


def test_non_finite_loss_in_the_first_chunk_says_nothing_was_kept(tmp_path):
  x, y, bad = _poisoned(chunk=0)
  with pytest.raises(TrainingError) as error:
    _train(tmp_path, x, y)
  assert str(error.value) == (
      f"stage image: non-finite loss at step {bad}; no checkpoint had been "
      f"written yet; lower --config.image.learning_rate")
  assert finished_steps(tmp_path / "image" / "ckpt") == []


def test_non_finite_loss_names_stage_and_step_and_keeps_checkpoint(tmp_path):
  x, y, bad = _poisoned(chunk=1)
  assert CHUNK < bad <= 2 * CHUNK
  with pytest.raises(TrainingError) as error:
    _train(tmp_path, x, y)
  ckpt = tmp_path / "image" / "ckpt"
  assert str(error.value) == (
      f"stage image: non-finite loss at step {bad}; the last good "
      f"checkpoint (step {CHUNK}) is kept in {ckpt}; lower "
      f"--config.image.learning_rate")
  # Kept, and good: the first chunk's state, every parameter finite.
  assert finished_steps(ckpt) == [CHUNK]
  model = convnets.ImageNet(widths=(4, 8), hidden=16)
  template = _init_state(model, make_optimizer("sgd", 0.01, 4 * CHUNK), x,
                         SEED)
  step, state = Checkpointer(ckpt).restore_latest(template)
  assert step == CHUNK and int(state["step"]) == CHUNK
  assert all(np.isfinite(leaf).all()
             for leaf in jax.tree.leaves(state["params"]))


@pytest.mark.slow
def test_unknown_config_setting_is_one_line():
  out = run_reproduce("--workdir=/tmp/x", "--config.image.no_such_field=1",
                      timeout=120)
  assert out.returncode == 1
  assert out.stderr.strip().splitlines() == [
      "error: --config.image.no_such_field: the config has no setting "
      "'no_such_field'"]
