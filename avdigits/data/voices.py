"""Many synthetic training voices from eSpeak NG, cached on disk.

`voice_bank` speaks the digit words with every English accent eSpeak NG has
crossed with its voice variants (about 100 timbres: male, female, old,
child-like, whispery, ...), each utterance at a random rate, pitch and pitch
range. The bank is a deterministic function of its settings and is written
once to `<cache_dir>/voices-<hash of the settings>.npz`: atomically (a
private temporary file, then a rename), so a run killed mid-write leaves no
entry, two runs sharing the cache at worst both synthesise and one rename
wins, and a later run reads the file instead of synthesising again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
import zipfile

import numpy as np
from absl import logging

from avdigits import files
from avdigits.data import synthetic
from avdigits.data.types import SPEECH_CLASS_NAMES, SpeechSet
from avdigits.errors import ConfigError, DataError, StorageError

# eSpeak NG's English languages (espeak-ng-data/lang/gmw/en*).
ACCENTS = ("en", "en-029", "en-GB-scotland", "en-GB-x-gbclan",
           "en-GB-x-gbcwmd", "en-GB-x-rp", "en-US", "en-US-nyc")
RATES = (120, 230)          # words per minute
PITCHES = (20, 80)          # eSpeak pitch 0..100
PITCH_RANGES = (20, 80)     # eSpeak pitch range 0..100
FORMAT_VERSION = 1


def default_cache_dir() -> pathlib.Path:
  """$AVDIGITS_CACHE_DIR, else ~/.cache/avdigits."""
  return pathlib.Path(os.environ.get("AVDIGITS_CACHE_DIR")
                      or pathlib.Path.home() / ".cache" / "avdigits")


@functools.cache
def variants() -> tuple[str, ...]:
  """eSpeak NG's voice variants (espeak-ng-data/voices/!v), sorted."""
  _, data = synthetic._espeak_paths()  # pylint: disable=protected-access
  folder = data / "voices" / "!v"
  names = sorted(p.name for p in folder.iterdir() if p.is_file())
  if not names:
    raise DataError(f"{folder}: no eSpeak NG voice variants")
  return tuple(names)


def _settings(num_per_class: int, num_classes: int, sample_rate: int,
              seed: int) -> dict:
  return {"num_per_class": num_per_class, "num_classes": num_classes,
          "sample_rate": sample_rate, "seed": seed, "accents": ACCENTS,
          "variants": variants(), "rates": RATES, "pitches": PITCHES,
          "pitch_ranges": PITCH_RANGES, "version": FORMAT_VERSION}


def cache_path(cache_dir: pathlib.Path, settings: dict) -> pathlib.Path:
  digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
  return pathlib.Path(cache_dir) / f"voices-{digest.hexdigest()[:16]}.npz"


def _synthesise(settings: dict) -> dict[str, np.ndarray]:
  count = settings["num_per_class"] * settings["num_classes"]
  labels = np.tile(np.arange(settings["num_classes"], dtype=np.int32),
                   settings["num_per_class"])
  draws = np.random.default_rng(settings["seed"]).random((count, 5))
  waves, speakers = [], []
  for label, u in zip(labels, draws, strict=True):
    accent = ACCENTS[int(u[0] * len(ACCENTS))]
    variant = settings["variants"][int(u[1] * len(settings["variants"]))]
    voice = f"{accent}+{variant}"
    rate = round(RATES[0] + u[2] * (RATES[1] - RATES[0]))
    pitch = round(PITCHES[0] + u[3] * (PITCHES[1] - PITCHES[0]))
    spread = round(PITCH_RANGES[0] + u[4] * (PITCH_RANGES[1]
                                             - PITCH_RANGES[0]))
    waves.append(synthetic._utterance(  # pylint: disable=protected-access
        SPEECH_CLASS_NAMES[label], voice, rate, pitch, spread,
        settings["sample_rate"]))
    speakers.append(voice)
  lengths = np.array([len(w) for w in waves], np.int64)
  return {"samples": np.concatenate(waves).astype(np.float32),
          "lengths": lengths, "labels": labels,
          "speakers": np.array(speakers)}


def _write_atomic(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
  files.write_atomic(path, lambda f: np.savez(f, **arrays),
                       "the voice cache", binary=True)


def _read(path: pathlib.Path) -> dict[str, np.ndarray] | None:
  """The cached arrays, or None when the entry is missing or unreadable
  (damaged: with a warning, as it is synthesised again)."""
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in ("samples", "lengths", "labels",
                                  "speakers")}
    if (arrays["lengths"].sum() != len(arrays["samples"])
        or not len(arrays["lengths"]) == len(arrays["labels"])
        == len(arrays["speakers"])):
      raise ValueError("its arrays disagree in length")
    return arrays
  except FileNotFoundError:
    return None
  except (OSError, KeyError, ValueError, EOFError,
          zipfile.BadZipFile) as error:
    logging.warning("voice cache %s is damaged (%s); synthesising it again",
                    path, str(error)[:100] or type(error).__name__)
    return None


def voice_bank(num_per_class: int, num_classes: int, *, sample_rate: int,
               seed: int = 0,
               cache_dir: str | os.PathLike | None = None) -> SpeechSet:
  """`num_per_class` synthetic utterances of each of the first
  `num_classes` digit words, read from the cache or synthesised into it.

  Returns a SpeechSet (speaker = the eSpeak voice) with subset "train".
  """
  for name, value in (("num_per_class", num_per_class),
                      ("num_classes", num_classes),
                      ("sample_rate", sample_rate)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
        or value < 1:
      raise ConfigError(f"voice bank {name}: must be a positive integer, got "
                        f"{value!r}")
  if num_classes > len(SPEECH_CLASS_NAMES):
    raise ConfigError(f"voice bank num_classes: at most "
                      f"{len(SPEECH_CLASS_NAMES)}, got {num_classes}")
  settings = _settings(int(num_per_class), int(num_classes),
                       int(sample_rate), int(seed))
  path = cache_path(pathlib.Path(cache_dir or default_cache_dir()), settings)
  arrays = _read(path)
  if arrays is None:
    arrays = _synthesise(settings)
    try:
      _write_atomic(path, arrays)
    except StorageError as e:
      raise DataError(f"{path.parent}: cannot write the voice cache "
                      f"({str(e).split(' while ')[0]}); free space or set "
                      f"$AVDIGITS_CACHE_DIR to a writable directory") from None
  waves = np.split(arrays["samples"], np.cumsum(arrays["lengths"])[:-1])
  count = len(arrays["labels"])
  return SpeechSet(
      waveforms=waves, sample_rate=int(sample_rate),
      labels=arrays["labels"].astype(np.int32),
      speakers=np.array([f"espeak/{s}" for s in arrays["speakers"]]),
      subset=np.full(count, "train"),
      utterance_ids=np.array([f"voice{i:05d}" for i in range(count)]),
      num_classes=int(num_classes),
      source=f"espeak-voices(n={num_per_class}/class;seed={seed})")
