"""What "auto" picks for each data directory (avdigits.data.sources).

The loaders themselves are replaced by stubs that record what was asked
for; the choice between them is what is tested.
"""

import numpy as np
import pytest

from avdigits.data import mnist, sources, speech_commands, spoken, tfds_sources
from avdigits.data.types import SpeechSet
from avdigits.errors import ConfigError, DataError


def _one_utterance(corpus):
  """A one-utterance SpeechSet of `corpus` (its speaker: "ann")."""
  return SpeechSet(waveforms=[np.zeros(8, np.float32)], sample_rate=8000,
                   labels=np.array([3], np.int32), speakers=np.array(["ann"]),
                   subset=np.array(["train"]),
                   utterance_ids=np.array([f"{corpus}.wav"]),
                   num_classes=11 if corpus == "tidigits" else 10,
                   source=corpus, corpus=np.array([corpus]))


@pytest.fixture
def calls(monkeypatch):
  """Every loader stubbed: records (loader name, argument); image and TFDS
  stubs return their name, corpus stubs a one-utterance SpeechSet."""
  log = []

  def stub(name, result=None):
    def load(*args, **kwargs):
      log.append((name, args[0] if args else None))
      return name if result is None else result
    return load

  monkeypatch.setattr(mnist, "load_mnist_dir", stub("mnist"))
  monkeypatch.setattr(tfds_sources, "load_tfds_mnist", stub("tfds_mnist"))
  monkeypatch.setattr(tfds_sources, "load_tfds_spoken_digit",
                      stub("tfds_spoken_digit"))
  for corpus in ("fsdd", "tidigits", "audiomnist"):
    monkeypatch.setattr(spoken, f"load_{corpus}",
                        stub(corpus, _one_utterance(corpus)))
  monkeypatch.setattr(speech_commands, "load_speech_commands",
                      stub("speech_commands",
                           _one_utterance("speech_commands")))
  return log


def _data_dir(tmp_path, *folders):
  for folder in folders:
    (tmp_path / folder).mkdir()
  return tmp_path


def _speech(data_dir):
  return sources.load_speech("auto", data_dir, seed=0, sample_rate=8000,
                             synthetic_per_class=1)


def _images(data_dir):
  return sources.load_images("auto", data_dir, seed=0,
                             synthetic_per_class=1)


def test_auto_images_are_mnist_in_a_data_dir_else_tfds(tmp_path, calls):
  assert _images(_data_dir(tmp_path, "mnist")) == "mnist"
  assert _images(None) == "tfds_mnist"
  assert calls == [("mnist", tmp_path / "mnist"), ("tfds_mnist", None)]


@pytest.mark.parametrize("folders, picked", [
    (("mnist", "speech_commands", "fsdd", "tidigits", "audiomnist"),
     ("fsdd", "tidigits", "audiomnist", "speech_commands")),
    (("audiomnist", "tidigits"), ("tidigits", "audiomnist")),
    (("speech_commands", "fsdd"), ("fsdd", "speech_commands")),
    (("audiomnist",), ("audiomnist",)),
    (("fsdd",), ("fsdd",)),
])
def test_auto_speech_takes_every_corpus_present(tmp_path, calls, folders,
                                                picked):
  speech = _speech(_data_dir(tmp_path, *folders))
  assert calls == [(name, tmp_path / name) for name in picked]
  assert speech.source == "+".join(picked)
  assert list(speech.corpus) == list(picked)
  assert speech.num_classes == (11 if "tidigits" in picked else 10)
  # Every corpus has a speaker "ann": once several are combined, the ids
  # are told apart by their corpus.
  expected = (["ann"] if len(picked) == 1
              else [f"{name}/ann" for name in picked])
  assert list(speech.speakers) == expected


def test_corpora_joined_by_plus_load_in_the_order_named(tmp_path, calls):
  data_dir = _data_dir(tmp_path, "fsdd", "speech_commands", "audiomnist")
  speech = sources.load_speech("speech_commands+fsdd", data_dir, seed=0,
                               sample_rate=8000, synthetic_per_class=1)
  assert speech.source == "speech_commands+fsdd"
  assert list(speech.corpus) == ["speech_commands", "fsdd"]
  assert [name for name, _ in calls] == ["speech_commands", "fsdd"]


@pytest.mark.parametrize("source", [
    "fsdd+", "fsdd+fsdd", "fsdd+tfds", "synthetic+fsdd", "auto+fsdd",
    "speech-commands"])
def test_bad_speech_sources_name_the_flag(source):
  with pytest.raises(ConfigError, match=r"^--config.data.speech=.*: choose "
                     r"one of .*joined by '\+'"):
    sources.parse_speech_source(source)


def test_a_missing_corpus_of_a_combination_is_named(tmp_path, calls):
  data_dir = _data_dir(tmp_path, "fsdd")
  with pytest.raises(DataError, match=r"speech=fsdd\+speech_commands: "
                     r".*speech_commands not found"):
    sources.load_speech("fsdd+speech_commands", data_dir, seed=0,
                        sample_rate=8000, synthetic_per_class=1)
  assert calls == []


def test_auto_speech_without_a_data_dir_is_tfds(calls):
  assert _speech(None) == "tfds_spoken_digit"
  assert calls == [("tfds_spoken_digit", None)]


def test_auto_speech_with_no_corpus_names_what_it_looked_for(tmp_path,
                                                              calls):
  data_dir = _data_dir(tmp_path, "mnist")
  (tmp_path / "tidigits.zip").write_bytes(b"")   # a file is not a corpus
  with pytest.raises(DataError, match=rf"^{tmp_path}: no spoken-digit corpus "
                     r"found \(expected one of fsdd/, tidigits/, "
                     r"audiomnist/, speech_commands/\)$"):
    _speech(data_dir)
  assert calls == []


def test_a_named_corpus_that_is_missing_suggests_the_one_present(tmp_path,
                                                                  calls):
  data_dir = _data_dir(tmp_path, "audiomnist")
  with pytest.raises(DataError, match=r"fsdd not found; run on another "
                     r"corpus with --config.data.speech=audiomnist "
                     r"--config.data.sample_rate=48000$"):
    sources.load_speech("fsdd", data_dir, seed=0, sample_rate=8000,
                        synthetic_per_class=1)
  assert calls == []


def test_resolve_data_dir_prefers_the_flag_then_the_environment(
    tmp_path, monkeypatch):
  flag_dir, env_dir = _data_dir(tmp_path, "a", "b") / "a", tmp_path / "b"
  monkeypatch.setenv(sources.ENV_VAR, str(env_dir))
  assert sources.resolve_data_dir(str(flag_dir)) == flag_dir
  assert sources.resolve_data_dir(None) == env_dir
  monkeypatch.delenv(sources.ENV_VAR)
  assert sources.resolve_data_dir(None) is None
  monkeypatch.setenv(sources.ENV_VAR, str(tmp_path / "gone"))
  with pytest.raises(DataError, match=r"^\$AVDIGITS_DATA_DIR=.*/gone: no "
                     r"such directory$"):
    sources.resolve_data_dir(None)
