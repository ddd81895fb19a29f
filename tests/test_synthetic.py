"""Tests for the synthetic digit images and spoken digits."""

import sys

import numpy as np
import pytest
from scipy import ndimage

from avdigits.data import synthetic
from avdigits.data.types import OH, ImageSet, SpeechSet
from avdigits.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def images() -> ImageSet:
  return synthetic.synthetic_images(40, seed=0)


@pytest.fixture(scope="module")
def speech() -> SpeechSet:
  return synthetic.synthetic_speech(8, seed=0)


# ----------------------------------------------------------------- images ---


def test_images_shapes_dtypes_and_balance(images):
  assert images.images.shape == (400, 28, 28)
  assert images.images.dtype == np.uint8
  assert images.labels.dtype == np.int32
  np.testing.assert_array_equal(np.bincount(images.labels), [40] * 10)
  assert images.subset.shape == (400,)
  assert set(images.subset) == {""}
  assert images.source.startswith("synthetic-images(fonts=DejaVu")


def test_images_look_like_mnist(images):
  x = images.images
  assert (x.max((1, 2)) == 255).all()
  assert (x[:, 0, :] == 0).mean() > 0.95  # Black background at the border.
  rows, cols = (x > 0).any(2), (x > 0).any(1)
  height, width = rows.sum(1), cols.sum(1)
  assert 17 <= height.mean() <= 22 and height.max() <= 24
  assert 8 <= width.mean() <= 20
  centres = np.array([ndimage.center_of_mass(i.astype(float)) for i in x])
  np.testing.assert_allclose(centres.mean(0), [14.0, 14.0], atol=0.5)
  assert np.abs(centres - 14.0).max() < 3.0
  # Ink covers 10..35% of the image (MNIST: ~19%).
  assert 0.10 < (x > 0).mean() < 0.35


def test_images_deterministic_per_seed(images):
  again = synthetic.synthetic_images(40, seed=0)
  np.testing.assert_array_equal(again.images, images.images)
  np.testing.assert_array_equal(again.labels, images.labels)
  other = synthetic.synthetic_images(40, seed=1)
  assert (other.images != images.images).any(axis=(1, 2)).all()


def test_images_longer_set_starts_the_same():
  small = synthetic.synthetic_images(3, seed=4)
  large = synthetic.synthetic_images(5, seed=4)
  np.testing.assert_array_equal(large.images[:30], small.images)
  np.testing.assert_array_equal(large.labels[:30], small.labels)


def test_images_are_recognisable_digits(images):
  """Nearest class mean, fitted on seed 0, classifies seed 1 well.

  Measured: 80% (chance: 10%). Font, stroke and distortion differ per image,
  so this fails if the labels do not match what is drawn or if the glyphs are
  blank or mangled.
  """
  test = synthetic.synthetic_images(20, seed=1)

  def features(x):
    return x.reshape(len(x), -1).astype(np.float32) / 255.0

  train_x = features(images.images)
  means = np.stack([train_x[images.labels == d].mean(0) for d in range(10)])
  distances = ((features(test.images)[:, None] - means[None])**2).sum(-1)
  accuracy = (distances.argmin(1) == test.labels).mean()
  assert accuracy > 0.6, accuracy


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, None])
def test_images_bad_count(bad):
  with pytest.raises(ConfigError, match="num_per_class"):
    synthetic.synthetic_images(bad)


def test_images_without_fonts(monkeypatch, tmp_path):
  monkeypatch.setattr(synthetic, "_font_dir", lambda: tmp_path)
  synthetic._fonts.cache_clear()
  try:
    with pytest.raises(DataError, match=str(tmp_path)):
      synthetic.synthetic_images(1)
  finally:
    synthetic._fonts.cache_clear()


# ----------------------------------------------------------------- speech ---


def test_speech_shapes_and_balance(speech):
  assert len(speech) == 88 and len(speech.waveforms) == 88
  assert speech.num_classes == 11
  assert speech.sample_rate == 8000
  assert speech.labels.dtype == np.int32
  np.testing.assert_array_equal(np.bincount(speech.labels), [8] * 11)
  assert set(speech.subset) == {""}
  assert len(set(speech.utterance_ids)) == 88
  assert speech.source.startswith("synthetic-speech(espeak-ng")
  for wave in speech.waveforms:
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert np.abs(wave).max() <= 1.0


def test_speech_speakers(speech):
  assert len(set(speech.speakers)) >= 4
  assert all("/" in s for s in speech.speakers)


def test_speech_plausible_and_not_silent(speech):
  seconds = np.array([len(w) for w in speech.waveforms]) / speech.sample_rate
  assert seconds.min() >= 0.2 and seconds.max() <= 1.5, seconds
  for wave in speech.waveforms:
    peak = np.abs(wave).max()
    assert 0.4 < peak <= 1.0
    middle = wave[len(wave) // 3:2 * len(wave) // 3]
    edge = wave[:int(0.02 * speech.sample_rate)]  # Added silence + noise.
    assert np.sqrt((middle**2).mean()) > 5 * np.sqrt((edge**2).mean())


def test_speech_words_differ(speech):
  seconds = np.array([len(w) for w in speech.waveforms]) / speech.sample_rate
  # "zero" has two syllables, "oh" one.
  assert seconds[speech.labels == 0].mean() > 1.2 * seconds[
      speech.labels == OH].mean()
  # Same voice, rate and pitch: different words, different sounds.
  zero = synthetic._utterance("zero", "en+m3", 170, 50, 50, 8000)
  oh = synthetic._utterance("oh", "en+m3", 170, 50, 50, 8000)
  assert len(zero) > 1.3 * len(oh)
  assert all("_zero_" in u for u in speech.utterance_ids[speech.labels == 0])
  assert all("_oh_" in u for u in speech.utterance_ids[speech.labels == OH])


def test_speech_deterministic(speech):
  synthetic._utterance.cache_clear()  # Synthesise again, not from the cache.
  again = synthetic.synthetic_speech(8, seed=0)
  for a, b in zip(speech.waveforms, again.waveforms, strict=True):
    assert a.tobytes() == b.tobytes()
  np.testing.assert_array_equal(again.speakers, speech.speakers)
  other = synthetic.synthetic_speech(8, seed=1)
  assert any(len(a) != len(b) or not np.array_equal(a, b)
             for a, b in zip(speech.waveforms, other.waveforms, strict=True))
  # A longer set with the same seed starts with the same utterances.
  longer = synthetic.synthetic_speech(9, seed=0)
  for a, b in zip(speech.waveforms, longer.waveforms[:88], strict=True):
    assert a.tobytes() == b.tobytes()


def test_speech_sample_rate():
  high = synthetic.synthetic_speech(1, sample_rate=16000, seed=3)
  low = synthetic.synthetic_speech(1, sample_rate=8000, seed=3)
  assert high.sample_rate == 16000
  for a, b in zip(high.waveforms, low.waveforms, strict=True):
    assert abs(len(a) - 2 * len(b)) <= 4


@pytest.mark.parametrize(("kwargs", "flag"), [
    ({"num_per_class": 0}, "num_per_class"),
    ({"num_per_class": 1, "sample_rate": 0}, "sample_rate"),
    ({"num_per_class": 1, "sample_rate": 8e3}, "sample_rate")])
def test_speech_bad_arguments(kwargs, flag):
  with pytest.raises(ConfigError, match=flag):
    synthetic.synthetic_speech(**kwargs)


def test_speech_unloadable_library(monkeypatch, tmp_path):
  fake = tmp_path / "libespeak-ng.so"
  fake.write_bytes(b"not a shared library")
  _, data = synthetic._espeak_paths()
  monkeypatch.setattr(synthetic, "_espeak_paths", lambda: (fake, data))
  synthetic._utterance.cache_clear()
  with pytest.raises(DataError, match=f"{fake}: cannot load"):
    synthetic.synthetic_speech(1, seed=11)


def test_speech_without_espeakng_loader(monkeypatch):
  monkeypatch.setitem(sys.modules, "espeakng_loader", None)
  synthetic._espeak_paths.cache_clear()
  synthetic._utterance.cache_clear()
  try:
    with pytest.raises(DataError, match="espeakng_loader: not installed"):
      synthetic.synthetic_speech(1, seed=12)
  finally:
    synthetic._espeak_paths.cache_clear()


def test_library_copies_of_killed_processes_are_removed():
  import os
  import pathlib
  import subprocess
  import sys
  import tempfile

  from avdigits.data import synthetic
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  tmp = pathlib.Path(tempfile.gettempdir())
  stale = tmp / f"avdigits-espeak-{dead.stdout.strip()}-test"
  live = tmp / f"avdigits-espeak-{os.getpid()}-test"
  for folder in (stale, live):
    folder.mkdir(exist_ok=True)
    (folder / "libespeak-ng.so").write_bytes(b"x")
  try:
    synthetic._remove_stale_copies()
    assert not stale.exists() and live.exists()
  finally:
    for folder in (stale, live):
      if folder.exists():
        (folder / "libespeak-ng.so").unlink()
        folder.rmdir()
