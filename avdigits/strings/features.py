"""Digit strings as model inputs: log-mel frames and scaled number images,
padded to shared sizes, with masks and the word and digit spans in the
models' (downsampled) steps.

Sizes are rounded up to multiples of `FRAME_MULTIPLE` frames and
`COLUMN_MULTIPLE` columns, so a run compiles a handful of shapes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from avdigits import features
from avdigits.models.sequence import STRIDE
from avdigits.strings.data import HEIGHT, Strings

FRAME_MULTIPLE = 64
COLUMN_MULTIPLE = 16


@dataclasses.dataclass(frozen=True)
class StringArrays:
  """Model-ready strings.

  Attributes:
    speech: float32 [N, T, bins] log-mel, each string centred in T frames.
    speech_mask: bool [N, T], the string's own frames.
    frame_offset: int [N], where each string's first frame sits.
    images: float32 [N, 28, W] in [-0.5, 0.5], each number left-aligned.
    image_mask: bool [N, W].
    digits: int [N, L].
    word_steps: int [N, L, 2] or None, each word's [start, stop) in speech
      steps (frames / STRIDE, by frame centre).
    box_steps: int [N, L, 2], each digit's [start, stop) in image steps.
  """
  speech: np.ndarray
  speech_mask: np.ndarray
  frame_offset: np.ndarray
  images: np.ndarray
  image_mask: np.ndarray
  digits: np.ndarray
  word_steps: np.ndarray | None
  box_steps: np.ndarray

  def __len__(self) -> int:
    return len(self.speech)


def round_up(value: int, multiple: int) -> int:
  """`value` rounded up to a multiple of `multiple` (at least one)."""
  return max(multiple, -(-value // multiple) * multiple)


def speech_arrays(strings: Strings, feature_cfg, num_frames: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(features [N, T, bins], mask [N, T], first frame [N]) of the spoken
  strings, T = `num_frames` or the longest rounded up."""
  sr = strings.sample_rate
  totals = np.array([features.num_kaldi_frames(len(w), sr)
                     for w in strings.waveforms])
  t = num_frames or round_up(int(totals.max()), FRAME_MULTIPLE)
  feats = features.log_mel(
      strings.waveforms, sr, backend=feature_cfg.get("backend", "jax"),
      num_bins=feature_cfg.num_bins, num_frames=t, cmn=feature_cfg.cmn,
      cvn=feature_cfg.get("cvn", False))
  kept = np.minimum(totals, t)
  offset = (t - kept) // 2
  frame = np.arange(t)[None, :]
  mask = (frame >= offset[:, None]) & (frame < (offset + kept)[:, None])
  return feats, mask, offset


def image_arrays(strings: Strings, width: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
  """(images [N, 28, W] scaled, mask [N, W]), W = `width` or the widest
  rounded up; each number starts at column 0."""
  widths = np.array([im.shape[1] for im in strings.images])
  w = width or round_up(int(widths.max()), COLUMN_MULTIPLE)
  canvas = np.zeros((len(widths), HEIGHT, w), np.uint8)
  for i, image in enumerate(strings.images):
    canvas[i, :, :min(image.shape[1], w)] = image[:, :w]
  mask = np.arange(w)[None, :] < widths[:, None]
  return np.asarray(features.scale_images(canvas)), mask


def word_steps(strings: Strings, offset: np.ndarray) -> np.ndarray:
  """Each word's [start, stop) in speech steps: the steps whose centre
  frame's centre sample lies inside the word."""
  sr = strings.sample_rate
  shift = int(sr * 0.001 * features.FRAME_SHIFT_MS)
  window = int(sr * 0.001 * features.FRAME_LENGTH_MS)
  # Step s covers frames [s * STRIDE, (s + 1) * STRIDE) of the padded
  # array; its centre is frame s * STRIDE + (STRIDE - 1) / 2, and a frame
  # f's centre sample is (f - first) * shift + window / 2.
  spans = np.stack([np.asarray(w, np.float64) for w in strings.words])
  frames = (spans - window / 2) / shift + np.asarray(offset)[:, None, None]
  return np.ceil((frames - (STRIDE - 1) / 2) / STRIDE).astype(np.int64)


def box_steps(strings: Strings) -> np.ndarray:
  """Each digit's [start, stop) in image steps (STRIDE columns each): the
  steps that overlap the digit's box."""
  return np.stack([np.stack([b[:, 0] // STRIDE, -(-b[:, 1] // STRIDE)], -1)
                   for b in strings.boxes])


def to_arrays(strings: Strings, feature_cfg, *, num_frames: int | None = None,
              width: int | None = None) -> StringArrays:
  """Featurises spoken and written strings of one length."""
  speech, speech_mask, offset = speech_arrays(strings, feature_cfg,
                                              num_frames)
  images, image_mask = image_arrays(strings, width)
  return StringArrays(
      speech=speech, speech_mask=speech_mask, frame_offset=offset,
      images=images, image_mask=image_mask, digits=strings.digits,
      word_steps=(word_steps(strings, offset) if strings.words is not None
                  else None),
      box_steps=box_steps(strings))
