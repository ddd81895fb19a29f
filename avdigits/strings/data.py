"""Digit strings built from isolated digits: spoken numbers and images of
handwritten numbers, with the word boundaries and digit boxes kept.

A spoken string is L utterances of one speaker (each already trimmed of
silence) joined with random pauses; a number image is L digit images set
left to right on one 28-pixel-high canvas with random spacing (slight
overlap included) and vertical jitter. Both are deterministic functions of
the generator they are drawn with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from avdigits.data.types import (
  SPEECH_CLASS_NAMES,
  ImageSet,
  SpeechSet,
  speech_class_to_digit,
)
from avdigits.errors import DataError

HEIGHT = 28
MAX_PAUSE_S = 0.25
GAP_RANGE = (-3, 4)       # pixels between two digits' ink; < 0 overlaps
MARGIN_RANGE = (2, 6)     # blank columns at each end of a number
MAX_JITTER = 2            # rows a digit may move up or down
MIN_LENGTH, MAX_LENGTH = 1, 12


@dataclasses.dataclass(frozen=True)
class Strings:
  """Paired spoken and written digit strings.

  Attributes:
    waveforms: float32 mono waveforms at `sample_rate`, one per string.
    sample_rate: Hz.
    words: int [L, 2] per string, each word's [start, stop) in samples;
      None where a corpus does not mark them (connected TIDIGITS).
    images: uint8 [28, W] per string (None without images).
    boxes: int [L, 2] per string, each digit's [left, right) columns.
    digits: int [N, L] digit values (0..9; "oh" and "zero" are both 0).
    speakers: str [N].
    utterance_ids: the source utterances (and images) of each string.
  """
  waveforms: list
  sample_rate: int
  words: list | None
  images: list | None
  boxes: list | None
  digits: np.ndarray
  speakers: np.ndarray
  utterance_ids: list

  def __len__(self) -> int:
    return len(self.waveforms)


def check_length(length: int, flag: str = "length") -> int:
  if not isinstance(length, (int, np.integer)) or not (
      MIN_LENGTH <= length <= MAX_LENGTH):
    raise DataError(f"{flag}: string length must be an int in "
                    f"[{MIN_LENGTH}, {MAX_LENGTH}], got {length!r}")
  return int(length)


def noise_floor(waveforms: Sequence[np.ndarray], sample_rate: int) -> float:
  """RMS of the quietest 20 ms of any of `waveforms`: the level of the
  recordings' own background."""
  frame = max(int(0.02 * sample_rate), 1)
  levels = [np.sqrt(np.mean(np.asarray(w[:len(w) // frame * frame],
                                       np.float64).reshape(-1, frame) ** 2,
                            axis=1)).min()
            for w in waveforms if len(w) >= frame]
  return float(min(levels)) if levels else 0.0


def join_words(waveforms: Sequence[np.ndarray], sample_rate: int,
               rng: np.random.Generator, max_pause_s: float = MAX_PAUSE_S
               ) -> tuple[np.ndarray, np.ndarray]:
  """(waveform, words [L, 2]): the utterances in order, a pause of
  uniform(0, max_pause_s) seconds between each two, filled with Gaussian
  noise at the utterances' `noise_floor` (digital silence would be a cue no
  recording has)."""
  pauses = rng.uniform(0.0, max_pause_s, len(waveforms) - 1)
  level = noise_floor(waveforms, sample_rate)
  pieces, words, at = [], [], 0
  for i, wave in enumerate(waveforms):
    if i:
      gap = int(round(pauses[i - 1] * sample_rate))
      pieces.append((rng.standard_normal(gap) * level).astype(np.float32))
      at += gap
    pieces.append(np.asarray(wave, np.float32))
    words.append((at, at + len(wave)))
    at += len(wave)
  return np.concatenate(pieces), np.asarray(words, np.int64)


def ink_columns(image: np.ndarray) -> tuple[int, int]:
  """[left, right) of the columns of `image` [28, 28] holding any ink (the
  whole image when blank)."""
  columns = np.flatnonzero(np.asarray(image).max(axis=0) > 0)
  if not len(columns):
    return 0, image.shape[1]
  return int(columns[0]), int(columns[-1]) + 1


def compose_number(images: Sequence[np.ndarray], rng: np.random.Generator,
                   gap: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(canvas uint8 [28, W], boxes [L, 2]): each image's inked columns set
  left to right with a random gap (GAP_RANGE, overlaps keep the brighter
  pixel), each moved up or down by up to MAX_JITTER rows, with random blank
  margins at both ends. A given `gap` fixes every gap and margin and leaves
  the digits where they are (the reading canvas)."""
  crops = []
  for image in images:
    left, right = ink_columns(image)
    shift = (0 if gap is not None
             else int(rng.integers(-MAX_JITTER, MAX_JITTER + 1)))
    crop = np.roll(np.asarray(image, np.uint8)[:, left:right], shift, axis=0)
    if shift > 0:
      crop[:shift] = 0
    elif shift < 0:
      crop[shift:] = 0
    crops.append(crop)
  if gap is None:
    gaps = rng.integers(GAP_RANGE[0], GAP_RANGE[1] + 1, max(len(crops) - 1, 0))
    margins = rng.integers(MARGIN_RANGE[0], MARGIN_RANGE[1] + 1, 2)
  else:
    gaps, margins = np.full(max(len(crops) - 1, 0), gap), np.full(2, gap)
  lefts, at = [], int(margins[0])
  for i, crop in enumerate(crops):
    if i:
      at = max(at + int(gaps[i - 1]), lefts[-1] + 1)
    lefts.append(at)
    at += crop.shape[1]
  canvas = np.zeros((HEIGHT, at + int(margins[1])), np.uint8)
  boxes = []
  for left, crop in zip(lefts, crops, strict=True):
    right = left + crop.shape[1]
    canvas[:, left:right] = np.maximum(canvas[:, left:right], crop)
    boxes.append((left, right))
  return canvas, np.asarray(boxes, np.int64)


@dataclasses.dataclass(frozen=True)
class Pools:
  """Which utterances and images strings are drawn from: per speaker, the
  indices of each digit's utterances; per digit, the indices of its images."""
  speech: SpeechSet
  images: ImageSet | None
  by_speaker: dict[str, list[np.ndarray]]
  by_digit: list[np.ndarray] | None

  @classmethod
  def build(cls, speech: SpeechSet, speech_index: np.ndarray,
            images: ImageSet | None, image_index: np.ndarray | None, *,
            length: int, what: str, one_speaker: bool = True) -> Pools:
    """Pools of `speech_index` and `image_index`; a DataError names the
    speaker or digit that cannot make strings of `length` (no utterance of
    a digit, fewer utterances than `length`, no image of a digit). Without
    `one_speaker`, a string's words may come from any speakers (sources
    whose every utterance has its own voice, such as the synthetic one)."""
    check_length(length)
    speech_index = np.asarray(speech_index, np.int64)
    if not len(speech_index):
      raise DataError(f"{what}: no utterances to build strings from")
    digits = speech_class_to_digit(speech.labels)
    who = (speech.speakers[speech_index] if one_speaker
           else np.full(len(speech_index), "any speaker"))
    hint = ("" if not one_speaker else
            "; with one voice per utterance, use "
            "--config.strings.one_speaker=false")
    by_speaker = {}
    for speaker in sorted(set(who.tolist())):
      own = speech_index[who == speaker]
      if len(own) < length:
        raise DataError(f"{what}: speaker {speaker} has {len(own)} "
                        f"utterance(s) in {speech.source}; strings of "
                        f"length {length} need at least {length}{hint}")
      by_digit = [own[digits[own] == d] for d in range(10)]
      missing = [SPEECH_CLASS_NAMES[d] for d in range(10)
                 if not len(by_digit[d])]
      if missing:
        raise DataError(f"{what}: speaker {speaker} has no utterance of "
                        f"{', '.join(missing)} in {speech.source}; every "
                        f"speaker needs every digit{hint}")
      by_speaker[speaker] = by_digit
    image_pools = None
    if images is not None:
      image_index = np.asarray(image_index, np.int64)
      image_pools = [image_index[images.labels[image_index] == d]
                     for d in range(10)]
      missing = [str(d) for d in range(10) if not len(image_pools[d])]
      if missing:
        raise DataError(f"{what}: no image of digit(s) {', '.join(missing)} "
                        f"in {images.source}")
    return cls(speech, images, by_speaker, image_pools)


def draw_strings(pools: Pools, length: int, count: int,
                 rng: np.random.Generator,
                 max_pause_s: float = MAX_PAUSE_S,
                 digits: np.ndarray | None = None) -> Strings:
  """`count` strings of `length` uniformly random digits (or the given
  `digits` [count, length]): each spoken by one speaker drawn uniformly (its
  utterances distinct where it has enough) and written with random images
  of those digits."""
  check_length(length)
  speech, images = pools.speech, pools.images
  speakers = list(pools.by_speaker)
  waves, words, canvases, boxes, ids = [], [], [], [], []
  if digits is None:
    digits = rng.integers(0, 10, (count, length))
  who = np.asarray(speakers)[rng.integers(0, len(speakers), count)]
  for row, speaker in zip(digits, who, strict=True):
    chosen = []
    for d in np.unique(row):
      pool = pools.by_speaker[speaker][d]
      need = int((row == d).sum())
      chosen.append((d, rng.choice(pool, need, replace=need > len(pool))))
    order = {int(d): list(picks) for d, picks in chosen}
    utterances = [order[int(d)].pop() for d in row]
    wave, spans = join_words([speech.waveforms[i] for i in utterances],
                             speech.sample_rate, rng, max_pause_s)
    waves.append(wave)
    words.append(spans)
    source = [str(speech.utterance_ids[i]) for i in utterances]
    if images is not None:
      picks = [int(rng.choice(pools.by_digit[int(d)])) for d in row]
      canvas, digit_boxes = compose_number(
          [images.images[i] for i in picks], rng)
      canvases.append(canvas)
      boxes.append(digit_boxes)
      source += [f"image:{i}" for i in picks]
    ids.append(source)
  return Strings(waves, speech.sample_rate, words,
                 canvases if images is not None else None,
                 boxes if images is not None else None,
                 digits.astype(np.int32), who, ids)


def pair_with_images(speech: SpeechSet, digits: np.ndarray, pools: Pools,
                     rng: np.random.Generator) -> Strings:
  """Spoken strings recorded whole (no word boundaries, e.g. TIDIGITS'
  connected digits), each paired with a number image of its `digits` [N, L]
  drawn from the pools' images."""
  canvases, boxes, ids = [], [], []
  for row, uid in zip(digits, speech.utterance_ids, strict=True):
    picks = [int(rng.choice(pools.by_digit[int(d)])) for d in row]
    canvas, digit_boxes = compose_number(
        [pools.images.images[i] for i in picks], rng)
    canvases.append(canvas)
    boxes.append(digit_boxes)
    ids.append([str(uid)] + [f"image:{i}" for i in picks])
  return Strings(list(speech.waveforms), speech.sample_rate, None, canvases,
                 boxes, np.asarray(digits, np.int32), speech.speakers, ids)


def with_siblings(digits: np.ndarray, rng: np.random.Generator
                  ) -> np.ndarray:
  """[2N, L]: the strings `digits` [N, L], then each once more with one
  position changed to another digit (its hardest negative)."""
  siblings = digits.copy()
  rows = np.arange(len(digits))
  position = rng.integers(0, digits.shape[1], len(digits))
  siblings[rows, position] = (digits[rows, position]
                              + rng.integers(1, 10, len(digits))) % 10
  return np.concatenate([digits, siblings])


def training_batch(pools: Pools, lengths: Sequence[int], batch_size: int,
                   seed: int, step: int, siblings: bool = False) -> Strings:
  """The fresh training strings of one step: a function of (seed, step)
  alone, so a resumed run sees the same strings. The step's length is drawn
  from `lengths`. With `siblings`, the second half of the batch repeats the
  first half's digit strings with one digit changed (`with_siblings`; new
  utterances and images throughout), so that telling strings apart takes
  every digit."""
  rng = np.random.default_rng([seed, 13, step])
  length = int(lengths[int(rng.integers(0, len(lengths)))])
  digits = None
  if siblings:
    half = rng.integers(0, 10, ((batch_size + 1) // 2, length))
    digits = with_siblings(half, rng)[:batch_size]
  return draw_strings(pools, length, batch_size, rng, digits=digits)
