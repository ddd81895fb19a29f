"""End-to-end: `experiments.reproduce` on synthetic data, killed and resumed.

The reference is the real command in a subprocess on the quick config shrunk
further, with the offline synthetic source, so it needs no ../shared. What
needs no process of its own (re-running a finished workdir, a changed
config, the evaluate command) runs in-process on the reference's workdir.
"""

import json
import pathlib
import re
import signal
import subprocess
import sys
import time
import types

import jax
import ml_collections
import numpy as np
import pytest

from avdigits import evaluate
from avdigits.data.types import speech_class_to_digit
from avdigits.digits import report, two_stage
from avdigits.errors import ConfigError
from avdigits.inputs import prepare
from avdigits.models import nets
from avdigits.training import predict, stages
from tests.conftest import (
  entry_point,
  finished_steps,
  snapshot,
  subprocess_env,
)

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = [
    "--config=experiments/configs/quick.py",
    "--config.data.images=synthetic", "--config.data.speech=synthetic",
    "--config.data.speech_split=stratified",
    "--config.data.synthetic_images_per_class=40",
    "--config.data.synthetic_speech_per_class=8",
    "--config.image.batch_size=16", "--config.image.epochs=4",
    "--config.speech.batch_size=16", "--config.speech.steps=40",
    "--config.speech.steps_per_chunk=10",
    "--config.speech.hidden_sizes=(32,64)", "--config.align.speech_hidden=64",
    "--config.align.steps=4000", "--config.align.steps_per_chunk=1000",
    "--config.eval.trials=10", "--progress=false",
]
ALIGN_CHUNK = 1000


def _command(workdir, *extra):
  return [sys.executable, "-m", "experiments.reproduce",
          f"--workdir={workdir}", *TINY, *extra]


def _run(workdir, *extra):
  proc = subprocess.run(_command(workdir, *extra), cwd=REPO,
                        env=subprocess_env(), capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads((pathlib.Path(workdir) / "report.json").read_text())


def _results(report_dict):
  """What must be identical between runs: accuracies and confusions."""
  keys = ("image_classifier", "speech_classifier", "speech_classifiers",
          "annotation", "retrieval", "recall")
  out = {k: report_dict[k] for k in keys}
  for entry in out["speech_classifiers"].values():
    entry.pop("history", None)
  return json.loads(json.dumps(out))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reference")
  return workdir, _run(workdir)


@pytest.fixture(scope="module")
def reference_config(reference):
  """The reference's config as the command resolved it (report.json)."""
  return ml_collections.ConfigDict(reference[1]["config"])


def _scores_by_hand(align_params, w, v):
  """y . x for every (image, utterance): x = relu(w W_d + b_d),
  y = v W_m + b_m (the paper's aligner), in float64."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), align_params)
  x = np.maximum(w @ p["image_map"]["kernel"] + p["image_map"]["bias"], 0)
  y = v @ p["speech_map"]["kernel"] + p["speech_map"]["bias"]
  return x @ y.T


def _check_outputs_by_hand(cfg, data, classes: int, result, outputs,
                           params) -> tuple:
  """The pipeline's float32 scores against the aligner by hand (float64,
  float32 tolerance), and the report's classifier accuracies exactly from
  the pipeline's own logits. Returns the (image, speech) convnets."""
  image_params, speech_params, align_params = params
  inet = nets.image_net(cfg.image)
  snet = nets.speech_net(cfg.speech, classes, cfg.align.speech_hidden)
  w = np.asarray(inet.apply({"params": image_params}, data.test_images,
                            method="embed"), np.float64)
  v = np.asarray(snet.apply({"params": speech_params}, data.test_speech,
                            method="embed"), np.float64)
  np.testing.assert_allclose(outputs["scores"],
                             _scores_by_hand(align_params, w, v),
                             rtol=1e-4, atol=1e-4)
  assert result["image_classifier"]["test_accuracy"] == np.mean(
      outputs["image_logits"].argmax(-1) == data.test_image_labels)
  assert result["speech_classifier"]["test_accuracy"] == np.mean(
      outputs["speech_logits"].argmax(-1) == data.test_speech_labels)
  return inet, snet


def test_report_holds_the_trained_models_figures(reference,
                                                 reference_config):
  workdir, result = reference
  for key in ("image_classifier", "speech_classifier", "annotation",
              "retrieval", "data", "config", "seed", "timings_s"):
    assert key in result
  assert result["data"]["synthetic"] is True
  assert "SYNTHETIC" in (workdir / "report.md").read_text()
  for name in result["figures"]:
    assert (workdir / name).stat().st_size > 1000
  # The synthetic digits are learnable: far above chance even when tiny.
  assert result["image_classifier"]["test_accuracy"] > 0.5

  # Oracle, in two steps that no last-bit rounding can flip. (1) The
  # pipeline's own float32 outputs of the saved models equal a hand
  # computation (direct apply, the aligner by hand in float64) to float32
  # tolerance. (2) The report's figures are exactly the protocols applied to
  # those float32 outputs: decisions are compared only between identical
  # numbers, since a near-tie (ReLU zeros of a barely trained aligner) can go
  # either way between two differently rounded computations.
  cfg = reference_config
  data = prepare.prepare_data(cfg, None)
  image_params, speech_params, align_params = two_stage.load_trained(
      cfg, workdir, 0, data.num_speech_classes)
  outputs = predict.test_outputs(cfg, data, image_params, speech_params,
                                 align_params)
  inet, snet = _check_outputs_by_hand(
      cfg, data, data.num_speech_classes, result, outputs,
      (image_params, speech_params, align_params))
  np.testing.assert_allclose(
      outputs["image_logits"],
      inet.apply({"params": image_params}, data.test_images),
      rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(
      outputs["speech_logits"],
      snet.apply({"params": speech_params}, data.test_speech),
      rtol=1e-5, atol=1e-5)
  scores = outputs["scores"]
  expected = evaluate.evaluate_scores(
      scores, data.test_image_labels, data.test_speech_labels,
      data.num_speech_classes, trials=cfg.eval.trials, seed=0)
  for task in ("annotation", "retrieval"):
    assert result[task]["accuracy"] == expected[task]["accuracy"]
    assert result[task]["per_class"] == expected[task]["per_class"]
    assert result[task]["confusion"] == expected[task]["confusion"]
    assert result[task]["accuracy_ci95"] == 0.0   # one seed
  # R@1 of images, by hand: is the best-scoring utterance of the same digit?
  speech_digits = speech_class_to_digit(data.test_speech_labels)
  r_at_1 = np.mean(speech_digits[scores.argmax(1)] == data.test_image_labels)
  assert result["recall"]["image_to_speech"]["R@1"]["mean"] == r_at_1


def test_rerun_skips_finished_stages_and_is_identical(
    reference, reference_config, monkeypatch):
  workdir, result = reference
  before = snapshot(workdir / "seed_0")

  def no_training(*args, **kwargs):
    raise AssertionError("a finished stage was trained again")

  monkeypatch.setattr(stages, "train_classifier", no_training)
  monkeypatch.setattr(two_stage, "train_alignment", no_training)
  by_split, summary = two_stage.run_all(reference_config, None, workdir, [0],
                                       show_progress=False)
  again = report.aggregate(by_split["stratified"], data=summary,
                           config=reference_config.to_dict(), seed=0,
                           timings={})
  assert _results(again) == _results(result)
  # Checkpoints, parameters, metrics and results: not one byte rewritten.
  assert snapshot(workdir / "seed_0") == before


def test_changed_config_is_refused(reference, reference_config):
  workdir, _ = reference
  before = snapshot(workdir / "seed_0")
  cfg = ml_collections.ConfigDict(reference_config.to_dict())
  cfg.image.learning_rate = 0.5
  with pytest.raises(ConfigError, match=r"seed_0/image: written by a "
                     r"different config \(schedule.learning_rate: 0.001 -> "
                     r"0.5\)"):
    two_stage.run_all(cfg, None, workdir, [0], show_progress=False)
  assert snapshot(workdir / "seed_0") == before


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_rerun_resumes_to_the_same_report(
    reference, tmp_path):
  """The README's rule: after a kill, run the same command again.

  The run is killed in the alignment stage once its first checkpoint is on
  disk (image and speech stages finished, alignment part-way), so the
  rerun must skip three finished stages and resume the fourth from its
  checkpoint; its report equals the uninterrupted reference. Running
  from scratch in a new workdir (every stage before the kill) and matching
  the reference is also the same-seed-same-numbers check.
  """
  stage_dir = tmp_path / "seed_0" / "align"
  # Output goes to a file: an unread pipe would fill up and stall the run.
  with open(tmp_path / "killed.log", "w") as log:
    proc = subprocess.Popen(_command(tmp_path), cwd=REPO,
                            env=subprocess_env(), stdout=log, stderr=log)
  try:
    deadline = time.monotonic() + 300
    while (time.monotonic() < deadline and proc.poll() is None
           and not finished_steps(stage_dir / "ckpt")):
      time.sleep(0.005)
    # Frozen first, so that what is checked is what the kill leaves.
    proc.send_signal(signal.SIGSTOP)
    at_kill = finished_steps(stage_dir / "ckpt")
    stage_done = (stage_dir / "result.json").exists()
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  assert proc.returncode == -signal.SIGKILL, (
      (tmp_path / "killed.log").read_text()[-3000:])
  assert at_kill and at_kill[-1] < 4000, at_kill
  assert not stage_done
  for finished in ("image", "speech_32", "speech_64"):
    assert (tmp_path / "seed_0" / finished / "result.json").exists()
  assert not (tmp_path / "report.json").exists()

  resumed = _run(tmp_path)
  assert _results(resumed) == _results(reference[1])
  # Resumed, not restarted: a restart keeps the killed run's rows and
  # appends its own, so steps before the kill would appear twice.
  rows = [json.loads(line)["step"] for line in
          (stage_dir / "metrics.jsonl").read_text().splitlines()]
  assert rows == list(range(ALIGN_CHUNK, 4000 + 1, ALIGN_CHUNK))
  assert resumed["align"]["history"] == reference[1]["align"]["history"]


def _evaluate(monkeypatch, workdir, output, split, data_dir=None,
              images=None, speech=None):
  """experiments.evaluate's main with these flags."""
  monkeypatch.delenv("AVDIGITS_DATA_DIR", raising=False)
  with entry_point("experiments.evaluate") as command:
    for holder, value in (("_WORKDIR", str(workdir)),
                          ("_DATA_DIR", data_dir), ("_SPLIT", split),
                          ("_OUTPUT", str(output)), ("_IMAGES", images),
                          ("_SPEECH", speech)):
      monkeypatch.setattr(command, holder, types.SimpleNamespace(value=value))
    command.main(["evaluate"])


def test_evaluate_command_refuses_the_models_training_data(
    reference, tmp_path, monkeypatch):
  workdir, trained = reference
  output = tmp_path / "other.json"
  # The same synthetic corpora: 'all' holds every training example.
  with pytest.raises(ConfigError) as error:
    _evaluate(monkeypatch, workdir, output, "all")
  assert str(error.value) == (
      f"--split=all: {trained['data']['counts']['train_images']} of its 400 "
      f"test images trained the model of split stratified; choose a split "
      f"disjoint from the training data, or --split=all on another data "
      f"directory")
  # A speaker's utterances: stratified training held most of them.
  speaker = trained["data"]["speakers"]["train"][0]
  pattern = (rf"^--split=speakers:{re.escape(speaker)}: \d+ of its \d+ "
             r"test utterances trained the model")
  with pytest.raises(ConfigError, match=pattern):
    _evaluate(monkeypatch, workdir, output, f"speakers:{speaker}")
  assert not output.exists()
  # The run's own split is disjoint from its training data.
  _evaluate(monkeypatch, workdir, output, "stratified")
  result = json.loads(output.read_text())
  for key in ("image_classifier", "speech_classifier", "annotation",
              "retrieval", "data", "config", "seed", "timings_s"):
    assert key in result
  assert result["data"]["counts"] == dict(
      trained["data"]["counts"],
      train_utterances_expanded=result["data"]["counts"][
          "train_utterances_expanded"])


def _other_data_dir(root, sample_rate):
  """A data directory the reference never saw: 30 random MNIST-format
  images and FSDD-format recordings of other eSpeak NG draws (seed 7)."""
  from scipy.io import wavfile

  from avdigits.data.synthetic import synthetic_speech
  from tests.test_mnist import write_pair
  (root / "mnist").mkdir(parents=True)
  write_pair(root / "mnist", "other", np.repeat(np.arange(10), 3), seed=7)
  folder = root / "fsdd" / "recordings"
  folder.mkdir(parents=True)
  speech = synthetic_speech(2, sample_rate=sample_rate, seed=7)
  for i, (wave, label) in enumerate(zip(speech.waveforms, speech.labels,
                                        strict=True)):
    if label < 10:
      wavfile.write(folder / f"{label}_voice{i % 2}_{i}.wav", sample_rate,
                    (np.asarray(wave) * 20000).astype(np.int16))
  return root


def test_evaluate_all_on_another_data_directory_by_hand(
    reference, reference_config, tmp_path, monkeypatch):
  """`--split=all` on another data directory: every example is test data,
  and each figure is the protocol applied to the saved models' outputs,
  which equal a hand computation (direct apply; the aligner in float64)."""
  workdir, trained = reference
  other = _other_data_dir(tmp_path / "other",
                          reference_config.data.sample_rate)
  output = tmp_path / "other.json"
  _evaluate(monkeypatch, workdir, output, "all", data_dir=str(other),
            images="mnist", speech="fsdd")
  result = json.loads(output.read_text())
  cfg = ml_collections.ConfigDict(reference_config.to_dict())
  cfg.data.images, cfg.data.speech = "mnist", "fsdd"
  data = prepare.prepare_data(cfg, other, split_override="all")
  counts = result["data"]["counts"]
  assert (counts["train_images"], counts["train_utterances"]) == (0, 0)
  assert counts["test_images"] == 30
  assert counts["test_utterances"] == len(data.test_speech_labels) == 20
  classes = trained["data"]["num_speech_classes"]
  image_params, speech_params, align_params = two_stage.load_trained(
      cfg, workdir, 0, classes)
  outputs = predict.test_outputs(cfg, data, image_params, speech_params,
                                 align_params, classes)
  _check_outputs_by_hand(cfg, data, classes, result, outputs,
                         (image_params, speech_params, align_params))
  scores = outputs["scores"]
  speech_digits = speech_class_to_digit(data.test_speech_labels)
  # R@1 both ways, by hand: is the best-scoring item of the same digit?
  assert result["recall"]["image_to_speech"]["R@1"]["mean"] == np.mean(
      speech_digits[scores.argmax(1)] == data.test_image_labels)
  assert result["recall"]["speech_to_image"]["R@1"]["mean"] == np.mean(
      data.test_image_labels[scores.argmax(0)] == speech_digits)
  expected = evaluate.evaluate_scores(
      scores, data.test_image_labels, data.test_speech_labels,
      data.num_speech_classes, trials=cfg.eval.trials, seed=0)
  for task in ("annotation", "retrieval"):
    assert result[task]["accuracy"] == expected[task]["accuracy"]
    assert result[task]["confusion"] == expected[task]["confusion"]
