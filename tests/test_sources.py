"""What "auto" picks for each data directory (avdigits.data.sources).

The loaders themselves are replaced by stubs that record what was asked
for; the choice between them is what is tested.
"""

import pytest

from avdigits.data import mnist, sources, spoken, tfds_sources
from avdigits.errors import DataError


@pytest.fixture
def calls(monkeypatch):
  """Every loader stubbed: returns and records (loader name, argument)."""
  log = []

  def stub(name):
    def load(*args, **kwargs):
      log.append((name, args[0] if args else None))
      return name
    return load

  monkeypatch.setattr(mnist, "load_mnist_dir", stub("mnist"))
  monkeypatch.setattr(tfds_sources, "load_tfds_mnist", stub("tfds_mnist"))
  monkeypatch.setattr(tfds_sources, "load_tfds_spoken_digit",
                      stub("tfds_spoken_digit"))
  for corpus in ("fsdd", "tidigits", "audiomnist"):
    monkeypatch.setattr(spoken, f"load_{corpus}", stub(corpus))
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
    (("mnist", "fsdd", "tidigits", "audiomnist"), "fsdd"),
    (("audiomnist", "tidigits"), "tidigits"),
    (("audiomnist",), "audiomnist"),
    (("fsdd",), "fsdd"),
])
def test_auto_speech_takes_the_first_corpus_present(tmp_path, calls,
                                                    folders, picked):
  assert _speech(_data_dir(tmp_path, *folders)) == picked
  assert calls == [(picked, tmp_path / picked)]


def test_auto_speech_without_a_data_dir_is_tfds(calls):
  assert _speech(None) == "tfds_spoken_digit"
  assert calls == [("tfds_spoken_digit", None)]


def test_auto_speech_with_no_corpus_names_what_it_looked_for(tmp_path,
                                                              calls):
  data_dir = _data_dir(tmp_path, "mnist")
  (tmp_path / "tidigits.zip").write_bytes(b"")   # a file is not a corpus
  with pytest.raises(DataError, match=rf"^{tmp_path}: no spoken-digit corpus "
                     r"found \(expected one of fsdd/, tidigits/, "
                     r"audiomnist/\)$"):
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
