"""Tests for avdigits.data.speech_commands on Speech Commands trees written
here, and once on the real sample when the data directory has it."""

import collections
import hashlib

import numpy as np
import pytest

from avdigits.data import sources, speech_commands
from avdigits.errors import DataError
from tests.conftest import requires_real_data
from tests.test_audio import riff_bytes

RATE = 16000


def _clip(seed: int, *, start_s: float = 0.35, stop_s: float = 0.65,
          level: float = 0.3, noise: float = 0.002) -> np.ndarray:
  """1 s at 16 kHz: a 440 Hz tone from start_s to stop_s in low noise."""
  rng = np.random.default_rng(seed)
  t = np.arange(RATE) / RATE
  tone = level * np.sin(2 * np.pi * 440.0 * t) * (
      (t >= start_s) & (t < stop_s))
  return tone + noise * rng.standard_normal(RATE)


def _write(path, x, rate=RATE):
  path.parent.mkdir(parents=True, exist_ok=True)
  ints = np.round(np.clip(x, -1, 1) * 32767).astype("<i2")
  path.write_bytes(riff_bytes(ints.tobytes(), rate=rate))


SPEAKERS = ("0a7c2a8d", "1b4c9b89", "9f869f70")


def _tree(root, speakers=SPEAKERS, words=speech_commands.DIGIT_WORDS):
  """Every word by every speaker (take 0; take 1 too for the first), plus
  words that are not digits, background noise and the corpus' text files."""
  for i, word in enumerate(words):
    for j, speaker in enumerate(speakers):
      for take in (0, 1) if j == 0 else (0,):
        _write(root / word / f"{speaker}_nohash_{take}.wav",
               _clip(100 * i + 10 * j + take))
  for word in ("yes", "marvin"):
    _write(root / word / f"{speakers[0]}_nohash_0.wav", _clip(7))
  _write(root / "_background_noise_" / "white_noise.wav",
         0.1 * np.random.default_rng(0).standard_normal(3 * RATE))
  (root / "_background_noise_" / "README.md").write_text("noise")
  (root / "LICENSE").write_text("CC BY 4.0")
  return root


def test_layout_words_speakers_and_ids(tmp_path):
  data = speech_commands.load_speech_commands(_tree(tmp_path),
                                              sample_rate=8000)
  assert len(data) == 40 and data.num_classes == 10
  assert data.sample_rate == 8000 and data.labels.dtype == np.int32
  np.testing.assert_array_equal(np.bincount(data.labels), [4] * 10)
  assert set(data.speakers) == set(SPEAKERS)
  assert set(data.corpus) == {"speech_commands"}
  # Sorted by class, speaker, take; ids are the layout's relative paths.
  assert list(data.utterance_ids[:5]) == [
      "zero/0a7c2a8d_nohash_0.wav", "zero/0a7c2a8d_nohash_1.wav",
      "zero/1b4c9b89_nohash_0.wav", "zero/9f869f70_nohash_0.wav",
      "one/0a7c2a8d_nohash_0.wav"]
  for label, uid in zip(data.labels, data.utterance_ids, strict=True):
    assert uid.split("/")[0] == speech_commands.DIGIT_WORDS[label]
  # "yes", "marvin" and the background noise are not digits.
  assert not any(uid.startswith(("yes/", "marvin/", "_background"))
                 for uid in data.utterance_ids)
  assert data.source == f"speech_commands:{tmp_path}"


def test_hashing_rule_partitions_by_speaker(tmp_path):
  speakers = tuple(f"{i:08x}" for i in range(0x5eed0000, 0x5eed0000 + 40))
  data = speech_commands.load_speech_commands(
      _tree(tmp_path, speakers=speakers, words=("three", "eight")),
      sample_rate=8000)
  by_speaker = collections.defaultdict(set)
  for speaker, part in zip(data.speakers, data.partition, strict=True):
    by_speaker[speaker].add(str(part))
  # Speaker-disjoint: every clip of a speaker in that speaker's partition.
  assert all(parts == {speech_commands.which_set(s)}
             for s, parts in by_speaker.items())
  assert set(data.partition) <= set(speech_commands.PARTITIONS)
  np.testing.assert_array_equal(
      data.subset, np.where(data.partition == "testing", "test", "train"))
  again = speech_commands.load_speech_commands(tmp_path, sample_rate=8000)
  np.testing.assert_array_equal(again.partition, data.partition)


def test_which_set_is_the_corpus_rule():
  # TensorFlow's which_set, written out: SHA-1 of the speaker id, modulo
  # 2**27, as a percentage of 2**27 - 1; validation below 10, testing
  # below 20.
  def expected(speaker):
    h = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    percent = (h % 2 ** 27) * (100.0 / (2 ** 27 - 1))
    return ("validation" if percent < 10 else "testing" if percent < 20
            else "training")
  speakers = [f"{i:08x}" for i in range(0, 2 ** 32, 2 ** 32 // 3000)]
  got = [speech_commands.which_set(s) for s in speakers]
  assert got == [expected(s) for s in speakers]
  counts = collections.Counter(got)
  assert counts["validation"] / len(got) == pytest.approx(0.1, abs=0.02)
  assert counts["testing"] / len(got) == pytest.approx(0.1, abs=0.02)
  # A speaker of the real sample that the released corpus tests on.
  assert speech_commands.which_set("0f250098") == "testing"


def test_official_lists_take_precedence_over_the_hash(tmp_path):
  _tree(tmp_path)
  hashed = {s: speech_commands.which_set(s) for s in SPEAKERS}
  # Lists that disagree with the hash for every speaker, and that name
  # clips of other words too (as the real lists do).
  moved = {s: "testing" if part != "testing" else "validation"
           for s, part in hashed.items()}
  lines = {"validation": ["yes/0a7c2a8d_nohash_0.wav"], "testing": []}
  for word in speech_commands.DIGIT_WORDS:
    for speaker, part in moved.items():
      lines[part].append(f"{word}/{speaker}_nohash_0.wav")
      if speaker == SPEAKERS[0]:
        lines[part].append(f"{word}/{speaker}_nohash_1.wav")
  for part, file in speech_commands.LISTS.items():
    (tmp_path / file).write_text("\n".join(lines[part]) + "\n")
  data = speech_commands.load_speech_commands(tmp_path, sample_rate=8000)
  assert [moved[s] for s in data.speakers] == list(data.partition)
  assert collections.Counter(data.subset)["test"] == sum(
      data.partition == "testing")


def test_clips_left_off_the_lists_are_training(tmp_path):
  _tree(tmp_path, words=("five",))
  (tmp_path / "validation_list.txt").write_text(
      "five/1b4c9b89_nohash_0.wav\n")
  (tmp_path / "testing_list.txt").write_text("")
  data = speech_commands.load_speech_commands(tmp_path, sample_rate=8000)
  assert dict(zip(data.utterance_ids, data.partition, strict=True)) == {
      "five/0a7c2a8d_nohash_0.wav": "training",
      "five/0a7c2a8d_nohash_1.wav": "training",
      "five/1b4c9b89_nohash_0.wav": "validation",
      "five/9f869f70_nohash_0.wav": "training"}


def test_one_list_without_the_other_is_an_error(tmp_path):
  _tree(tmp_path, words=("five",))
  (tmp_path / "testing_list.txt").write_text("five/1b4c9b89_nohash_0.wav\n")
  with pytest.raises(DataError, match=r"testing_list\.txt: found without "
                     r"validation_list\.txt"):
    speech_commands.load_speech_commands(tmp_path)


def test_trim_and_loudness_on_a_tone_in_noise():
  x = _clip(0, start_s=0.40, stop_s=0.70, level=0.05).astype(np.float32)
  trimmed = speech_commands.trim_word(x, RATE)
  # The tone (0.3 s) and 50 ms either side, to one 20 ms frame.
  assert len(trimmed) / RATE == pytest.approx(0.40, abs=0.021)
  start = next(i for i in range(len(x))
               if np.array_equal(x[i:i + 50], trimmed[:50]))
  assert start / RATE == pytest.approx(0.35, abs=0.021)
  loud = speech_commands.normalise_loudness(trimmed)
  rms_db = 20 * np.log10(np.sqrt(np.mean(loud.astype(np.float64) ** 2)))
  assert rms_db == pytest.approx(speech_commands.TARGET_RMS_DBFS, abs=0.1)
  # A quiet and a loud recording of one word come out alike.
  quiet = speech_commands.normalise_loudness(trimmed * 0.1)
  np.testing.assert_allclose(quiet, loud, atol=1e-5)


def test_trim_keeps_noise_only_and_peak_limits_loudness():
  noise = 0.01 * np.random.default_rng(1).standard_normal(RATE)
  assert len(speech_commands.trim_word(noise, RATE)) == RATE
  spiky = np.zeros(RATE, np.float32)
  spiky[::1000] = 0.5
  out = speech_commands.normalise_loudness(spiky)
  assert np.abs(out).max() == pytest.approx(0.99, abs=1e-6)
  silent = np.zeros(100, np.float32)
  assert not speech_commands.normalise_loudness(silent).any()


def test_loaded_clips_are_trimmed_normalised_and_resampled(tmp_path):
  _tree(tmp_path, words=("seven",))
  data = speech_commands.load_speech_commands(tmp_path, sample_rate=8000)
  for wave in data.waveforms:
    assert wave.dtype == np.float32
    assert len(wave) / 8000 == pytest.approx(0.40, abs=0.03)
    rms_db = 20 * np.log10(np.sqrt(np.mean(wave.astype(np.float64) ** 2)))
    assert rms_db == pytest.approx(speech_commands.TARGET_RMS_DBFS, abs=0.5)


def test_background_noise_when_present(tmp_path):
  assert speech_commands.load_background_noise(tmp_path) == {}
  _tree(tmp_path, words=("one",))
  noise = speech_commands.load_background_noise(tmp_path, sample_rate=8000)
  assert list(noise) == ["white_noise.wav"]
  assert len(noise["white_noise.wav"]) == 3 * 8000
  with pytest.raises(DataError, match="nowhere"):
    speech_commands.load_background_noise(tmp_path / "nowhere")


def test_fsdd_plus_speech_commands(tmp_path):
  _tree(tmp_path / "speech_commands", words=("zero", "nine"))
  for digit in (0, 9):
    for speaker in ("jackson", "theo"):
      _write(tmp_path / "fsdd" / "recordings" / f"{digit}_{speaker}_1.wav",
             _clip(digit)[5000:8000], rate=8000)
  data = sources.load_speech("fsdd+speech_commands", tmp_path, seed=0,
                             sample_rate=8000, synthetic_per_class=1)
  assert len(data) == 4 + 8 and data.num_classes == 10
  assert data.source == (f"fsdd:{tmp_path / 'fsdd'}+speech_commands:"
                         f"{tmp_path / 'speech_commands'}")
  assert list(data.corpus) == ["fsdd"] * 4 + ["speech_commands"] * 8
  assert set(data.speakers) == {"jackson", "theo", *SPEAKERS}
  assert list(data.partition[:4]) == [""] * 4
  assert set(data.subset) <= {"train", "test"}
  # Subsets of the concatenation keep every per-utterance field.
  part = data.take(np.array([0, 11]))
  assert list(part.corpus) == ["fsdd", "speech_commands"]
  assert part.utterance_ids[1] == data.utterance_ids[11]
  # "auto" in a data directory holding both takes both.
  auto = sources.load_speech("auto", tmp_path, seed=0, sample_rate=8000,
                             synthetic_per_class=1)
  assert auto.source == data.source and len(auto) == len(data)


def test_missing_or_empty_corpus_dir(tmp_path):
  with pytest.raises(DataError, match=r"nowhere: Speech Commands directory "
                     r"not found \(expected layout \{word\}/"):
    speech_commands.load_speech_commands(tmp_path / "nowhere")
  _write(tmp_path / "yes" / "0a7c2a8d_nohash_0.wav", _clip(0))
  with pytest.raises(DataError, match=rf"^{tmp_path}: no digit-word clips"):
    speech_commands.load_speech_commands(tmp_path)


def test_clip_outside_a_digit_word_folder(tmp_path):
  _tree(tmp_path, words=("two",))
  _write(tmp_path / "0a7c2a8d_nohash_5.wav", _clip(0))
  with pytest.raises(DataError, match=r"0a7c2a8d_nohash_5\.wav: clip is not "
                     r"in a digit-word folder"):
    speech_commands.load_speech_commands(tmp_path)
  with pytest.raises(DataError, match=r"folder 'yes' is not a digit word"):
    speech_commands.clip_label(tmp_path / "yes" / "0a7c2a8d_nohash_0.wav")
  assert speech_commands.clip_label(
      tmp_path / "two" / "0A7C2A8D_nohash_3.wav") == (2, "0a7c2a8d", 3)


def test_bad_names_and_unreadable_audio_name_the_file(tmp_path):
  _tree(tmp_path, words=("four",))
  _write(tmp_path / "four" / "take_two.wav", _clip(0))
  with pytest.raises(DataError, match=r"take_two\.wav: Speech Commands file "
                     r"name does not match"):
    speech_commands.load_speech_commands(tmp_path)
  (tmp_path / "four" / "take_two.wav").unlink()
  (tmp_path / "four" / "0a7c2a8d_nohash_0.wav").write_bytes(b"RIFF")
  with pytest.raises(DataError, match=r"0a7c2a8d_nohash_0\.wav: truncated "
                     r"WAV header"):
    speech_commands.load_speech_commands(tmp_path)


# ---------------------------------------------------------------- real data


@requires_real_data
def test_real_speech_commands_sample(real_data_dir):
  root = real_data_dir / "speech_commands"
  if not root.is_dir():
    pytest.skip(f"{root} is absent")
  data = speech_commands.load_speech_commands(root, sample_rate=8000)
  assert len(data) == 171 and len(set(data.speakers)) == 110
  np.testing.assert_array_equal(np.bincount(data.labels, minlength=10),
                                [16, 17, 18, 17, 18, 16, 18, 17, 17, 17])
  assert all(len(s) == 8 and int(s, 16) >= 0 for s in data.speakers)
  # Trimmed to the word (the corpus pads to 1 s), at one loudness.
  lengths = np.array([len(w) for w in data.waveforms]) / 8000
  assert np.median(lengths) < 0.7 and lengths.max() <= 1.0
  assert all(w.dtype == np.float32 and 0 < np.abs(w).max() <= 1
             for w in data.waveforms)
