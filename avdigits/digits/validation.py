"""Checks of a `reproduce` config that need no data."""

from __future__ import annotations

import ml_collections

from avdigits.data import splits
from avdigits.errors import ConfigError
from avdigits.settings import check_positive
from avdigits.training.align import AlignSchedule
from avdigits.validation import check_data, check_devices


def validate_reproduce(cfg: ml_collections.ConfigDict) -> None:
  """Checks a `reproduce` config (experiments/configs/*.py)."""
  check_positive("seeds", cfg.seeds)
  check_devices(cfg)
  check_positive("eval.trials", cfg.eval.trials)
  check_data(cfg)
  for hidden in cfg.speech.hidden_sizes:
    check_positive("speech.hidden_sizes", hidden)
  if cfg.align.speech_hidden not in cfg.speech.hidden_sizes:
    raise ConfigError(f"--config.align.speech_hidden="
                      f"{cfg.align.speech_hidden} is not among "
                      f"--config.speech.hidden_sizes="
                      f"{tuple(cfg.speech.hidden_sizes)}")
  AlignSchedule.from_config(cfg.align).validate("align")
  splits.check_run_split(cfg.data.speech_split)
