"""Checks of a study config that need no data."""

from __future__ import annotations

import ml_collections

from avdigits.errors import ConfigError
from avdigits.settings import check_positive
from avdigits.training.align import AlignSchedule
from avdigits.training.joint import JointSchedule
from avdigits.validation import check_data, check_devices

# The study's ways for a convnet to enter the cross-modal model, and its
# cross-modal trainers.
PARTS = ("pretrained_frozen", "random_frozen", "pretrained_tuned",
         "random_tuned")
TRAINERS = ("groups", "paper_sgd")


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
  check_positive("seeds", cfg.seeds)
  check_devices(cfg)
  check_positive("model.members", cfg.model.get("members", 1))
  check_data(cfg)
  if cfg.train.trainer == "paper_sgd":
    study_align_schedule(cfg).validate("train")
  else:
    JointSchedule.from_config(cfg.train).validate("train")


def study_align_schedule(cfg: ml_collections.ConfigDict) -> AlignSchedule:
  """The paper_sgd trainer's schedule: the train section, with the joint
  space's size and start from the model section."""
  return AlignSchedule.from_config(cfg.train, embed_dim=cfg.model.embed_dim,
                                   init_std=cfg.model.init_std)
