"""Config checks every task shares (data, features, classifiers, devices),
run before any work: each settings type checks itself (`validate`), built
from its section as the trainers build it. Each task's own checks live in
its package (`digits.validation`, `strings.validation`,
`study.validation`)."""

from __future__ import annotations

from typing import Any

import ml_collections

from avdigits import features
from avdigits.data import sources
from avdigits.errors import ConfigError
from avdigits.inputs import speech_data
from avdigits.models import convnets
from avdigits.settings import check_positive
from avdigits.training import devices
from avdigits.training.classifier import ClassifierSchedule


def check_classifier(section: Any, flag: str) -> None:
  """A classifier section (image or speech)."""
  if "epochs" in section:
    check_positive(f"{flag}.epochs", section.epochs)
  check_positive(f"{flag}.batch_size", section.batch_size)
  ClassifierSchedule.from_config(section, num_train=section.batch_size
                                 ).validate(flag)
  if "features" in section:
    check_positive(f"{flag}.features", section.features)
  if not 0 <= section.get("dropout", 0.0) < 1:
    raise ConfigError(f"--config.{flag}.dropout must be in [0, 1), got "
                      f"{section.dropout}")
  if section.get("pool", convnets.SpeechNet.pool) not in convnets.SPEECH_POOLS:
    raise ConfigError(f"--config.{flag}.pool={section.pool!r}: choose one "
                      f"of {', '.join(convnets.SPEECH_POOLS)}")


def check_sources(cfg: ml_collections.ConfigDict) -> None:
  """The data and features sections."""
  check_positive("data.sample_rate", cfg.data.sample_rate)
  if not 0 < cfg.data.test_fraction < 1:
    raise ConfigError(f"--config.data.test_fraction must be in (0, 1), got "
                      f"{cfg.data.test_fraction}")
  if cfg.data.images not in sources.IMAGE_SOURCES:
    raise ConfigError(f"--config.data.images={cfg.data.images!r}: choose "
                      f"one of {', '.join(sources.IMAGE_SOURCES)}")
  sources.parse_speech_source(cfg.data.speech)
  for flag in ("features.num_frames", "features.num_bins"):
    check_positive(flag, cfg.features[flag.partition(".")[2]])
  if cfg.features.get("backend", "jax") not in features.BACKENDS:
    raise ConfigError(f"--config.features.backend={cfg.features.backend!r}: "
                      f"choose one of {', '.join(features.BACKENDS)}")


def check_data(cfg: ml_collections.ConfigDict) -> None:
  """Sources, features, the speech training set and both classifiers."""
  check_sources(cfg)
  speech_data.Expansion.from_config(cfg.speech).validate()
  check_classifier(cfg.image, "image")
  check_classifier(cfg.speech, "speech")


def check_devices(cfg: ml_collections.ConfigDict) -> None:
  """The device settings: matrix-product precision, scanned steps."""
  if cfg.get("matmul_precision", "highest") not in devices.PRECISIONS:
    raise ConfigError(f"--config.matmul_precision={cfg.matmul_precision!r}: "
                      f"choose one of {', '.join(devices.PRECISIONS)}")
  for key in ("scan_steps", "parallel_seeds"):
    devices.on_accelerator(cfg.get(key, "auto"), key)
