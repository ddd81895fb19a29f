"""Training the string model on pairs alone: each step draws fresh spoken
strings and number images from the training utterances and images
(`strings.data.training_batch`, a function of the seed and step), and one
jitted Adam step lowers the symmetric contrastive loss of their matchmaps.
The steps run in `loop.train_in_chunks`, so a stage resumes exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from avdigits import matchmap, settings
from avdigits.errors import ConfigError
from avdigits.models.sequence import StringModel, downsample_mask
from avdigits.strings import data as strings_data
from avdigits.strings import features as strings_features
from avdigits.training import loop, optim
from avdigits.training.workdir import Stage


@dataclasses.dataclass(frozen=True)
class StringSchedule:
  """How the string model trains (a config's `strings` section)."""
  batch_size: int = 32
  steps: int = 5000
  steps_per_chunk: int = 250
  optimizer: str = "adam"
  learning_rate: float = 2e-3
  lr_schedule: str = "cosine"
  train_lengths: tuple[int, ...] = (1, 2, 3, 4)
  pooling: str = "ordered_both"
  temperature: float = 0.1
  siblings: bool = True

  @classmethod
  def from_config(cls, section: Any) -> StringSchedule:
    return settings.from_section(cls, section)

  def validate(self, flag: str = "strings") -> None:
    settings.check_fields_positive(self, flag, "batch_size", "steps",
                                   "steps_per_chunk", "temperature")
    if self.batch_size < 2:
      raise ConfigError(f"--config.{flag}.batch_size must be >= 2 (the "
                        f"other pairs of a batch are the negatives)")
    if not self.train_lengths:
      raise ConfigError(f"--config.{flag}.train_lengths is empty")
    for length in self.train_lengths:
      strings_data.check_length(length, f"--config.{flag}.train_lengths")
    matchmap.check_pooling(self.pooling, f"{flag}.pooling")
    optim.validate(self.optimizer, self.learning_rate,
                   schedule=self.lr_schedule, flag=flag)


def model_inputs(arrays: strings_features.StringArrays
                 ) -> tuple[np.ndarray, ...]:
  """(speech, speech step mask, images, image step mask, digits)."""
  return (arrays.speech, step_mask(arrays.speech_mask), arrays.images,
          step_mask(arrays.image_mask), arrays.digits)


def step_mask(mask: np.ndarray) -> np.ndarray:
  """The models' step mask of an input mask (see `downsample_mask`)."""
  return np.asarray(downsample_mask(jnp.asarray(mask)))


def make_train_step(model: StringModel, tx: optax.GradientTransformation,
                    schedule: StringSchedule):
  """One jitted step: (state, speech, speech mask, images, image mask,
  digits) -> (state, loss)."""

  def loss_fn(params, speech, speech_mask, images, image_mask, digits):
    s, i = model.apply({"params": params}, speech, images)
    return matchmap.contrastive_loss(
        s, speech_mask, i, image_mask, digits, pooling=schedule.pooling,
        temperature=schedule.temperature).mean()

  @jax.jit
  def step(state, *batch):
    loss, grads = jax.value_and_grad(loss_fn)(state["params"], *batch)
    updates, opt_state = tx.update(grads, state["opt_state"],
                                   state["params"])
    return {"params": optax.apply_updates(state["params"], updates),
            "opt_state": opt_state, "step": state["step"] + 1}, loss

  return step


def train_strings(model: StringModel, pools: strings_data.Pools,
                  schedule: StringSchedule, feature_cfg, *, seed: int,
                  stage: Stage, show_progress: bool = False
                  ) -> dict[str, Any]:
  """Trains (or resumes) the string model; returns params, history and
  train_seconds. Each chunk's row holds its mean training loss."""
  schedule.validate()
  tx = optim.make_optimizer(schedule.optimizer, schedule.learning_rate,
                            schedule.steps, schedule=schedule.lr_schedule,
                            flag="strings")
  example = strings_features.to_arrays(
      strings_data.training_batch(pools, schedule.train_lengths[:1], 2,
                                  seed, 0), feature_cfg)
  params = model.init(jax.random.key(seed), example.speech[:1],
                      example.images[:1])["params"]
  state = {"params": params, "opt_state": tx.init(params),
           "step": jnp.zeros((), jnp.int32)}
  train_step = make_train_step(model, tx, schedule)

  def run_chunk(state, start, num_steps):
    losses = []
    for step in range(start, start + num_steps):
      batch = strings_features.to_arrays(
          strings_data.training_batch(pools, schedule.train_lengths,
                                      schedule.batch_size, seed, step,
                                      schedule.siblings),
          feature_cfg)
      state, loss = train_step(state, *model_inputs(batch))
      losses.append(loss)
    return state, jnp.stack(losses)

  out = loop.train_in_chunks(
      stage, state, steps=schedule.steps,
      steps_per_chunk=schedule.steps_per_chunk, run_chunk=run_chunk,
      summarise=lambda _, losses: {"train_loss": float(np.mean(losses))},
      flag="strings", show_progress=show_progress)
  return {"params": jax.device_get(out.state["params"]),
          "history": out.history, "train_seconds": out.train_seconds}
