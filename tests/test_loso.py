"""The speaker-independent protocol: `speech_split=loso` runs every speaker.

In-process on a tiny FSDD-layout tree written from eSpeak NG voices (three
"speakers") and synthetic digit images, so no ../shared is needed.
"""

import dataclasses
import pathlib

import numpy as np
import pytest
from scipy import stats
from scipy.io import wavfile

from avdigits.data import types, voices
from avdigits.digits import report, two_stage
from avdigits.errors import ConfigError
from avdigits.inputs import prepare
from avdigits.training import predict, stages
from experiments.configs import quick
from tests.conftest import snapshot

SPEAKERS = ("amy", "bob", "cat")


@pytest.fixture(scope="module")
def fsdd_dir(tmp_path_factory) -> pathlib.Path:
  root = tmp_path_factory.mktemp("data")
  folder = root / "fsdd" / "recordings"
  folder.mkdir(parents=True)
  bank = voices.voice_bank(3 * len(SPEAKERS), 10, sample_rate=8000, seed=5,
                           cache_dir=root / "cache")
  for i, (wave, label) in enumerate(zip(bank.waveforms, bank.labels,
                                        strict=True)):
    speaker = SPEAKERS[(i // 10) % len(SPEAKERS)]
    index = i // (10 * len(SPEAKERS))
    wavfile.write(folder / f"{label}_{speaker}_{index}.wav", 8000,
                  (wave * 20000).astype(np.int16))
  return root


def _config(**speech):
  c = quick.get_config()
  c.data.images = "synthetic"
  c.data.speech = "fsdd"
  c.data.speech_split = "loso"
  c.data.synthetic_images_per_class = 20
  c.image.batch_size, c.image.epochs = 16, 2
  c.speech.batch_size, c.speech.steps, c.speech.steps_per_chunk = 8, 10, 5
  c.speech.hidden_sizes, c.align.speech_hidden = (16,), 16
  c.align.steps, c.align.steps_per_chunk = 200, 100
  c.eval.trials = 5
  for key, value in speech.items():
    c.speech[key] = value
  return c


@pytest.fixture(scope="module")
def loso_run(fsdd_dir, tmp_path_factory):
  cfg = _config()
  workdir = tmp_path_factory.mktemp("loso")
  by_split, summary = two_stage.run_all(cfg, fsdd_dir, workdir, [0, 1],
                                       show_progress=False)
  return cfg, workdir, by_split, summary


def test_every_speaker_is_held_out_once_with_every_seed(loso_run):
  _, workdir, by_split, summary = loso_run
  assert list(by_split) == [f"loso:{s}" for s in SPEAKERS]
  assert summary["speech_split"] == "loso"
  assert summary["speakers"] == {"held_out_in_turn": list(SPEAKERS)}
  for spec, runs in by_split.items():
    assert [r["seed"] for r in runs] == [0, 1]
    name = spec.partition(":")[2]
    for seed in (0, 1):
      seed_dir = workdir / f"loso_{name}" / f"seed_{seed}"
      assert (seed_dir / "align" / "result.json").exists()
      assert not (seed_dir / "image").exists()    # shared, not retrained
  for seed in (0, 1):
    assert (workdir / f"seed_{seed}" / "image" / "result.json").exists()


def test_report_means_are_over_every_speaker_and_seed(loso_run):
  cfg, _, by_split, summary = loso_run
  runs = [r for split_runs in by_split.values() for r in split_runs]
  result = report.aggregate(
      runs, data=summary, config=cfg.to_dict(), seed=0, timings={},
      splits={s.partition(":")[2]: r for s, r in by_split.items()})
  assert result["seeds"] == [0, 1]
  # One image convnet per seed, shared by every split: counted once.
  assert result["image_classifier"]["per_seed"] == [
      r["image_test_accuracy"] for r in by_split["loso:amy"]]
  every = [r["annotation"]["accuracy"] for r in runs]
  assert len(every) == 6
  assert result["annotation"]["accuracy"] == pytest.approx(np.mean(every))
  # The 95% t-interval over all six (speaker, seed) runs.
  assert result["annotation"]["accuracy_ci95"] == pytest.approx(
      stats.t.ppf(0.975, 5) * np.std(every, ddof=1) / np.sqrt(6), abs=1e-12)
  assert set(result["splits"]) == set(SPEAKERS)
  for name, entry in result["splits"].items():
    mine = [r for r in by_split[f"loso:{name}"]]
    assert entry["retrieval"]["accuracy"] == pytest.approx(
        np.mean([r["retrieval"]["accuracy"] for r in mine]))
    assert entry["speech_classifier"]["test_accuracy"] == pytest.approx(
        np.mean([r["speech_test_accuracy"] for r in mine]))
  text = report.markdown(result, "cmd")
  assert "| amy |" in text and "held-out speaker" in text


def test_rerun_restores_every_finished_stage(loso_run, fsdd_dir,
                                             monkeypatch):
  cfg, workdir, by_split, _ = loso_run
  before = snapshot(workdir)

  def no_training(*args, **kwargs):
    raise AssertionError("a finished stage was trained again")

  monkeypatch.setattr(stages, "train_classifier", no_training)
  monkeypatch.setattr(two_stage, "train_alignment", no_training)
  again, _ = two_stage.run_all(cfg, fsdd_dir, workdir, [0, 1],
                              show_progress=False)
  for spec, runs in by_split.items():
    for first, second in zip(runs, again[spec], strict=True):
      assert first["annotation"] == second["annotation"]
      assert first["speech_test_accuracy"] == second["speech_test_accuracy"]
  # Checkpoints, parameters, metrics and results: not one byte rewritten.
  assert snapshot(workdir) == before


def test_trained_models_of_a_split_load_back(loso_run, fsdd_dir):
  cfg, workdir, by_split, _ = loso_run
  image, speech, aligner = two_stage.load_trained(
      cfg, workdir, 1, 10, speech_dir=workdir / "loso_bob")
  assert speech["dense2"]["kernel"].shape == (16, 16)
  # They are the models that run scored: evaluated again on bob, the same
  # numbers.
  data = prepare.prepare_data(cfg, fsdd_dir, split_override="loso:bob")
  again = predict.evaluate_models(cfg, data, image, speech, aligner, seed=1)
  run = by_split["loso:bob"][1]
  assert run["seed"] == 1
  for key in ("annotation", "retrieval", "recall", "image_test_accuracy",
              "speech_test_accuracy"):
    assert again[key] == run[key], key
  with pytest.raises(ConfigError, match="has not finished"):
    two_stage.load_trained(cfg, workdir, 1, 10,
                          speech_dir=workdir / "loso_nobody")


def test_held_out_speaker_never_trains(fsdd_dir):
  cfg = _config(speed_factors=(0.9,), vtlp_factors=(1.1,),
                channel_copies=1)
  corpora = prepare.load_corpora(cfg, fsdd_dir)
  data = prepare.prepare_data(cfg, fsdd_dir, corpora=corpora,
                               split_override="loso:bob")
  assert data.summary["speakers"] == {"train": ["amy", "cat"],
                                      "test": ["bob"]}
  real = data.summary["counts"]["train_utterances"]
  assert real == 60 and len(data.test_speech_labels) == 30
  assert data.summary["counts"]["train_utterances_expanded"] == 4 * real
  assert len(data.train_speech) == 4 * real


def test_loso_needs_two_speakers(fsdd_dir, tmp_path):
  lonely = tmp_path / "fsdd" / "recordings"
  lonely.mkdir(parents=True)
  for wav in (fsdd_dir / "fsdd" / "recordings").glob("*_amy_*.wav"):
    (lonely / wav.name).write_bytes(wav.read_bytes())
  cfg = _config()
  corpora = prepare.load_corpora(cfg, tmp_path)
  with pytest.raises(ConfigError, match="at least 2"):
    prepare.speech_split_names(cfg, corpora)


def test_loso_over_corpora_holds_out_the_first_corpus_speakers_only(
    fsdd_dir):
  """With FSDD and another corpus, "loso" holds out FSDD's speakers one by
  one; the other corpus's people always train."""
  cfg = _config()
  corpora = prepare.load_corpora(cfg, fsdd_dir)
  fsdd = corpora.speech
  other = dataclasses.replace(
      fsdd.take(np.arange(len(fsdd))),
      speakers=np.char.add("sc", fsdd.speakers.astype(str)),
      corpus=np.full(len(fsdd), "speech_commands"))
  both = types.concatenate_speech([fsdd, other])
  corpora = dataclasses.replace(corpora, speech=both)
  assert prepare.speech_split_names(cfg, corpora) == [
      "loso:amy", "loso:bob", "loso:cat"]
  cfg.data.speech = "fsdd"
  data = prepare.prepare_data(cfg, fsdd_dir, corpora=corpora,
                              split_override="loso:bob")
  assert data.summary["speakers"]["test"] == ["bob"]
  assert set(data.summary["speakers"]["train"]) == {
      "amy", "cat", "scamy", "scbob", "sccat"}
