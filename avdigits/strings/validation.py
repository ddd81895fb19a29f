"""Checks of a digit-strings config that need no data."""

from __future__ import annotations

import jax
import ml_collections

from avdigits.data import splits
from avdigits.errors import ConfigError
from avdigits.matchmap import check_pooling
from avdigits.settings import check_fields_positive, check_positive
from avdigits.strings.data import check_length
from avdigits.strings.evaluate import EvalSettings
from avdigits.strings.train import StringSchedule
from avdigits.validation import check_devices, check_sources

# Device settings of the digits and study tasks that the strings task does
# not read: its steps are never scanned and its seeds run one at a time.
IGNORED = ("scan_steps", "parallel_seeds")


def validate_strings(cfg: ml_collections.ConfigDict) -> None:
  """Checks a digit-strings config (experiments/configs/strings.py) and
  that the job is one process."""
  check_one_process(jax.process_count())
  for key in IGNORED:
    if key in cfg:
      raise ConfigError(f"--config.{key}: the strings task does not read "
                        f"it (unscanned steps, one seed at a time); remove "
                        f"it")
  check_positive("seeds", cfg.seeds)
  check_devices(cfg)
  check_sources(cfg)
  StringSchedule.from_config(cfg.strings).validate()
  s = EvalSettings.from_config(cfg.strings)
  if cfg.strings.get("eval_pooling"):
    check_pooling(s.pooling, "strings.eval_pooling")
  if not s.test_lengths:
    raise ConfigError("--config.strings.test_lengths is empty")
  for length in s.test_lengths:
    check_length(length, "--config.strings.test_lengths")
  check_fields_positive(s, "strings", "test_strings", "reader_images",
                        "reader_dev_strings")
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
  splits.check_run_split(cfg.data.speech_split)
  if cfg.strings.get("dev", False) and cfg.strings.get(
      "test_speech", "built") == "connected":
    raise ConfigError("--config.strings.dev scores built strings of the "
                      "training part: not with --config.strings."
                      "test_speech=connected")


def check_one_process(process_count: int) -> None:
  """The strings task runs in one process: its training state lives on one
  local device, which Orbax cannot checkpoint across processes."""
  if process_count > 1:
    raise ConfigError(f"--num_processes={process_count}: the strings task "
                      f"runs as one process (its state lives on one local "
                      f"device); run it without --num_processes")
