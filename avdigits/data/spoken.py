"""Spoken-digit corpora read from their directories into SpeechSets.

Each loader walks one corpus' on-disk layout, reads every kept utterance with
`audio.load_waveform` (WAV or NIST SPHERE, resampled to `sample_rate`) and
returns a SpeechSet in a deterministic (sorted) order.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import re

import numpy as np

from avdigits.data import audio
from avdigits.data.types import OH, SpeechSet
from avdigits.errors import DataError

_FSDD_LAYOUT = "recordings/{digit}_{speaker}_{index}.wav"
_FSDD_NAME = re.compile(r"(\d)_(.+)_(\d+)\.wav", re.IGNORECASE)
# Upstream FSDD: recordings 0-4 of each speaker and digit are the test set.
_FSDD_TEST_INDICES = range(5)

_TIDIGITS_LAYOUT = ("[data/{adults,children}/]{train,test}/"
                    "{man,woman,boy,girl}/{speaker}/{utt}.wav")
_TIDIGITS_ADULTS = ("man", "woman")
_TIDIGITS_CHILDREN = ("boy", "girl")
_TIDIGITS_SUBSETS = ("train", "test")
# Isolated-digit utterances: one digit character, then the take ("1a.wav").
_TIDIGITS_NAME = re.compile(r"([1-9oz])[a-z]\.wav", re.IGNORECASE)
# Connected-digit utterances: two digit characters or more, then the take.
_TIDIGITS_STRING = re.compile(r"([1-9oz]{2,})[a-z]\.wav", re.IGNORECASE)
_TIDIGITS_CLASS = {"z": 0, "o": OH, **{str(d): d for d in range(1, 10)}}

_AUDIOMNIST_LAYOUT = "data/{speaker}/{digit}_{speaker}_{index}.wav"

_MAX_WORKERS = 8


def load_fsdd(fsdd_dir: str | os.PathLike, *,
              sample_rate: int = 8000) -> SpeechSet:
  """Loads the Free Spoken Digit Dataset (digits 0..9, "zero" only).

  Args:
    fsdd_dir: the FSDD checkout (with `recordings/`) or the recordings
      directory itself.
    sample_rate: every waveform is resampled to this rate (Hz).

  Returns:
    A SpeechSet with num_classes 10; subset "test" for recording indices 0-4,
    "train" otherwise; utterance_ids are the file names.
  """
  root = _require_dir(fsdd_dir, "FSDD", _FSDD_LAYOUT)
  recordings = root / "recordings" if (root / "recordings").is_dir() else root
  keyed = []
  for path in _wav_files(recordings):
    match = _FSDD_NAME.fullmatch(path.name)
    if match is None:
      raise DataError(f"{path}: FSDD file name does not match "
                      "{digit}_{speaker}_{index}.wav")
    digit, speaker, index = int(match[1]), match[2], int(match[3])
    subset = "test" if index in _FSDD_TEST_INDICES else "train"
    keyed.append(((digit, speaker, index),
                  (path, digit, speaker, subset, path.name)))
  if not keyed:
    raise DataError(f"{recordings}: no .wav files (expected FSDD layout "
                    f"{_FSDD_LAYOUT})")
  rows = [row for _, row in sorted(keyed, key=lambda k: k[0])]
  return _build(rows, sample_rate, 10, f"fsdd:{root}", "fsdd")


def load_tidigits(tidigits_dir: str | os.PathLike, *, sample_rate: int = 8000,
                  children: bool = False) -> SpeechSet:
  """Loads the isolated-digit utterances of TIDIGITS (LDC93S10).

  Directory and file names may be in any case (the LDC discs use upper
  case). Multi-digit utterances and non-.wav files are skipped.

  Args:
    tidigits_dir: the directory holding `train/` and `test/`, or the LDC
      release root holding them under `data/adults/` and `data/children/`.
    sample_rate: every waveform is resampled to this rate (Hz).
    children: also load the boy and girl speakers (adults always load).

  Returns:
    A SpeechSet with num_classes 11 ("z" -> 0, "1".."9", "o" -> 10 = OH);
    speakers are "{group}/{speaker}"; subset is the top directory.
  """
  root = _require_dir(tidigits_dir, "TIDIGITS", _TIDIGITS_LAYOUT)
  groups = _TIDIGITS_ADULTS + (_TIDIGITS_CHILDREN if children else ())
  rows = [(path, _TIDIGITS_CLASS[match[1].lower()], speaker, subset, uid)
          for path, match, speaker, subset, uid in _tidigits_files(
              root, groups, _TIDIGITS_NAME)]
  if not rows:
    raise DataError(f"{root}: no isolated-digit TIDIGITS utterances for "
                    f"{'/'.join(groups)} (expected layout {_TIDIGITS_LAYOUT}, "
                    "utterances like 1a.wav, oa.wav, zb.wav)")
  return _build(rows, sample_rate, 11, f"tidigits:{root}", "tidigits")


def load_audiomnist(audiomnist_dir: str | os.PathLike, *,
                    sample_rate: int = 8000) -> SpeechSet:
  """Loads AudioMNIST (60 speakers, digits 0..9, 48 kHz originals).

  Args:
    audiomnist_dir: the AudioMNIST checkout (with `data/`) or `data/` itself.
    sample_rate: every waveform is resampled to this rate (Hz).

  Returns:
    A SpeechSet with num_classes 10 and subset "" (AudioMNIST has no split of
    its own; make speaker-disjoint splits downstream).
  """
  root = _require_dir(audiomnist_dir, "AudioMNIST", _AUDIOMNIST_LAYOUT)
  data_dir = root / "data" if (root / "data").is_dir() else root
  rows = []
  for speaker, speaker_dir in sorted(_subdirs(data_dir).items()):
    for path in _wav_files(speaker_dir):
      match = _FSDD_NAME.fullmatch(path.name)
      if match is None or match[2] != speaker_dir.name:
        raise DataError(f"{path}: AudioMNIST file name does not match "
                        f"{{digit}}_{speaker_dir.name}_{{index}}.wav")
      rows.append((path, int(match[1]), speaker, "",
                   path.relative_to(data_dir).as_posix()))
  if not rows:
    raise DataError(f"{data_dir}: no .wav files (expected AudioMNIST layout "
                    f"{_AUDIOMNIST_LAYOUT})")
  return _build(rows, sample_rate, 10, f"audiomnist:{root}",
                "audiomnist")


def _tidigits_files(root: pathlib.Path, groups: tuple[str, ...],
                    pattern: re.Pattern) -> list[tuple]:
  """(path, name match, speaker, subset, utterance id) of every TIDIGITS
  file of `groups` whose name matches `pattern`, in sorted order."""
  found = []
  for top in _tidigits_tops(root):
    subsets = _subdirs(top)
    for subset in _TIDIGITS_SUBSETS:
      group_dirs = _subdirs(subsets[subset]) if subset in subsets else {}
      for group in groups:
        speakers = _subdirs(group_dirs[group]) if group in group_dirs else {}
        for speaker, speaker_dir in sorted(speakers.items()):
          for path in _wav_files(speaker_dir):
            match = pattern.fullmatch(path.name)
            if match is not None:
              found.append((path, match, f"{group}/{speaker}", subset,
                            path.relative_to(root).as_posix()))
  return found


def load_tidigits_strings(tidigits_dir: str | os.PathLike, *,
                          sample_rate: int = 8000, children: bool = False
                          ) -> dict[int, tuple[SpeechSet, np.ndarray]]:
  """Loads TIDIGITS' connected-digit utterances (two digits or more), whose
  file names spell them ("o4z3a.wav": oh four zero three, take a).

  Returns:
    {length: (utterances as a SpeechSet with label -1, digits int [N,
    length] with "oh" and "zero" both 0)}.
  """
  root = _require_dir(tidigits_dir, "TIDIGITS", _TIDIGITS_LAYOUT)
  groups = _TIDIGITS_ADULTS + (_TIDIGITS_CHILDREN if children else ())
  by_length: dict[int, list] = {}
  for path, match, speaker, subset, uid in _tidigits_files(
      root, groups, _TIDIGITS_STRING):
    spelled = [_TIDIGITS_CLASS[c] for c in match[1].lower()]
    by_length.setdefault(len(spelled), []).append(
        ((path, -1, speaker, subset, uid),
         [0 if c == OH else c for c in spelled]))
  if not by_length:
    raise DataError(f"{root}: no connected-digit TIDIGITS utterances for "
                    f"{'/'.join(groups)} (expected layout {_TIDIGITS_LAYOUT}, "
                    "utterances like 12a.wav, o4z3b.wav)")
  return {length: (_build([r for r, _ in rows], sample_rate, 11,
                          f"tidigits-strings:{root}", "tidigits"),
                   np.array([d for _, d in rows], np.int32))
          for length, rows in sorted(by_length.items())}


def _tidigits_tops(root: pathlib.Path) -> list[pathlib.Path]:
  """root and any [data/]{adults,children} under it: dirs with train/test."""
  tops = [root]
  for parent in (root, _subdirs(root).get("data")):
    if parent is not None:
      below = _subdirs(parent)
      tops += [below[name] for name in ("adults", "children") if name in below]
  return tops


def _require_dir(path: str | os.PathLike, corpus: str,
                 layout: str) -> pathlib.Path:
  root = pathlib.Path(path)
  if not root.is_dir():
    raise DataError(f"{root}: {corpus} directory not found (expected layout "
                    f"{layout})")
  return root


def _subdirs(parent: pathlib.Path) -> dict[str, pathlib.Path]:
  """Subdirectories keyed by lower-cased name."""
  return {p.name.lower(): p for p in parent.iterdir() if p.is_dir()}


def _wav_files(parent: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in parent.iterdir()
                if p.suffix.lower() == ".wav" and p.is_file())


def _build(rows: list[tuple], sample_rate: int, num_classes: int,
           source: str, corpus: str) -> SpeechSet:
  """rows: (path, label, speaker, subset, utterance_id) per utterance."""
  paths, labels, speakers, subsets, ids = zip(*rows, strict=True)
  with concurrent.futures.ThreadPoolExecutor(
      min(_MAX_WORKERS, os.cpu_count() or 1)) as pool:
    waveforms = list(pool.map(
        lambda p: audio.load_waveform(p, sample_rate), paths))
  return SpeechSet(waveforms=waveforms, sample_rate=sample_rate,
                   labels=np.array(labels, np.int32),
                   speakers=np.array(speakers), subset=np.array(subsets),
                   utterance_ids=np.array(ids), num_classes=num_classes,
                   source=source, corpus=np.full(len(ids), corpus))
