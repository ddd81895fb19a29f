"""MNIST and the Free Spoken Digit Dataset through TensorFlow Datasets.

TFDS (and TensorFlow) are imported inside the loaders, so importing avdigits
never imports them. Without TFDS, or when the download fails (e.g. no
network), the loaders raise a one-line DataError naming the alternatives.
"""

from __future__ import annotations

import re

import numpy as np

from avdigits.data import audio
from avdigits.data.types import ImageSet, SpeechSet
from avdigits.errors import DataError

# Fixed-size batches: batch_size=-1 aborts the process under
# tfds.testing.mock_data (std::length_error in TensorFlow).
_BATCH = 4096
# TFDS spoken_digit keeps FSDD's file names; recordings 0-4 of each speaker
# and digit are FSDD's upstream test set.
_FSDD_NAME = re.compile(r"(\d)_(.+)_(\d+)\.wav", re.IGNORECASE)
_FSDD_TEST_INDICES = range(5)
_INT16_SCALE = 32768.0
_SPOKEN_DIGIT_RATE = 8000  # Hz, as TFDS spoken_digit stores it.


def load_tfds_mnist(data_dir: str | None = None) -> ImageSet:
  """MNIST's train (60,000) and test (10,000) splits, in that order.

  Args:
    data_dir: TFDS data directory; None uses TFDS' default
      (~/tensorflow_datasets), downloading and preparing MNIST there if
      needed.
  """
  tfds = _import_tfds("mnist", "images")
  images, labels, subsets = [], [], []
  for split in ("train", "test"):
    for batch in _load(tfds, "mnist", split, data_dir, "images",
                       batch_size=_BATCH):
      images.append(np.asarray(batch["image"], np.uint8).reshape(-1, 28, 28))
      labels.append(np.asarray(batch["label"], np.int32))
      subsets.append(np.full(len(batch["label"]), split))
  if not labels:
    raise DataError(f"{_source('mnist', data_dir)}: no examples")
  return ImageSet(images=np.concatenate(images),
                  labels=np.concatenate(labels),
                  subset=np.concatenate(subsets),
                  source=_source("mnist", data_dir))


def load_tfds_spoken_digit(data_dir: str | None = None,
                           sample_rate: int = 8000) -> SpeechSet:
  """FSDD from TFDS `spoken_digit` (a single "train" split upstream).

  Digit, speaker and recording index come from each example's file name,
  `{digit}_{speaker}_{index}.wav`; index 0-4 is subset "test", the rest
  "train" (FSDD's own convention).

  Args:
    data_dir: TFDS data directory (see load_tfds_mnist).
    sample_rate: waveforms are resampled to this rate (TFDS stores 8 kHz).
  """
  tfds = _import_tfds("spoken_digit", "speech")
  source = _source("spoken_digit", data_dir)
  waveforms, labels, speakers, subsets, ids = [], [], [], [], []
  for ex in _load(tfds, "spoken_digit", "train", data_dir, "speech"):
    name = _decode(ex["audio/filename"])
    match = _FSDD_NAME.fullmatch(name)
    if match is None:
      raise DataError(f"{source}: example file name {name!r} does not match "
                      "{digit}_{speaker}_{index}.wav")
    digit, speaker, index = int(match[1]), match[2], int(match[3])
    if int(ex["label"]) != digit:
      raise DataError(f"{source}: {name}: label {int(ex['label'])} "
                      f"disagrees with the file name's digit {digit}")
    x = np.asarray(ex["audio"], np.float32) / _INT16_SCALE
    waveforms.append(audio.resample(x, _SPOKEN_DIGIT_RATE, sample_rate))
    labels.append(digit)
    speakers.append(speaker)
    subsets.append("test" if index in _FSDD_TEST_INDICES else "train")
    ids.append(name)
  if not labels:
    raise DataError(f"{source}: no examples")
  order = np.argsort(np.array(ids), kind="stable")
  return SpeechSet(waveforms=[waveforms[i] for i in order],
                   sample_rate=sample_rate,
                   labels=np.array(labels, np.int32)[order],
                   speakers=np.array(speakers)[order],
                   subset=np.array(subsets)[order],
                   utterance_ids=np.array(ids)[order], num_classes=10,
                   source=source)


def _alternatives(modality: str) -> str:
  return ("use --data_dir (or AVDIGITS_DATA_DIR) pointing at a local data "
          "directory, or the synthetic source "
          f"(--config.data.{modality}=synthetic)")


def _import_tfds(name: str, modality: str):
  """tensorflow_datasets, or a DataError saying it is not installed."""
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise DataError(f"TFDS {name}: tensorflow-datasets is not installed "
                    f"(pip install avdigits[tfds]); {_alternatives(modality)}"
                    ) from e
  return tfds


def _load(tfds, name: str, split: str, data_dir: str | None, modality: str,
          **kwargs) -> list[dict]:
  """tfds.load's examples (or batches) as NumPy, every failure a DataError."""
  try:
    ds = tfds.load(name, split=split, data_dir=data_dir,
                   shuffle_files=False, **kwargs)
    return list(tfds.as_numpy(ds))
  except ImportError as e:
    reason = f"TensorFlow is not installed ({_first_line(e)})"
    raise DataError(f"TFDS {name}: {reason}; {_alternatives(modality)}"
                    ) from e
  except Exception as e:  # noqa: BLE001 - download errors have many types.
    where = f" in {data_dir}" if data_dir else ""
    raise DataError(f"TFDS {name}: cannot load or download{where} "
                    f"({type(e).__name__}: {_first_line(e)}); "
                    f"{_alternatives(modality)}") from e


def _first_line(e: BaseException, limit: int = 200) -> str:
  text = str(e).strip().splitlines()
  line = text[0] if text else ""
  return line if len(line) <= limit else line[:limit] + "..."


def _decode(value) -> str:
  if isinstance(value, bytes):
    return value.decode("utf-8", "replace")
  return str(value)


def _source(name: str, data_dir: str | None) -> str:
  return f"tfds:{name}" + (f"@{data_dir}" if data_dir else "")
