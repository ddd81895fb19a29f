"""Every trainer resumes from a checkpoint to exactly the uninterrupted run.

A run is interrupted by an exception raised right after its checkpoint at
step k (the state a kill there leaves: the checkpoint and the metrics rows
up to k on disk), then the same call is made again on the same stage. The
second call must restore that checkpoint (step k, not 0), train only the
remaining chunks, and end with exactly the parameters and history of a run
that was never interrupted; metrics.jsonl must hold every chunk once.
"""

import json
import shutil
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avdigits.errors import Interrupted
from avdigits.models import convnets
from avdigits.training import align, joint, loop
from avdigits.training.checkpoint import Checkpointer
from avdigits.training.classifier import ClassifierSchedule, train_classifier
from avdigits.training.metrics import JsonlWriter
from avdigits.training.workdir import Stage
from tests.conftest import finished_steps


class _Interrupted(Exception):
  """Raised in place of a kill, right after one checkpoint is written."""


def _run_interrupted(monkeypatch, train, stage: Stage, at_step: int) -> None:
  original = Checkpointer.save

  def save_then_stop(self, step, state):
    original(self, step, state)
    if step == at_step:
      raise _Interrupted

  with monkeypatch.context() as m:
    m.setattr(Checkpointer, "save", save_then_stop)
    with pytest.raises(_Interrupted):
      train(stage)


def _run_watched(monkeypatch, train, stage: Stage):
  """(result, step the trainer resumed from, steps of the rows it logged)."""
  resumed_from, logged = [], []
  resume, write = Stage.resume, JsonlWriter.write_scalars

  def watched_resume(self, initial_state, step=None):
    out = resume(self, initial_state, step)
    resumed_from.append(int(out[1]["step"]))
    return out

  def watched_write(self, step, scalars):
    logged.append(step)
    write(self, step, scalars)

  with monkeypatch.context() as m:
    m.setattr(Stage, "resume", watched_resume)
    m.setattr(JsonlWriter, "write_scalars", watched_write)
    out = train(stage)
  return out, resumed_from, logged


def check_resume(monkeypatch, tmp_path, train, *, steps: int, chunk: int,
                 interrupt_at: int, compare=("params", "history")):
  whole = train(Stage(tmp_path, "whole", {}))
  stage = Stage(tmp_path, "cut", {})
  _run_interrupted(monkeypatch, train, stage, interrupt_at)
  assert interrupt_at in finished_steps(stage.checkpoint_dir)

  resumed, resumed_from, logged = _run_watched(monkeypatch, train,
                                               Stage(tmp_path, "cut", {}))
  assert resumed_from == [interrupt_at]
  assert logged == list(range(interrupt_at + chunk, steps + 1, chunk))
  rows = [json.loads(line)["step"]
          for line in stage.metrics_path.read_text().splitlines()]
  assert rows == list(range(chunk, steps + 1, chunk))
  if "params" in compare:
    leaves_whole = jax.tree.leaves_with_path(whole["params"])
    leaves_resumed = jax.tree.leaves_with_path(resumed["params"])
    assert [p for p, _ in leaves_whole] == [p for p, _ in leaves_resumed]
    for (path, a), (_, b) in zip(leaves_whole, leaves_resumed, strict=True):
      np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
  for key in compare:
    if key != "params":
      assert resumed[key] == whole[key], key
  return whole, resumed


# ----------------------------------------------------------------- classifier


def test_classifier_resumes_from_its_checkpoint(monkeypatch, tmp_path):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(40, 20, 23)).astype(np.float32)
  y = (np.arange(40) % 4).astype(np.int32)
  # A cosine rate (depends on the total), dropout, the spectrogram
  # augmentation and mixup: everything drawn per step must resume too. 40
  # examples in batches of 8: epochs of 5 steps straddle the chunks of 4.
  schedule = ClassifierSchedule(batch_size=8, steps=12, steps_per_chunk=4,
                                lr_schedule="cosine", augment="shift_mask",
                                max_shift=3, mixup=0.4)
  model = convnets.SpeechNet(hidden=16, num_classes=4, features=8,
                           dropout=0.3)

  def train(stage):
    return train_classifier(model, x, y, x[:12], y[:12], schedule, seed=3,
                            stage=stage, flag="speech", show_progress=False)

  whole, _ = check_resume(monkeypatch, tmp_path, train, steps=12, chunk=4,
                          interrupt_at=4,
                          compare=("params", "history", "test_accuracy"))
  assert len(whole["history"]) == 3


# ------------------------------------------------------------------ alignment


def _acts(seed=0):
  rng = np.random.default_rng(seed)
  return (np.abs(rng.normal(size=(60, 512))).astype(np.float32),
          np.arange(60) % 10,
          np.abs(rng.normal(size=(44, 32))).astype(np.float32),
          np.arange(44) % 11)


@pytest.mark.parametrize("schedule", [
    # The reassociated SGD path (plain SGD, constant rate).
    align.AlignSchedule(steps=96, steps_per_chunk=32, embed_dim=8, init_std=0.1,
                        learning_rate=1e-2, init="gaussian"),
    # The plain path with Adam's state and a cosine rate to restore.
    align.AlignSchedule(steps=96, steps_per_chunk=32, embed_dim=8, init_std=0.1,
                        optimizer="adam", learning_rate=1e-2,
                        lr_schedule="cosine", clamp=False),
], ids=["fast_sgd", "plain_adam"])
def test_alignment_resumes_from_its_checkpoint(monkeypatch, tmp_path,
                                               schedule):
  w, digits, v, labels = _acts()

  def train(stage):
    return align.train_alignment(w, digits, v, labels, 11, schedule, seed=2,
                                 stage=stage, show_progress=False)

  whole, _ = check_resume(monkeypatch, tmp_path, train, steps=96, chunk=32,
                          interrupt_at=64,
                          compare=("params", "history", "start"))
  # It trains, so equal parameters are not equal initial parameters.
  start, _ = align.initial_params(schedule, w, digits,
                                  v, labels, seed=2)
  assert not np.allclose(whole["params"]["image_map"]["kernel"],
                         start["image_map"]["kernel"])


# ---------------------------------------------------------------------- joint


def _joint_data(seed=0):
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(10), 3)
  images = rng.normal(0, 0.3, (30, 28, 28)).astype(np.float32)
  speech = rng.normal(0, 0.3, (30, 20, 23)).astype(np.float32)
  return images, labels, speech, labels.copy()


def test_joint_training_resumes_from_its_checkpoint(monkeypatch, tmp_path):
  images, digits, speech, labels = _joint_data()
  model = joint.JointModel(
      aligner=convnets.Aligner(embed_dim=8),
      image_net=convnets.ImageNet(widths=(4, 8), hidden=16, dropout=0.2),
      speech_net=convnets.SpeechNet(hidden=16, num_classes=10, features=8))
  # The default cosine rate (depends on the total) and augmentations drawn
  # from the step's key.
  schedule = joint.JointSchedule(steps=30, steps_per_chunk=10, groups=2,
                                 image_augment="shift", image_max_shift=2,
                                 speech_augment="shift_mask",
                                 speech_max_shift=3)

  def train(stage):
    return joint.train_joint(model, images, digits, speech, labels, 10,
                             schedule, seed=1, stage=stage, flag="train")

  check_resume(monkeypatch, tmp_path, train, steps=30, chunk=10,
               interrupt_at=20)


# -------------------------------------------------------------------- strings


def test_string_training_resumes_from_its_checkpoint(monkeypatch, tmp_path):
  from avdigits.strings import data as strings
  from avdigits.strings import pipeline as strings_pipeline
  from avdigits.strings import train as strings_train
  from tests import test_strings
  cfg = test_strings.tiny_config()
  speech, images = test_strings._speech(), test_strings._images()
  pools = strings.Pools.build(speech, np.arange(len(speech)), images,
                              np.arange(len(images)), length=2, what="test")
  # A cosine rate (depends on the total) and fresh strings of two lengths
  # drawn per step: both must resume.
  schedule = strings_train.StringSchedule(
      batch_size=6, steps=6, steps_per_chunk=2, train_lengths=(1, 2))

  def train(stage):
    return strings_train.train_strings(strings_pipeline.model(cfg), pools,
                                       schedule, cfg.features, seed=1,
                                       stage=stage)

  check_resume(monkeypatch, tmp_path, train, steps=6, chunk=2,
               interrupt_at=4)


# ------------------------------------------------- vmapped seeds, resumed

def _stacked_stages(workdir):
  return [Stage(workdir, f"seed_{i}", {"seed": i}) for i in range(2)]


def _toy_chunk(starts):
  """A chunk of two stacked seeds: seed i adds (i + 1) * (t + 1) at step t;
  the values are each seed's x after each step, [seeds, steps]."""

  def run_chunk(state, step, num_steps):
    starts.append(step)
    x, values = np.array(state["x"]), []
    for t in range(step, step + num_steps):
      x = x + np.arange(1, 3, dtype=np.float32) * (t + 1)
      values.append(x.copy())
    return ({"x": x, "step": np.asarray(state["step"]) + num_steps},
            np.stack(values, 1))

  return run_chunk


def _train_stacked(workdir, starts, stop_at=None):
  chunk = _toy_chunk(starts)

  def run_chunk(state, step, num_steps):
    if step == stop_at:
      raise Interrupted(signal.SIGTERM)
    return chunk(state, step, num_steps)

  initial = {"x": jnp.zeros(2, jnp.float32), "step": jnp.zeros(2, jnp.int32)}
  return loop.train_stages_in_chunks(
      _stacked_stages(workdir), initial, stacked=True, steps=6,
      steps_per_chunk=2, run_chunk=run_chunk,
      summarise=lambda state, values: {"x": float(values[-1])})


def test_vmapped_seeds_resume_from_the_step_every_seed_kept(tmp_path):
  """Two stacked seeds stopped after step 4, where seed 1's checkpoint of
  step 4 is lost (a kill between the seeds' saves): the rerun resumes both
  from step 2, the newest step both kept, and ends where an uninterrupted
  run ends."""
  reference = _train_stacked(tmp_path / "reference", [])
  # x after 6 steps: (i + 1) * (1 + ... + 6) for seed i.
  assert [float(r.state["x"]) for r in reference] == [21.0, 42.0]
  workdir = tmp_path / "run"
  with pytest.raises(Interrupted):
    _train_stacked(workdir, [], stop_at=4)
  assert finished_steps(workdir / "seed_1" / "ckpt") == [2, 4]
  shutil.rmtree(workdir / "seed_1" / "ckpt" / "4")
  starts = []
  resumed = _train_stacked(workdir, starts)
  assert starts == [2, 4]
  for got, want, i in zip(resumed, reference, range(2), strict=True):
    assert float(got.state["x"]) == float(want.state["x"])
    assert int(got.state["step"]) == 6
    assert got.history == want.history
    rows = [json.loads(line)["step"] for line in
            (workdir / f"seed_{i}" / "metrics.jsonl").read_text()
            .splitlines()]
    assert rows == [2, 4, 6]


@pytest.mark.parametrize("during_seed, resumable", [(0, 2), (1, 4)])
def test_a_signal_during_a_save_names_the_step_every_seed_kept(
    tmp_path, monkeypatch, during_seed, resumable):
  """SIGINT arriving while seed `during_seed` writes its checkpoint of step
  4 is held until that write ends (then raised as the CLI's handler does);
  the stop names the newest step every seed has kept, the one a rerun
  resumes from, not the step before the save began."""
  saves = []
  original = Checkpointer.save

  def save_with_signal(self, step, state):
    saves.append(step)
    if step == 4 and len(saves) == 3 + during_seed:  # [2, 2, 4, 4]
      with monkeypatch.context() as m:
        manager = type(self._manager)
        wait = manager.wait_until_finished

        def wait_then_signal(manager_self):
          wait(manager_self)
          signal.raise_signal(signal.SIGINT)

        m.setattr(manager, "wait_until_finished", wait_then_signal)
        original(self, step, state)
    else:
      original(self, step, state)

  def interrupt(signum, frame):
    raise Interrupted(signum)

  monkeypatch.setattr(Checkpointer, "save", save_with_signal)
  previous = signal.signal(signal.SIGINT, interrupt)
  try:
    with pytest.raises(Interrupted) as stop:
      _train_stacked(tmp_path, [])
  finally:
    signal.signal(signal.SIGINT, previous)
  assert stop.value.where.endswith(f"at step {resumable} (its last "
                                   f"checkpoint)")
  assert finished_steps(tmp_path / f"seed_{during_seed}" / "ckpt")[-1] == 4
