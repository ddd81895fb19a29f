"""In-memory datasets: the one shape every source produces."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from avdigits.errors import DataError

# Speech classes: 0..9 are the digits (0 spoken "zero"), 10 is "oh" (also 0).
OH = 10
SPEECH_CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six",
                      "seven", "eight", "nine", "oh")


def speech_class_to_digit(labels: np.ndarray) -> np.ndarray:
  """Maps speech classes (0..10) to the digit they denote ("oh" -> 0)."""
  labels = np.asarray(labels)
  return np.where(labels == OH, 0, labels)


@dataclasses.dataclass(frozen=True)
class ImageSet:
  """Digit images.

  Attributes:
    images: uint8 [N, 28, 28].
    labels: int32 [N], digits 0..9.
    subset: str [N], the source's own split per example ("train", "test") or
      "" where the source has none.
    source: human-readable provenance, e.g. "mnist-idx:/path" or "synthetic".
  """
  images: np.ndarray
  labels: np.ndarray
  subset: np.ndarray
  source: str

  def __len__(self) -> int:
    return len(self.labels)

  def take(self, index: np.ndarray) -> ImageSet:
    return dataclasses.replace(self, images=self.images[index],
                               labels=self.labels[index],
                               subset=self.subset[index])


@dataclasses.dataclass(frozen=True)
class SpeechSet:
  """Spoken digits as waveforms.

  Attributes:
    waveforms: list of float32 mono arrays in [-1, 1], all at `sample_rate`.
    sample_rate: Hz.
    labels: int32 [N], speech classes 0..10 (10 = "oh"; see OH).
    speakers: str [N], speaker ids.
    subset: str [N], the source's own split ("train"/"test"/"").
    utterance_ids: str [N], e.g. the file path relative to the corpus root.
    num_classes: 10 (no "oh", e.g. FSDD) or 11.
    source: human-readable provenance.
    corpus: str [N], the corpus of each utterance ("fsdd", "speech_commands",
      ...), or None where the loader did not say.
    partition: str [N], the corpus' own three-way split ("training",
      "validation", "testing"; "" where a corpus has none), or None.
  """
  waveforms: list
  sample_rate: int
  labels: np.ndarray
  speakers: np.ndarray
  subset: np.ndarray
  utterance_ids: np.ndarray
  num_classes: int
  source: str
  corpus: np.ndarray | None = None
  partition: np.ndarray | None = None

  def __len__(self) -> int:
    return len(self.labels)

  def take(self, index: np.ndarray) -> SpeechSet:
    index = np.asarray(index)
    return dataclasses.replace(
        self, waveforms=[self.waveforms[i] for i in index],
        labels=self.labels[index], speakers=self.speakers[index],
        subset=self.subset[index], utterance_ids=self.utterance_ids[index],
        corpus=None if self.corpus is None else self.corpus[index],
        partition=None if self.partition is None else self.partition[index])


def concatenate_speech(sets: Sequence[SpeechSet]) -> SpeechSet:
  """Several corpora, loaded at one sample rate, as one SpeechSet.

  Every set must carry `corpus`. Speaker and utterance ids are kept as they
  are unless one occurs in two corpora; then every id is prefixed with its
  corpus ("fsdd/jackson"). num_classes is the largest of the sets'.
  """
  if not sets:
    raise DataError("concatenate_speech: no SpeechSets")
  if len(sets) == 1:
    return sets[0]
  rates = {s.sample_rate for s in sets}
  if len(rates) != 1 or any(s.corpus is None for s in sets):
    raise DataError("concatenate_speech: the sets need one sample rate and "
                     "a corpus on every utterance")
  corpus = np.concatenate([s.corpus for s in sets]).astype(str)

  def joined(field: str) -> np.ndarray:
    values = np.concatenate([getattr(s, field) for s in sets]).astype(str)
    owners = {}
    for value, name in zip(values.tolist(), corpus.tolist(), strict=True):
      owners.setdefault(value, set()).add(name)
    if any(len(names) > 1 for names in owners.values()):
      values = np.char.add(np.char.add(corpus, "/"), values)
    return values

  return SpeechSet(
      waveforms=[w for s in sets for w in s.waveforms],
      sample_rate=sets[0].sample_rate,
      labels=np.concatenate([s.labels for s in sets]).astype(np.int32),
      speakers=joined("speakers"),
      subset=np.concatenate([s.subset for s in sets]).astype(str),
      utterance_ids=joined("utterance_ids"),
      num_classes=max(s.num_classes for s in sets),
      source="+".join(s.source for s in sets), corpus=corpus,
      partition=np.concatenate([
          np.full(len(s), "") if s.partition is None else s.partition
          for s in sets]).astype(str))
