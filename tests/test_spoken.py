"""Tests for avdigits.data.spoken on tiny corpus trees written here."""

import collections
import warnings

import numpy as np
import pytest

from avdigits.data import spoken
from avdigits.errors import DataError
from tests.conftest import requires_real_data
from tests.test_audio import int24_bytes, riff_bytes, sphere_bytes


def _pcm(n: int, value: int) -> bytes:
  """n 16-bit samples: a ramp tagged by `value` so files are distinct."""
  return (np.arange(n) % 100 + value).astype("<i2").tobytes()


def _wav(path, n=80, value=0, rate=8000):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(riff_bytes(_pcm(n, value), rate=rate))


def _sphere(path, n=160, value=0, rate=16000):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(sphere_bytes(np.frombuffer(_pcm(n, value), "<i2").astype(
      ">i2").tobytes(), {"sample_rate": rate, "sample_n_bytes": 2,
                         "sample_count": n, "sample_byte_format": "10"}))


# ---------------------------------------------------------------- FSDD


def _fsdd_tree(root, speakers=("jackson", "theo"), indices=(0, 4, 5, 12)):
  for digit in range(10):
    for speaker in speakers:
      for index in indices:
        _wav(root / "recordings" / f"{digit}_{speaker}_{index}.wav",
             value=digit)


def test_fsdd_labels_speakers_and_split(tmp_path):
  _fsdd_tree(tmp_path)
  data = spoken.load_fsdd(tmp_path)
  assert len(data) == 80 and data.num_classes == 10
  assert data.sample_rate == 8000 and data.labels.dtype == np.int32
  np.testing.assert_array_equal(np.bincount(data.labels), [8] * 10)
  assert set(data.speakers) == {"jackson", "theo"}
  assert collections.Counter(data.subset) == {"test": 40, "train": 40}
  # Sorted by digit, speaker, numeric index (12 after 5).
  assert list(data.utterance_ids[:4]) == [
      "0_jackson_0.wav", "0_jackson_4.wav", "0_jackson_5.wav",
      "0_jackson_12.wav"]
  for wave, label, uid in zip(data.waveforms, data.labels, data.utterance_ids,
                              strict=True):
    assert uid.startswith(f"{label}_")
    assert wave.dtype == np.float32 and len(wave) == 80
    assert wave[0] == np.float32(label / 32768)


def test_fsdd_accepts_recordings_dir_and_resamples(tmp_path):
  _fsdd_tree(tmp_path, speakers=("lucas",), indices=(1,))
  data = spoken.load_fsdd(tmp_path / "recordings", sample_rate=16000)
  assert len(data) == 10 and data.sample_rate == 16000
  assert all(len(w) == 160 for w in data.waveforms)


@pytest.mark.parametrize("rate,channels,bits", [
    (16000, 2, 24), (44100, 1, 24), (11025, 2, 16), (48000, 1, 16)])
def test_fsdd_reads_any_rate_stereo_and_24_bit(tmp_path, rate, channels,
                                               bits):
  # Recordings from other microphones: whatever they are, they arrive as
  # mono float32 at the model's rate, with the same tone.
  t = np.arange(rate // 2) / rate
  mono = 0.5 * np.sin(2 * np.pi * 440.0 * t)
  ints = np.round(mono * (2 ** (bits - 1) - 1)).astype(np.int64)
  frames = np.repeat(ints[:, None], channels, axis=1).reshape(-1)
  payload = (int24_bytes(frames) if bits == 24
             else frames.astype("<i2").tobytes())
  path = tmp_path / "recordings" / "3_newvoice_0.wav"
  path.parent.mkdir(parents=True)
  path.write_bytes(riff_bytes(payload, rate=rate, channels=channels,
                              bits=bits))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "channels mixed down to mono"
    data = spoken.load_fsdd(tmp_path, sample_rate=8000)
  [wave] = data.waveforms
  assert data.sample_rate == 8000 and wave.dtype == np.float32
  assert abs(len(wave) - 4000) <= 1
  spectrum = np.abs(np.fft.rfft(wave))
  assert np.argmax(spectrum) * 8000 / len(wave) == pytest.approx(440, abs=3)
  assert np.abs(wave).max() == pytest.approx(0.5, abs=0.02)


def test_fsdd_bad_name_names_file_and_pattern(tmp_path):
  _fsdd_tree(tmp_path, speakers=("lucas",), indices=(1,))
  _wav(tmp_path / "recordings" / "ten_lucas.wav")
  with pytest.raises(DataError, match=r"ten_lucas\.wav.*\{digit\}_"):
    spoken.load_fsdd(tmp_path)


@pytest.mark.parametrize("loader,pattern", [
    (spoken.load_fsdd, "recordings/"),
    (spoken.load_tidigits, "man,woman"),
    (spoken.load_audiomnist, "data/"),
])
def test_missing_dir_names_dir_and_layout(tmp_path, loader, pattern):
  with pytest.raises(DataError, match=pattern) as info:
    loader(tmp_path / "nowhere")
  assert str(tmp_path / "nowhere") in str(info.value)


@pytest.mark.parametrize("loader", [spoken.load_fsdd, spoken.load_tidigits,
                                    spoken.load_audiomnist])
def test_empty_dir_raises(tmp_path, loader):
  (tmp_path / "notes.txt").write_text("no audio here")
  with pytest.raises(DataError, match=str(tmp_path)):
    loader(tmp_path)


def test_fsdd_bad_audio_names_the_file(tmp_path):
  _fsdd_tree(tmp_path, speakers=("lucas",), indices=(1,))
  (tmp_path / "recordings" / "3_lucas_1.wav").write_bytes(b"RIFF")
  with pytest.raises(DataError, match="3_lucas_1.wav"):
    spoken.load_fsdd(tmp_path)


# ---------------------------------------------------------------- TIDIGITS


def _tidigits_tree(root, upper=False):
  """Adults and children, SPHERE (16 kHz) and RIFF (8 kHz) utterances."""
  case = str.upper if upper else str
  for subset in ("train", "test"):
    for group, speaker in (("man", "ae"), ("woman", "bf"), ("boy", "cg"),
                           ("girl", "dh")):
      folder = root / case(subset) / case(group) / case(speaker)
      for i, digit in enumerate("123456789oz"):
        _sphere(folder / case(f"{digit}a.wav"), value=i)
      _wav(folder / case("zb.wav"), n=40, value=99)
      # Multi-digit utterances and other files are skipped.
      _sphere(folder / case("12za.wav"))
      _sphere(folder / case("o3a.wav"))
      (folder / case("notes.txt")).write_text("x")


@pytest.mark.parametrize("upper", [False, True])
def test_tidigits_isolated_digits_of_adults(tmp_path, upper):
  _tidigits_tree(tmp_path, upper=upper)
  data = spoken.load_tidigits(tmp_path)
  assert len(data) == 2 * 2 * 12 and data.num_classes == 11
  np.testing.assert_array_equal(np.bincount(data.labels, minlength=11),
                                [8] + [4] * 9 + [4])
  assert set(data.speakers) == {"man/ae", "woman/bf"}
  assert collections.Counter(data.subset) == {"train": 24, "test": 24}
  # SPHERE files at 16 kHz are resampled to 8 kHz, RIFF ones read as is.
  lengths = collections.Counter(len(w) for w in data.waveforms)
  assert lengths == {80: 44, 40: 4} and data.sample_rate == 8000
  ids = list(data.utterance_ids)
  oh = ids.index("TRAIN/MAN/AE/OA.WAV" if upper else "train/man/ae/oa.wav")
  zero = ids.index("TRAIN/MAN/AE/ZA.WAV" if upper else "train/man/ae/za.wav")
  assert data.labels[oh] == 10 and data.labels[zero] == 0


def test_tidigits_children(tmp_path):
  _tidigits_tree(tmp_path)
  data = spoken.load_tidigits(tmp_path, children=True, sample_rate=16000)
  assert len(data) == 2 * 4 * 12
  assert {s.split("/")[0] for s in data.speakers} == {
      "man", "woman", "boy", "girl"}
  assert {len(w) for w in data.waveforms} == {160, 80}


def test_tidigits_ldc_release_layout(tmp_path):
  """data/adults/{train,test}/... and data/children/{train,test}/..."""
  for top, group in (("adults", "man"), ("adults", "woman"),
                     ("children", "girl")):
    for subset in ("train", "test"):
      _sphere(tmp_path / "data" / top / subset / group / "xy" / "7a.wav")
  adults = spoken.load_tidigits(tmp_path)
  assert len(adults) == 4 and set(adults.speakers) == {"man/xy", "woman/xy"}
  everyone = spoken.load_tidigits(tmp_path, children=True)
  assert len(everyone) == 6 and set(everyone.labels) == {7}
  assert "data/children/test/girl/xy/7a.wav" in everyone.utterance_ids
  assert collections.Counter(everyone.subset) == {"train": 3, "test": 3}


def test_tidigits_shorten_file_is_reported(tmp_path):
  path = tmp_path / "train" / "man" / "ae" / "1a.wav"
  path.parent.mkdir(parents=True)
  path.write_bytes(sphere_bytes(b"\0" * 64, {
      "sample_rate": 20000, "sample_n_bytes": 2, "sample_byte_format": "01",
      "sample_coding": "pcm,embedded-shorten-v2.00"}))
  with pytest.raises(DataError, match=r"1a\.wav.*shorten.*sph2pipe"):
    spoken.load_tidigits(tmp_path)


# ---------------------------------------------------------------- AudioMNIST


def test_audiomnist_resamples_48k(tmp_path):
  for speaker in ("01", "02", "03"):
    for digit in range(10):
      for index in range(2):
        _wav(tmp_path / "data" / speaker / f"{digit}_{speaker}_{index}.wav",
             n=480, value=digit, rate=48000)
  (tmp_path / "data" / "audioMNIST_meta.txt").write_text("{}")
  data = spoken.load_audiomnist(tmp_path)
  assert len(data) == 60 and data.num_classes == 10
  assert set(data.subset) == {""} and set(data.speakers) == {"01", "02", "03"}
  np.testing.assert_array_equal(np.bincount(data.labels), [6] * 10)
  assert {len(w) for w in data.waveforms} == {80}
  assert data.utterance_ids[0] == "01/0_01_0.wav"


def test_audiomnist_speaker_mismatch(tmp_path):
  _wav(tmp_path / "data" / "01" / "3_02_0.wav")
  with pytest.raises(DataError, match=r"3_02_0\.wav.*_01_"):
    spoken.load_audiomnist(tmp_path)


# ---------------------------------------------------------------- real data


@requires_real_data
def test_real_fsdd(real_data_dir):
  data = spoken.load_fsdd(real_data_dir / "fsdd")
  assert len(data) == 2500 and data.num_classes == 10
  assert len(set(data.speakers)) == 5
  np.testing.assert_array_equal(np.bincount(data.labels), [250] * 10)
  # Upstream: indices 0-4 of each (speaker, digit) are test, 10% of files.
  assert collections.Counter(data.subset) == {"test": 250, "train": 2250}
  assert all(w.dtype == np.float32 and 0 < np.abs(w).max() <= 1
             for w in data.waveforms)
