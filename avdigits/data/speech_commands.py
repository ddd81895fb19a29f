"""Google's Speech Commands (Warden 2018) as a spoken-digit corpus.

Layout: `{word}/{speaker}_nohash_{n}.wav` (mono 16-bit, 16 kHz, clips padded
or cut to 1 s), with `validation_list.txt` / `testing_list.txt` (the official
speaker-disjoint split) and `_background_noise_/` in the full release. Only
the ten digit words are read; "zero" is class 0, as in FSDD. Each clip's word
is cut out of the silence and room noise around it and brought to one
loudness, so that these clips look like FSDD's trimmed recordings.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import pathlib
import re

import numpy as np

from avdigits.data import audio
from avdigits.data.types import SpeechSet
from avdigits.errors import DataError

CORPUS = "speech_commands"
NATIVE_RATE = 16000
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven",
               "eight", "nine")
BACKGROUND_NOISE = "_background_noise_"
PARTITIONS = ("training", "validation", "testing")
LISTS = {"validation": "validation_list.txt", "testing": "testing_list.txt"}
# The corpus' own hashing rule (`which_set` in TensorFlow's speech_commands
# example): the speaker id's SHA-1, as a percentage.
VALIDATION_PERCENT = 10.0
TESTING_PERCENT = 10.0
_MAX_NUM_WAVS_PER_CLASS = 2 ** 27 - 1
# FSDD's trimmed recordings have a median RMS of -27 dBFS.
TARGET_RMS_DBFS = -27.0

_LAYOUT = "{word}/{speaker}_nohash_{n}.wav"
_NAME = re.compile(r"([0-9a-f]+)_nohash_(\d+)\.wav", re.IGNORECASE)
_FRAME_S = 0.02
_DIGITAL_SILENCE_DB = -100.0
_MAX_WORKERS = 8


def which_set(speaker: str, *, validation_percent: float = VALIDATION_PERCENT,
              testing_percent: float = TESTING_PERCENT) -> str:
  """The partition ("training", "validation", "testing") the corpus' hashing
  rule gives every clip of `speaker` (the hex prefix of its file names)."""
  hashed = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
  percent = ((hashed % (_MAX_NUM_WAVS_PER_CLASS + 1))
             * (100.0 / _MAX_NUM_WAVS_PER_CLASS))
  if percent < validation_percent:
    return "validation"
  if percent < validation_percent + testing_percent:
    return "testing"
  return "training"


def clip_label(path: str | os.PathLike) -> tuple[int, str, int]:
  """(digit class, speaker, take) of a clip `{word}/{speaker}_nohash_{n}.wav`.

  Raises:
    DataError: the clip's folder is not a digit word, or its name does not
      follow the layout.
  """
  path = pathlib.Path(path)
  word = path.parent.name.lower()
  if word not in DIGIT_WORDS:
    raise DataError(f"{path}: folder {path.parent.name!r} is not a digit word "
                    f"(expected Speech Commands layout {_LAYOUT}, word one "
                    f"of {', '.join(DIGIT_WORDS)})")
  match = _NAME.fullmatch(path.name)
  if match is None:
    raise DataError(f"{path}: Speech Commands file name does not match "
                    "{speaker}_nohash_{n}.wav")
  return DIGIT_WORDS.index(word), match[1].lower(), int(match[2])


def trim_word(x: np.ndarray, sample_rate: int, *, margin_s: float = 0.05,
              max_gap_s: float = 0.2) -> np.ndarray:
  """Cuts the silence and room noise around a clip's word.

  Energies of 20 ms frames are compared with the clip's noise floor (10th
  percentile of the frames that are not digital zeros) and its loudest
  frame: frames above max(peak - 30 dB, floor + a third of the range) are
  voiced. The voiced run holding the loudest frame, bridging gaps of up to
  `max_gap_s` (stop closures), is kept with `margin_s` either side. A clip
  whose loudest frame is under 6 dB above its floor is returned whole.
  """
  x = np.asarray(x, np.float32)
  energy, frame = audio.frame_energy_db(x, sample_rate, _FRAME_S)
  if len(energy) < 3:
    return x
  live = energy > _DIGITAL_SILENCE_DB
  if not live.any():
    return x
  floor, peak = float(np.percentile(energy[live], 10)), float(energy.max())
  if peak - floor < 6.0:
    return x
  voiced = np.flatnonzero(energy > max(peak - 30.0, floor + (peak - floor) / 3))
  runs = np.split(voiced, np.flatnonzero(
      np.diff(voiced) > round(max_gap_s / _FRAME_S) + 1) + 1)
  loudest = int(np.argmax(energy))
  run = next(r for r in runs if r[0] <= loudest <= r[-1])
  margin = int(margin_s * sample_rate)
  return x[max(run[0] * frame - margin, 0):
           min((run[-1] + 1) * frame + margin, len(x))]


def normalise_loudness(x: np.ndarray, *,
                       target_dbfs: float = TARGET_RMS_DBFS,
                       peak_limit: float = 0.99) -> np.ndarray:
  """Scales `x` to an RMS of `target_dbfs`, or less where its peak would
  pass `peak_limit`; silence is returned unchanged."""
  x = np.asarray(x, np.float32)
  if audio.is_silent(x):
    return x
  rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
  gain = min(10 ** (target_dbfs / 20) / rms,
             peak_limit / float(np.max(np.abs(x))))
  return (x * gain).astype(np.float32)


def load_clip(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
  """Reads a clip, trims it to its word, normalises its loudness and
  resamples it to `sample_rate` (unreadable audio: audio's DataError)."""
  x, rate = audio.read_audio(path)
  return audio.resample(normalise_loudness(trim_word(x, rate)), rate,
                        sample_rate)


def load_speech_commands(root: str | os.PathLike, *,
                         sample_rate: int = NATIVE_RATE) -> SpeechSet:
  """Loads the digit words of a Speech Commands tree.

  Args:
    root: the corpus directory (word folders, optional official lists).
    sample_rate: every clip is resampled to this rate (Hz).

  Returns:
    A SpeechSet with num_classes 10; speakers are the hex prefixes,
    utterance_ids `{word}/{file}`, corpus "speech_commands", partition the
    official lists' (when both are present) or the hashing rule's; subset is
    "test" for the testing partition and "train" for the others.

  Raises:
    DataError: a missing directory, no digit clips, a .wav directly in
      `root`, a badly named clip, unreadable audio, or only one of the lists.
  """
  root = pathlib.Path(root)
  if not root.is_dir():
    raise DataError(f"{root}: Speech Commands directory not found (expected "
                    f"layout {_LAYOUT})")
  stray = _wav_files(root)
  if stray:
    raise DataError(f"{stray[0]}: clip is not in a digit-word folder "
                    f"(expected Speech Commands layout {_LAYOUT})")
  keyed = []
  for folder in sorted(p for p in root.iterdir() if p.is_dir()):
    if folder.name.lower() not in DIGIT_WORDS:
      continue
    for path in _wav_files(folder):
      label, speaker, take = clip_label(path)
      keyed.append(((label, speaker, take),
                    (path, label, speaker, f"{folder.name}/{path.name}")))
  if not keyed:
    raise DataError(f"{root}: no digit-word clips (expected Speech Commands "
                    f"layout {_LAYOUT}, word one of {', '.join(DIGIT_WORDS)})")
  rows = [row for _, row in sorted(keyed, key=lambda k: k[0])]
  paths, labels, speakers, ids = zip(*rows, strict=True)
  partition = np.array(_partitions(root, ids, speakers))
  with concurrent.futures.ThreadPoolExecutor(
      min(_MAX_WORKERS, os.cpu_count() or 1)) as pool:
    waveforms = list(pool.map(lambda p: load_clip(p, sample_rate), paths))
  return SpeechSet(
      waveforms=waveforms, sample_rate=sample_rate,
      labels=np.array(labels, np.int32), speakers=np.array(speakers),
      subset=np.where(partition == "testing", "test", "train"),
      utterance_ids=np.array(ids), num_classes=10,
      source=f"{CORPUS}:{root}", corpus=np.full(len(ids), CORPUS),
      partition=partition)


def load_background_noise(root: str | os.PathLike, *,
                          sample_rate: int = NATIVE_RATE
                          ) -> dict[str, np.ndarray]:
  """`_background_noise_/*.wav` of a Speech Commands tree at `sample_rate`,
  keyed by file name (untrimmed, unscaled); {} when the folder is absent."""
  folder = pathlib.Path(root) / BACKGROUND_NOISE
  if not pathlib.Path(root).is_dir():
    raise DataError(f"{root}: Speech Commands directory not found")
  if not folder.is_dir():
    return {}
  return {p.name: audio.load_waveform(p, sample_rate)
          for p in _wav_files(folder)}


def _partitions(root: pathlib.Path, ids: tuple[str, ...],
                speakers: tuple[str, ...]) -> list[str]:
  """Each clip's partition: from the official lists when both are there,
  else from its speaker by `which_set`."""
  present = {name: root / file for name, file in LISTS.items()
             if (root / file).is_file()}
  if not present:
    return [which_set(s) for s in speakers]
  if len(present) == 1:
    [(name, path)] = present.items()
    missing = next(f for n, f in LISTS.items() if n != name)
    raise DataError(f"{path}: found without {missing}; the official split "
                    "needs both lists")
  listed = {}
  for name, path in present.items():
    try:
      lines = path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as e:
      raise DataError(f"{path}: cannot read the list: {e}") from e
    listed.update((line.strip().lower(), name) for line in lines)
  return [listed.get(uid.lower(), "training") for uid in ids]


def _wav_files(parent: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in parent.iterdir()
                if p.suffix.lower() == ".wav" and p.is_file())
