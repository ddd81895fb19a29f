"""The entry points on the real data directory (../shared/data or
$AVDIGITS_DATA_DIR): one `reproduce`, one strings and one study run, each a
real `python -m experiments.*` subprocess given `--data_dir` (the
environment variable is dropped, so the flag is what they read), shrunk to
seconds. Every other entry-point test runs on synthetic data; these run the
real loaders, splits and features end to end.

Oracles: what the files on disk and the loaders say of the directory
(FSDD's upstream test recordings are indices 0-4 of each speaker and digit;
Speech Commands' test clips are its loader's), and figures recomputed from
the saved models or the drawn test strings.
"""

import json
import pathlib
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from avdigits import evaluate
from avdigits.data import sources, splits
from avdigits.digits import two_stage
from avdigits.inputs import prepare
from avdigits.models import nets
from avdigits.strings import evaluate as strings_eval
from avdigits.strings import pipeline as strings_pipeline
from avdigits.study import pipeline as study_pipeline
from avdigits.training import checkpoint, predict
from experiments.configs.study import loso as study_loso
from tests.conftest import subprocess_env

REPO = pathlib.Path(__file__).resolve().parents[1]
FSDD_TEST_INDICES = 5       # FSDD's convention: indices 0-4 are test


def _run(module: str, *args: str) -> str:
  """`python -m module ARGS` from the repository root; its stdout."""
  proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO,
                        env=subprocess_env(), capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def _fsdd_files(data_dir: pathlib.Path) -> list[tuple[int, str, int]]:
  """(digit, speaker, index) of every FSDD recording, from its file name."""
  out = []
  for path in sorted((data_dir / "fsdd" / "recordings").glob("*.wav")):
    digit, speaker, index = path.stem.split("_")
    out.append((int(digit), speaker, int(index)))
  assert out, f"{data_dir}/fsdd/recordings holds no .wav"
  return out


def _stratified_test_size(labels: np.ndarray, fraction: float) -> int:
  """Test images of the seeded stratified split: round(fraction * n) per
  class (halves up)."""
  return int(sum(np.floor(fraction * n + 0.5) for n in np.bincount(labels)))


def _needs(data_dir: pathlib.Path, *corpora: str) -> None:
  missing = [c for c in corpora if not (data_dir / c).is_dir()]
  if missing:
    pytest.skip(f"{data_dir} has no {', '.join(missing)}/")


# ------------------------------------------------------------ reproduce

REPRODUCE_TINY = (
    "--config=experiments/configs/quick.py",
    "--config.data.speech=fsdd+speech_commands",
    "--config.speech.steps=20", "--config.speech.steps_per_chunk=10",
    "--config.speech.hidden_sizes=(64,)", "--config.align.speech_hidden=64",
    "--config.align.steps=1000", "--config.align.steps_per_chunk=1000",
    "--config.eval.trials=10", "--progress=false")


@pytest.mark.slow
def test_reproduce_on_the_real_data_directory(real_data_dir, tmp_path):
  """The quick config on FSDD + Speech Commands, upstream split: the
  report's counts and speakers are the directory's, its per-corpus rows
  name both corpora and add up, and its figures are the saved models'."""
  _needs(real_data_dir, "speech_commands")
  workdir = tmp_path / "run"
  _run("experiments.reproduce", f"--workdir={workdir}",
       f"--data_dir={real_data_dir}", *REPRODUCE_TINY)
  result = json.loads((workdir / "report.json").read_text())
  data, counts = result["data"], result["data"]["counts"]
  cfg = ml_collections.ConfigDict(result["config"])
  assert data["synthetic"] is False and data["speech_split"] == "upstream"
  assert data["speech_source"] == (
      f"fsdd:{real_data_dir / 'fsdd'}+speech_commands:"
      f"{real_data_dir / 'speech_commands'}")

  # Counts: the files on disk and the loaders.
  corpora = prepare.load_corpora(cfg, real_data_dir)
  speech, images = corpora.speech, corpora.images
  fsdd = _fsdd_files(real_data_dir)
  fsdd_test = sum(index < FSDD_TEST_INDICES for _, _, index in fsdd)
  commands = speech.corpus == "speech_commands"
  assert commands.sum() == len(list(
      (real_data_dir / "speech_commands").glob("*/*.wav")))
  commands_test = int((commands & (speech.subset == "test")).sum())
  assert counts["test_utterances"] == fsdd_test + commands_test
  assert len(speech) == len(fsdd) + commands.sum()
  assert counts["train_utterances"] == len(speech) - counts[
      "test_utterances"]
  assert counts["test_images"] == _stratified_test_size(
      images.labels, cfg.data.test_fraction)
  assert counts["train_images"] + counts["test_images"] == len(images.labels)
  test_people = speech.subset == "test"
  assert data["speakers"]["test"] == sorted(
      set(speech.speakers[test_people].tolist()))
  # FSDD's upstream split is speaker-dependent, Speech Commands' is not.
  by_people = data["test_speakers_by_corpus"]
  fsdd_speakers = len({speaker for _, speaker, _ in fsdd})
  assert by_people["fsdd"] == {"test_speakers": fsdd_speakers,
                               "heard_in_training": fsdd_speakers}
  assert by_people["speech_commands"] == {
      "test_speakers": len(set(speech.speakers[commands
                                               & test_people].tolist())),
      "heard_in_training": 0}

  # Each test corpus on its own row; the rows add up to the whole.
  by_corpus = result["by_corpus"]
  assert sorted(by_corpus) == ["fsdd", "speech_commands"]
  assert by_corpus["fsdd"]["test_utterances"] == fsdd_test
  assert by_corpus["speech_commands"]["test_utterances"] == commands_test
  # Every speech class here is a known class, so the overall speech
  # accuracy is the per-corpus ones weighted by their utterances.
  overall = result["speech_classifier"]["test_accuracy"]
  weighted = sum(entry["test_utterances"]
                 * entry["speech_test_accuracy"]["mean"]
                 for entry in by_corpus.values()) / counts["test_utterances"]
  assert overall == pytest.approx(weighted, abs=1e-12)
  commands_classes = set(speech.labels[commands & test_people].tolist())
  missing = sorted(set(range(10)) - commands_classes)
  if missing:   # annotation needs every class among the corpus's test clips
    assert by_corpus["speech_commands"]["missing_classes"] == missing
    assert by_corpus["speech_commands"]["annotation"] is None
    assert by_corpus["speech_commands"]["retrieval"] is None

  # The figures, from the saved models' outputs on the test data by hand.
  prepared = prepare.prepare_data(cfg, real_data_dir, corpora=corpora)
  params = two_stage.load_trained(cfg, workdir, 0,
                                  prepared.num_speech_classes)
  outputs = predict.test_outputs(cfg, prepared, *params)
  labels = prepared.test_speech_labels
  right = outputs["speech_logits"].argmax(-1) == labels
  assert overall == np.mean(right)
  assert result["image_classifier"]["test_accuracy"] == np.mean(
      outputs["image_logits"].argmax(-1) == prepared.test_image_labels)
  for name, entry in by_corpus.items():
    columns = prepared.test_speech_corpus == name
    assert columns.sum() == entry["test_utterances"]
    assert entry["speech_test_accuracy"]["mean"] == np.mean(right[columns])
    if entry["annotation"] is not None:
      figures = evaluate.evaluate_scores(
          outputs["scores"][:, columns], prepared.test_image_labels,
          labels[columns], prepared.num_speech_classes,
          trials=cfg.eval.trials, seed=0)
      assert entry["annotation"]["mean"] == figures["annotation"]["accuracy"]
      assert entry["retrieval"]["mean"] == figures["retrieval"]["accuracy"]
  whole = evaluate.evaluate_scores(
      outputs["scores"], prepared.test_image_labels, labels,
      prepared.num_speech_classes, trials=cfg.eval.trials, seed=0)
  assert result["annotation"]["accuracy"] == whole["annotation"]["accuracy"]
  assert result["retrieval"]["accuracy"] == whole["retrieval"]["accuracy"]


# ------------------------------------------------------------ strings

STRINGS_TINY = (
    # The config's own corpus (fsdd: one speaker per string, and Speech
    # Commands' people have 1-3 clips each), as a user runs it.
    "--config=experiments/configs/strings.py",
    "--config.strings.speech_widths=(8,16,16)",
    "--config.strings.image_widths=(4,8,8)", "--config.strings.dim=16",
    "--config.strings.train_lengths=(1,)", "--config.strings.batch_size=8",
    "--config.strings.steps=2", "--config.strings.steps_per_chunk=1",
    "--config.strings.test_lengths=(2,3)", "--config.strings.test_strings=30",
    "--config.strings.reader_images=2",
    "--config.strings.reader_dev_strings=8",
    "--config.strings.reader_min_steps=(1,2)",
    "--config.strings.reader_duration_weight=(0.0,1.0)",
    "--config.strings.reader_word_bonus=(0.0,)", "--progress=false")


@pytest.mark.slow
def test_strings_on_the_real_data_directory(real_data_dir, tmp_path):
  """Digit strings on FSDD and MNIST, upstream split: every test string is
  spoken by one speaker from test recordings only and written with test
  images, as many per length as configured, and the report's test sets and
  chance figures are those strings'."""
  workdir = tmp_path / "strings"
  _run("experiments.reproduce", f"--workdir={workdir}",
       f"--data_dir={real_data_dir}", *STRINGS_TINY)
  result = json.loads((workdir / "report.json").read_text())
  cfg = ml_collections.ConfigDict(result["config"])
  data, counts = result["data"], result["data"]["counts"]
  assert data["task"] == "strings" and data["synthetic"] is False
  assert data["speech_source"] == f"fsdd:{real_data_dir / 'fsdd'}"
  fsdd = _fsdd_files(real_data_dir)
  test_recordings = {(digit, speaker, index) for digit, speaker, index in fsdd
                     if index < FSDD_TEST_INDICES}
  assert counts["test_utterances"] == len(test_recordings)
  assert counts["train_utterances"] == len(fsdd) - len(test_recordings)
  assert data["speakers"]["test"] == sorted({s for _, s, _ in fsdd})
  assert sorted(result["strings"]) == ["2", "3"]
  assert result["seeds"] == [0] and result["runs"] == 1
  assert [r["step"] for r in result["train"]["history"]] == [1, 2]

  # The test strings again, through the library, from the same data.
  corpora = prepare.load_corpora(cfg, real_data_dir, fixed_window=False)
  pools = strings_pipeline.string_data(cfg, corpora).test
  _, test_images = splits.image_split(
      corpora.images, mode=cfg.data.image_split,
      test_fraction=cfg.data.test_fraction, seed=cfg.seed)
  assert counts["test_images"] == len(test_images)
  by_length = result["test_sets"]["upstream"]
  assert sorted(by_length) == ["2", "3"]
  for length in (2, 3):
    strings = strings_eval.test_strings(pools, length,
                                        cfg.strings.test_strings,
                                        seed=cfg.seed)
    assert len(strings) == cfg.strings.test_strings == 30
    assert by_length[str(length)] == [strings_eval.fingerprint(strings)]
    entry = result["strings"][str(length)]
    assert entry["chance_R@1"] == strings_eval.chance_recall_at_1(
        strings.digits)
    for k, ids in enumerate(strings.utterance_ids):
      words, pictures = ids[:length], ids[length:]
      spoken = [pathlib.Path(u).stem.split("_") for u in words]
      # Each word a test recording of the string's digit, one speaker.
      assert all((int(d), s, int(i)) in test_recordings
                 for d, s, i in spoken), words
      assert [int(d) for d, _, _ in spoken] == strings.digits[k].tolist()
      assert {s for _, s, _ in spoken} == {str(strings.speakers[k])}
      # Each digit written with a test image of that digit.
      picked = [int(p.removeprefix("image:")) for p in pictures]
      assert np.isin(picked, test_images).all()
      assert corpora.images.labels[picked].tolist() == strings.digits[
          k].tolist()
    for direction in ("speech_to_image", "image_to_speech"):
      recall = [entry["recall"][direction][f"R@{n}"] for n in (1, 5, 10)]
      assert recall == sorted(recall) and 0 <= recall[0] <= recall[-1] <= 1
      # Each recall is a count of the 30 queries.
      assert all(abs(r * 30 - round(r * 30)) < 1e-9 for r in recall)


# ------------------------------------------------------------ study


@pytest.mark.slow
def test_study_on_the_real_data_directory(real_data_dir, tmp_path):
  """The study's `loso` experiment on one held-out FSDD speaker (george):
  its run names the split, and its speech classifier was scored on george's
  recordings, every one of them and no other."""
  workdir = tmp_path / "study"
  speaker = "george"
  fsdd = _fsdd_files(real_data_dir)
  if speaker not in {s for _, s, _ in fsdd}:
    pytest.skip(f"{real_data_dir}/fsdd has no speaker {speaker}")
  _run("experiments.study", f"--workdir={workdir}",
       f"--data_dir={real_data_dir}", "--only=loso", "--seeds=1",
       f"--set=data.speech_splits=('loso:{speaker}',)",
       "--set=image.epochs=1", "--set=speech.steps=20",
       "--set=train.steps=20", "--set=train.steps_per_chunk=10",
       "--set=eval.trials=10")
  split = f"loso:{speaker}"
  study = json.loads((workdir / "study.json").read_text())
  assert study["skipped"] == {}
  [summary] = study["summaries"]
  assert summary["name"] == "loso" and summary["seeds"] == 1
  assert list(summary["splits"]) == [split]
  run = json.loads((workdir / "loso" / split / "seed_0" / "result.json")
                   .read_text())
  assert run["split"] == split and run["seed"] == 0 and run["members"] == 1
  assert summary["splits"][split]["annotation"]["mean"] == run["annotation"]
  assert summary["average"]["speech_classifier"]["mean"] == run[
      "speech_classifier_accuracy"]
  # Annotation: `trials` images of each digit, each given one class.
  assert np.sum(run["annotation_confusion"], 1).tolist() == [10] * 10

  # The speech classifier's test set: george's recordings, from the loader.
  cfg = study_loso.get_config()
  loaded = study_pipeline.load_data(cfg, real_data_dir)
  speech = loaded.speech
  present = [c for c in sources.CORPORA if (real_data_dir / c).is_dir()]
  assert sorted(set(speech.corpus.tolist())) == sorted(present)
  held_out = np.flatnonzero(speech.speakers == speaker)
  assert len(held_out) == sum(s == speaker for _, s, _ in fsdd)
  [stage] = list((workdir / "pretrained").glob("speech-*"))
  key = json.loads((stage / "seed_0" / "config.json").read_text())["data"]
  assert key["split"] == split and key["speech_source"] == speech.source
  net = nets.speech_net(cfg.speech, speech.num_classes)
  params = checkpoint.restore_params(
      stage / "seed_0", nets.init_params(net, np.zeros(
          (1, cfg.features.num_frames, cfg.features.num_bins), np.float32)))
  logits = predict.make_predict_fn(net)(params, loaded.feats[held_out])
  assert run["speech_classifier_accuracy"] == np.mean(
      logits.argmax(-1) == speech.labels[held_out])
  # Speech -> image R@1 is a count of george's recordings.
  r1 = run["recall"]["speech_to_image"]["R@1"] * len(held_out)
  assert abs(r1 - round(r1)) < 1e-9
