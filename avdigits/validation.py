"""Every check of a config that needs no data, in one place, run before any
work: each settings type checks itself (`validate`), built from its section
as the trainers build it."""

from __future__ import annotations

from typing import Any

import ml_collections

from avdigits import devices, features, models, settings, speech_data
from avdigits.align import AlignSchedule
from avdigits.data import sources, splits
from avdigits.data.strings import check_length
from avdigits.errors import ConfigError
from avdigits.joint import JointSchedule
from avdigits.strings_eval import EvalSettings
from avdigits.strings_train import StringSchedule
from avdigits.train import ClassifierSchedule

# The study's ways for a convnet to enter the cross-modal model, and its
# cross-modal trainers.
PARTS = ("pretrained_frozen", "random_frozen", "pretrained_tuned",
         "random_tuned")
TRAINERS = ("groups", "paper_sgd")


def _positive(flag: str, value: Any) -> None:
  if not value > 0:
    raise ConfigError(f"--config.{flag} must be > 0, got {value}")


def _classifier(section: Any, flag: str) -> None:
  if "epochs" in section:
    _positive(f"{flag}.epochs", section.epochs)
  _positive(f"{flag}.batch_size", section.batch_size)
  ClassifierSchedule.from_config(section, num_train=section.batch_size
                                 ).validate(flag)
  if not 0 <= section.get("dropout", 0.0) < 1:
    raise ConfigError(f"--config.{flag}.dropout must be in [0, 1), got "
                      f"{section.dropout}")
  if section.get("pool", models.SpeechNet.pool) not in models.SPEECH_POOLS:
    raise ConfigError(f"--config.{flag}.pool={section.pool!r}: choose one "
                      f"of {', '.join(models.SPEECH_POOLS)}")


def _sources(cfg: ml_collections.ConfigDict) -> None:
  """The data and features sections."""
  _positive("data.sample_rate", cfg.data.sample_rate)
  if not 0 < cfg.data.test_fraction < 1:
    raise ConfigError(f"--config.data.test_fraction must be in (0, 1), got "
                      f"{cfg.data.test_fraction}")
  if cfg.data.images not in sources.IMAGE_SOURCES:
    raise ConfigError(f"--config.data.images={cfg.data.images!r}: choose "
                      f"one of {', '.join(sources.IMAGE_SOURCES)}")
  sources.parse_speech_source(cfg.data.speech)
  for flag in ("features.num_frames", "features.num_bins"):
    _positive(flag, cfg.features[flag.partition(".")[2]])
  if cfg.features.get("backend", "jax") not in features.BACKENDS:
    raise ConfigError(f"--config.features.backend={cfg.features.backend!r}: "
                      f"choose one of {', '.join(features.BACKENDS)}")


def _data(cfg: ml_collections.ConfigDict) -> None:
  _sources(cfg)
  speech_data.Expansion.from_config(cfg.speech).validate()
  _classifier(cfg.image, "image")
  _classifier(cfg.speech, "speech")


def _devices(cfg: ml_collections.ConfigDict) -> None:
  """The device settings: matrix-product precision, scanned steps."""
  if cfg.get("matmul_precision", "highest") not in devices.PRECISIONS:
    raise ConfigError(f"--config.matmul_precision={cfg.matmul_precision!r}: "
                      f"choose one of {', '.join(devices.PRECISIONS)}")
  for key in ("scan_steps", "parallel_seeds"):
    devices.on_accelerator(cfg.get(key, "auto"), key)


def validate_reproduce(cfg: ml_collections.ConfigDict) -> None:
  """Checks a `reproduce` config (experiments/configs/*.py)."""
  _positive("seeds", cfg.seeds)
  _devices(cfg)
  _positive("eval.trials", cfg.eval.trials)
  _data(cfg)
  for hidden in cfg.speech.hidden_sizes:
    _positive("speech.hidden_sizes", hidden)
  if cfg.align.speech_hidden not in cfg.speech.hidden_sizes:
    raise ConfigError(f"--config.align.speech_hidden="
                      f"{cfg.align.speech_hidden} is not among "
                      f"--config.speech.hidden_sizes="
                      f"{tuple(cfg.speech.hidden_sizes)}")
  AlignSchedule.from_config(cfg.align).validate("align")
  if cfg.data.speech_split != "loso":
    splits.parse_speech_split(cfg.data.speech_split)


def validate_strings(cfg: ml_collections.ConfigDict) -> None:
  """Checks a digit-strings config (experiments/configs/strings.py)."""
  _positive("seeds", cfg.seeds)
  _devices(cfg)
  _sources(cfg)
  StringSchedule.from_config(cfg.strings).validate()
  s = settings.from_section(EvalSettings, cfg.strings)
  if not s.test_lengths:
    raise ConfigError("--config.strings.test_lengths is empty")
  for length in s.test_lengths:
    check_length(length, "--config.strings.test_lengths")
  for name in ("test_strings", "reading_trials", "min_read_steps"):
    _positive(f"strings.{name}", getattr(s, name))
  if cfg.strings.get("test_speech", "built") not in ("built", "connected"):
    raise ConfigError(f"--config.strings.test_speech="
                      f"{cfg.strings.test_speech!r}: choose built or "
                      f"connected")
  if cfg.data.speech_split != "loso":
    splits.parse_speech_split(cfg.data.speech_split)


def validate_study(cfg: ml_collections.ConfigDict) -> None:
  """Checks a study experiment config (experiments/configs/study/*.py)."""
  for part in ("image", "speech"):
    if cfg.model[part] not in PARTS:
      raise ConfigError(f"--config.model.{part}={cfg.model[part]!r}: choose "
                        f"one of {', '.join(PARTS)}")
  if cfg.train.trainer not in TRAINERS:
    raise ConfigError(f"--config.train.trainer={cfg.train.trainer!r}: "
                      f"choose one of {', '.join(TRAINERS)}")
  if cfg.train.trainer == "paper_sgd" and not (
      cfg.model.image.endswith("frozen")
      and cfg.model.speech.endswith("frozen")):
    raise ConfigError("--config.train.trainer=paper_sgd trains the aligner "
                      "alone: both --config.model parts must be *_frozen")
  _positive("seeds", cfg.seeds)
  _devices(cfg)
  _positive("model.members", cfg.model.get("members", 1))
  _data(cfg)
  if cfg.train.trainer == "paper_sgd":
    study_align_schedule(cfg).validate("train")
  else:
    JointSchedule.from_config(cfg.train).validate("train")


def study_align_schedule(cfg: ml_collections.ConfigDict) -> AlignSchedule:
  """The paper_sgd trainer's schedule: the train section, with the joint
  space's size and start from the model section."""
  return AlignSchedule.from_config(cfg.train, embed_dim=cfg.model.embed_dim,
                                   init_std=cfg.model.init_std)
