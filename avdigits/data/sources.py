"""Picks and loads the image and speech sources a config names.

`--data_dir` (or `$AVDIGITS_DATA_DIR`) points at a directory holding any of
`mnist/`, `fsdd/`, `tidigits/`, `audiomnist/`, `speech_commands/`; "auto"
takes MNIST and every speech corpus there (concatenated), and `data.speech`
may name several corpora joined by "+". Without a data directory, "auto"
means TFDS (`mnist`, `spoken_digit`).
Source modules are imported lazily so that `synthetic` never pulls in TFDS.
"""

from __future__ import annotations

import os
import pathlib

from avdigits.data.types import ImageSet, SpeechSet, concatenate_speech
from avdigits.errors import ConfigError, DataError

IMAGE_SOURCES = ("auto", "mnist", "tfds", "synthetic")
SPEECH_SOURCES = ("auto", "fsdd", "tidigits", "audiomnist", "speech_commands",
                  "tfds", "synthetic")
ENV_VAR = "AVDIGITS_DATA_DIR"


# Speech corpora under a data directory, in the order "auto" concatenates
# those present, and the rate each was recorded at (Hz).
CORPORA = ("fsdd", "tidigits", "audiomnist", "speech_commands")
NATIVE_RATES = {"fsdd": 8000, "tidigits": 20000, "audiomnist": 48000,
                "speech_commands": 16000}


def resolve_data_dir(flag_value: str | None) -> pathlib.Path | None:
  """The data directory from the flag, else the environment, else None."""
  value = flag_value or os.environ.get(ENV_VAR) or None
  if value is None:
    return None
  path = pathlib.Path(value).expanduser()
  origin = "--data_dir" if flag_value else f"${ENV_VAR}"
  if not path.is_dir():
    raise DataError(f"{origin}={value}: no such directory")
  if not os.access(path, os.R_OK | os.X_OK):
    raise DataError(f"{origin}={value}: directory is not readable")
  return path


def _no_data_dir(source: str) -> str:
  return (f"{source} needs a data directory: pass --data_dir or set "
          f"${ENV_VAR}")


def load_images(source: str, data_dir: pathlib.Path | None, *, seed: int,
                synthetic_per_class: int) -> ImageSet:
  """Loads the image source `source` (see IMAGE_SOURCES)."""
  if source not in IMAGE_SOURCES:
    raise ConfigError(f"--config.data.images={source!r}: choose one of "
                      f"{', '.join(IMAGE_SOURCES)}")
  if source == "auto":
    source = "mnist" if data_dir is not None else "tfds"
  if source == "synthetic":
    from avdigits.data.synthetic import synthetic_images
    return synthetic_images(synthetic_per_class, seed=seed)
  if source == "tfds":
    from avdigits.data.tfds_sources import load_tfds_mnist
    return load_tfds_mnist()
  if data_dir is None:
    raise DataError(_no_data_dir("--config.data.images=mnist"))
  from avdigits.data.mnist import load_mnist_dir
  return load_mnist_dir(data_dir / "mnist", seed=seed)


def parse_speech_source(source: str) -> tuple[str, ...]:
  """The corpora `data.speech` names: one of SPEECH_SOURCES, or corpora of
  CORPORA joined by "+" ("fsdd+speech_commands")."""
  parts = tuple(str(source).split("+"))
  if len(parts) == 1 and parts[0] in SPEECH_SOURCES:
    return parts
  if (len(parts) > 1 and all(p in CORPORA for p in parts)
      and len(set(parts)) == len(parts)):
    return parts
  raise ConfigError(f"--config.data.speech={source!r}: choose one of "
                    f"{', '.join(SPEECH_SOURCES)}, or corpora of "
                    f"{', '.join(CORPORA)} joined by '+' (e.g. "
                    "fsdd+speech_commands)")


def load_speech(source: str, data_dir: pathlib.Path | None, *, seed: int,
                sample_rate: int, synthetic_per_class: int,
                tidigits_children: bool = False) -> SpeechSet:
  """Loads the speech source `source` (see parse_speech_source).

  Several corpora (named with "+", or "auto" in a data directory holding
  more than one) are concatenated with `types.concatenate_speech`.
  """
  parts = parse_speech_source(source)
  if parts == ("auto",):
    if data_dir is None:
      parts = ("tfds",)
    else:
      parts = tuple(s for s in CORPORA if (data_dir / s).is_dir())
      if not parts:
        expected = ", ".join(f"{s}/" for s in CORPORA)
        raise DataError(f"{data_dir}: no spoken-digit corpus found (expected "
                        f"one of {expected})")
  if parts == ("synthetic",):
    from avdigits.data.synthetic import synthetic_speech
    return synthetic_speech(synthetic_per_class, sample_rate=sample_rate,
                            seed=seed)
  if parts == ("tfds",):
    from avdigits.data.tfds_sources import load_tfds_spoken_digit
    return load_tfds_spoken_digit(sample_rate=sample_rate)
  if data_dir is None:
    raise DataError(_no_data_dir(f"--config.data.speech={source}"))
  for corpus in parts:
    if not (data_dir / corpus).is_dir():
      present = [s for s in CORPORA if (data_dir / s).is_dir()]
      hint = (f"; run on another corpus with --config.data.speech="
              f"{present[0]} --config.data.sample_rate="
              f"{NATIVE_RATES[present[0]]}" if present else "")
      raise DataError(f"--config.data.speech={source}: {data_dir / corpus} "
                      f"not found{hint}")
  loaded = [_load_corpus(c, data_dir, sample_rate, tidigits_children)
            for c in parts]
  return loaded[0] if len(loaded) == 1 else concatenate_speech(loaded)


def _load_corpus(corpus: str, data_dir: pathlib.Path, sample_rate: int,
                 tidigits_children: bool) -> SpeechSet:
  """One corpus of a data directory (its loader tags every utterance)."""
  if corpus == "speech_commands":
    from avdigits.data.speech_commands import load_speech_commands
    return load_speech_commands(data_dir / corpus, sample_rate=sample_rate)
  from avdigits.data import spoken
  if corpus == "fsdd":
    return spoken.load_fsdd(data_dir / corpus, sample_rate=sample_rate)
  if corpus == "tidigits":
    return spoken.load_tidigits(data_dir / corpus, sample_rate=sample_rate,
                                children=tidigits_children)
  return spoken.load_audiomnist(data_dir / corpus, sample_rate=sample_rate)
