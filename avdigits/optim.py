"""Optimisers from config: one place that turns a ConfigDict into optax."""

from __future__ import annotations

import optax

from avdigits.errors import ConfigError

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
SCHEDULES = ("constant", "cosine")


def make_optimizer(name: str, learning_rate: float, total_steps: int, *,
                   schedule: str = "constant", weight_decay: float = 0.0,
                   flag: str = "optimizer") -> optax.GradientTransformation:
  """Builds an optax optimiser; `flag` names the config field in errors."""
  if not learning_rate > 0:
    raise ConfigError(f"--config.{flag}: learning_rate must be > 0, got "
                      f"{learning_rate}")
  if schedule == "constant":
    lr = learning_rate
  elif schedule == "cosine":
    lr = optax.cosine_decay_schedule(learning_rate, max(total_steps, 1))
  else:
    raise ConfigError(f"--config.{flag}: unknown schedule {schedule!r}; "
                      f"choose one of {', '.join(SCHEDULES)}")
  if name == "sgd":
    return optax.sgd(lr)
  if name == "momentum":
    return optax.sgd(lr, momentum=0.9, nesterov=True)
  if name == "adam":
    return optax.adam(lr)
  if name == "adamw":
    return optax.adamw(lr, weight_decay=weight_decay)
  raise ConfigError(f"--config.{flag}: unknown optimizer {name!r}; choose one "
                    f"of {', '.join(OPTIMIZERS)}")
