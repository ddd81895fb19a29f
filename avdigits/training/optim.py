"""Optimisers from config: one place that turns a ConfigDict into optax."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax

from avdigits.errors import ConfigError

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "epoch_staircase")


def epoch_staircase(learning_rate: float, steps_per_epoch: float,
                    decay_rate: float) -> optax.Schedule:
  """learning_rate * decay_rate ** floor(step / steps_per_epoch): TensorFlow's
  exponential_decay(lr, step * batch, train_size, rate, staircase=True), as
  in its MNIST convolutional.py (0.01, 0.95 per epoch)."""

  def schedule(count):
    return learning_rate * decay_rate ** jnp.floor(count / steps_per_epoch)

  return schedule


def validate(name: str, learning_rate: float, *, schedule: str = "constant",
             decay_rate: float = 0.95, l2: float = 0.0,
             flag: str = "optimizer") -> None:
  """Raises ConfigError for settings `make_optimizer` cannot build."""
  if name not in OPTIMIZERS:
    raise ConfigError(f"--config.{flag}: unknown optimizer {name!r}; choose "
                      f"one of {', '.join(OPTIMIZERS)}")
  if schedule not in SCHEDULES:
    raise ConfigError(f"--config.{flag}: unknown schedule {schedule!r}; "
                      f"choose one of {', '.join(SCHEDULES)}")
  if not learning_rate > 0:
    raise ConfigError(f"--config.{flag}: learning_rate must be > 0, got "
                      f"{learning_rate}")
  if not l2 >= 0:
    raise ConfigError(f"--config.{flag}.l2 must be >= 0, got {l2}")
  if schedule == "epoch_staircase" and not 0 < decay_rate <= 1:
    raise ConfigError(f"--config.{flag}.lr_decay must be in (0, 1], got "
                      f"{decay_rate}")


def make_optimizer(name: str, learning_rate: float, total_steps: int, *,
                   schedule: str = "constant", weight_decay: float = 0.0,
                   steps_per_epoch: float = 1.0, decay_rate: float = 0.95,
                   l2: float = 0.0, l2_mask: Any = None,
                   flag: str = "optimizer") -> optax.GradientTransformation:
  """Builds an optax optimiser; `flag` names the config field in errors.

  "momentum" is heavy-ball momentum 0.9 (TensorFlow's MomentumOptimizer),
  "nesterov" its Nesterov form. `l2` > 0 adds l2 * param to the gradient of
  the parameters `l2_mask` selects (all when None) before the optimiser: the
  gradient of an L2 term l2 * sum(param ** 2) / 2 in the loss.
  """
  validate(name, learning_rate, schedule=schedule, decay_rate=decay_rate,
           l2=l2, flag=flag)
  if schedule == "constant":
    lr = learning_rate
  elif schedule == "cosine":
    lr = optax.cosine_decay_schedule(learning_rate, max(total_steps, 1))
  else:
    lr = epoch_staircase(learning_rate, steps_per_epoch, decay_rate)
  if name == "sgd":
    tx = optax.sgd(lr)
  elif name == "momentum":
    tx = optax.sgd(lr, momentum=0.9)
  elif name == "nesterov":
    tx = optax.sgd(lr, momentum=0.9, nesterov=True)
  elif name == "adam":
    tx = optax.adam(lr)
  else:
    tx = optax.adamw(lr, weight_decay=weight_decay)
  if l2 > 0:
    tx = optax.chain(optax.add_decayed_weights(l2, mask=l2_mask), tx)
  return tx
