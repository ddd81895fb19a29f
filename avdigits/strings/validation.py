"""Checks of a digit-strings config that need no data."""

from __future__ import annotations

import ml_collections

from avdigits import settings
from avdigits.data import splits
from avdigits.errors import ConfigError
from avdigits.strings.data import check_length
from avdigits.strings.evaluate import EvalSettings
from avdigits.strings.train import StringSchedule
from avdigits.validation import check_devices, check_positive, check_sources


def validate_strings(cfg: ml_collections.ConfigDict) -> None:
  """Checks a digit-strings config (experiments/configs/strings.py)."""
  check_positive("seeds", cfg.seeds)
  check_devices(cfg)
  check_sources(cfg)
  StringSchedule.from_config(cfg.strings).validate()
  s = settings.from_section(EvalSettings, cfg.strings)
  if not s.test_lengths:
    raise ConfigError("--config.strings.test_lengths is empty")
  for length in s.test_lengths:
    check_length(length, "--config.strings.test_lengths")
  for name in ("test_strings", "reader_images", "reader_dev_strings"):
    check_positive(f"strings.{name}", getattr(s, name))
  if not s.reader_min_steps or min(s.reader_min_steps) < 1:
    raise ConfigError(f"--config.strings.reader_min_steps must be a "
                      f"non-empty tuple of steps >= 1, got "
                      f"{s.reader_min_steps!r}")
  for name in ("reader_duration_weight", "reader_word_bonus"):
    if not getattr(s, name):
      raise ConfigError(f"--config.strings.{name} is empty")
  if cfg.strings.get("test_speech", "built") not in ("built", "connected"):
    raise ConfigError(f"--config.strings.test_speech="
                      f"{cfg.strings.test_speech!r}: choose built or "
                      f"connected")
  if cfg.data.speech_split != "loso":
    splits.parse_speech_split(cfg.data.speech_split)
