"""End-to-end: `experiments.reproduce` on synthetic data, killed and resumed.

These run the real command in a subprocess on the quick config shrunk
further, with the offline synthetic source, so they need no ../shared.
"""

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest

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
STAGES = ("image", "speech_32", "speech_64", "align")


def _command(workdir, *extra):
  return [sys.executable, "-m", "experiments.reproduce",
          f"--workdir={workdir}", *TINY, *extra]


def _env():
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
  env.pop("AVDIGITS_DATA_DIR", None)
  return env


def _run(workdir, *extra):
  proc = subprocess.run(_command(workdir, *extra), cwd=REPO, env=_env(),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads((pathlib.Path(workdir) / "report.json").read_text())


def _results(report):
  """What must be identical between runs: accuracies and confusions."""
  keys = ("image_classifier", "speech_classifier", "speech_classifiers",
          "annotation", "retrieval", "recall")
  out = {k: report[k] for k in keys}
  for entry in out["speech_classifiers"].values():
    entry.pop("history", None)
  return json.loads(json.dumps(out))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reference")
  return workdir, _run(workdir)


def test_report_has_the_stable_keys_and_figures(reference):
  workdir, report = reference
  for key in ("image_classifier", "speech_classifier", "annotation",
              "retrieval", "data", "config", "seed", "timings_s"):
    assert key in report
  for task in ("annotation", "retrieval"):
    assert 0.0 <= report[task]["accuracy"] <= 1.0
    assert isinstance(report[task]["confusion"], list)
  assert 0.0 <= report["image_classifier"]["test_accuracy"] <= 1.0
  assert report["data"]["synthetic"] is True
  assert "SYNTHETIC" in (workdir / "report.md").read_text()
  for name in report["figures"]:
    assert (workdir / name).stat().st_size > 1000
  # The synthetic digits are learnable: far above chance even when tiny.
  assert report["image_classifier"]["test_accuracy"] > 0.5


def test_rerun_skips_finished_stages_and_is_identical(reference):
  workdir, report = reference
  start = time.perf_counter()
  again = _run(workdir)
  assert _results(again) == _results(report)
  assert time.perf_counter() - start < 60


def test_same_seed_gives_identical_numbers(reference, tmp_path):
  assert _results(_run(tmp_path)) == _results(reference[1])


def test_changed_config_is_refused(reference):
  workdir, _ = reference
  proc = subprocess.run(_command(workdir, "--config.image.learning_rate=0.5"),
                        cwd=REPO, env=_env(), capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 1
  assert "written by a different config" in proc.stderr
  assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("stage", STAGES)
def test_sigkill_in_a_stage_then_resume_gives_the_same_report(
    reference, tmp_path, stage):
  # Output goes to a file: an unread pipe would fill up and stall the run.
  with open(tmp_path / "killed.log", "w") as log:
    proc = subprocess.Popen(_command(tmp_path), cwd=REPO, env=_env(),
                            stdout=log, stderr=log)
  stage_dir = tmp_path / "seed_0" / stage
  deadline = time.monotonic() + 300
  while (time.monotonic() < deadline and proc.poll() is None
         and not (stage_dir / "config.json").exists()):
    time.sleep(0.01)
  # A seeded random point inside the stage (or just after it).
  time.sleep(random.Random(stage).uniform(0.0, 0.4))
  assert proc.poll() is None, "run finished before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (tmp_path / "report.json").exists()
  assert _results(_run(tmp_path)) == _results(reference[1])


def test_evaluate_command_uses_every_example_as_test_data(reference,
                                                           tmp_path):
  workdir, _ = reference
  output = tmp_path / "other.json"
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.evaluate", f"--workdir={workdir}",
       "--split=all", f"--output={output}"], cwd=REPO, env=_env(),
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(output.read_text())
  for key in ("image_classifier", "speech_classifier", "annotation",
              "retrieval", "data", "config", "seed", "timings_s"):
    assert key in report
  counts = report["data"]["counts"]
  assert counts["train_images"] == 0 and counts["train_utterances"] == 0
  assert counts["test_images"] == 400 and counts["test_utterances"] == 88
