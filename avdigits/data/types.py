"""In-memory datasets: the one shape every source produces."""

from __future__ import annotations

import dataclasses

import numpy as np

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
  """
  waveforms: list
  sample_rate: int
  labels: np.ndarray
  speakers: np.ndarray
  subset: np.ndarray
  utterance_ids: np.ndarray
  num_classes: int
  source: str

  def __len__(self) -> int:
    return len(self.labels)

  def take(self, index: np.ndarray) -> SpeechSet:
    index = np.asarray(index)
    return dataclasses.replace(
        self, waveforms=[self.waveforms[i] for i in index],
        labels=self.labels[index], speakers=self.speakers[index],
        subset=self.subset[index], utterance_ids=self.utterance_ids[index])
