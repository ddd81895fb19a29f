"""Classifier training: device-resident data, scanned jitted steps, resume.

Every chunk of `steps_per_chunk` optimiser steps runs as one compiled
`lax.scan`; the batch for global step s is a slice of a permutation of the
training set drawn from `fold_in(seed, epoch)`, so a run resumed from a
checkpoint at any chunk boundary takes exactly the same batches as an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from avdigits import losses, settings
from avdigits.errors import ConfigError
from avdigits.inputs import augment
from avdigits.training import devices, loop, optim
from avdigits.training.optim import make_optimizer
from avdigits.training.predict import make_predict_fn
from avdigits.training.workdir import Stage


@dataclasses.dataclass(frozen=True)
class ClassifierSchedule:
  """How long and how to train one classifier."""
  batch_size: int
  steps: int
  steps_per_chunk: int
  optimizer: str = "adam"
  learning_rate: float = 1e-3
  lr_schedule: str = "constant"
  weight_decay: float = 0.0
  augment: str = "none"
  max_shift: int = 0
  mixup: float = 0.0  # Beta(a, a) mixing of batch pairs; 0 = off
  # "epoch_staircase" decay: lr * lr_decay ** floor(step / steps_per_epoch).
  lr_decay: float = 0.95
  steps_per_epoch: float = 1.0
  l2_dense: float = 0.0  # L2 on the dense layers' weights and biases

  @classmethod
  def from_config(cls, section: Any, num_train: int) -> ClassifierSchedule:
    """The schedule a config section states.

    A section with `epochs` trains epochs * num_train // batch_size steps
    (TensorFlow's convolutional.py), one chunk and one learning-rate decay
    step per epoch; otherwise `steps` steps in chunks of `steps_per_chunk`
    (default: all in one chunk).
    """
    if "epochs" not in section:
      return settings.from_section(
          cls, section,
          steps_per_chunk=section.get("steps_per_chunk", section.steps))
    per_epoch = num_train / max(section.batch_size, 1)
    return settings.from_section(
        cls, section, steps=max(section.epochs * num_train
                                // max(section.batch_size, 1), 1),
        steps_per_chunk=max(int(per_epoch), 1), steps_per_epoch=per_epoch)

  def validate(self, flag: str, num_train: int | None = None) -> None:
    """Raises ConfigError naming `--config.<flag>.*` for a bad setting;
    with `num_train`, also for a batch larger than the training set."""
    settings.check_fields_positive(self, flag, "batch_size", "steps",
                                   "steps_per_chunk")
    if not self.mixup >= 0:
      raise ConfigError(f"--config.{flag}.mixup must be >= 0, got "
                        f"{self.mixup}")
    augment.validate(self.augment, flag)
    optim.validate(self.optimizer, self.learning_rate,
                   schedule=self.lr_schedule, decay_rate=self.lr_decay,
                   l2=self.l2_dense, flag=flag)
    if num_train is not None and self.batch_size > num_train:
      raise ConfigError(f"--config.{flag}.batch_size={self.batch_size} "
                        f"exceeds the {num_train} training examples")


def dense_mask(params: Any) -> Any:
  """True for the parameters of the dense layers (dense*, logits)."""
  return {name: jax.tree.map(lambda _, n=name: n.startswith(("dense",
                                                              "logits")),
                             layer)
          for name, layer in params.items()}


def _init_state(model: nn.Module, tx: optax.GradientTransformation,
                example: jax.Array, seed: int) -> dict[str, Any]:
  params = model.init(jax.random.key(seed), example[:1])["params"]
  return {"params": params, "opt_state": tx.init(params),
          "step": jnp.zeros((), jnp.int32)}


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  """The seeded order of the training set in `epoch` (resumable)."""
  return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)


def batch_indices(seed: int, start_step: int, num_steps: int, n: int,
                  batch_size: int) -> np.ndarray:
  """[num_steps, batch_size] example indices for steps start..start+num."""
  per_epoch = n // batch_size
  rows, perms = [], {}
  for step in range(start_step, start_step + num_steps):
    epoch, pos = divmod(step, per_epoch)
    if epoch not in perms:
      perms = {epoch: epoch_permutation(seed, epoch, n)}
    rows.append(perms[epoch][pos * batch_size:(pos + 1) * batch_size])
  return np.stack(rows)


def mix_batch(key: jax.Array, x: jax.Array, y: jax.Array, alpha: float
              ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Mixup (Zhang et al., 2018): one lam ~ Beta(alpha, alpha) per batch and
  a random pairing. Returns (lam x + (1 - lam) x[perm], y, y[perm], lam);
  the loss is lam CE(y) + (1 - lam) CE(y[perm])."""
  lam_key, perm_key = jax.random.split(key)
  lam = jax.random.beta(lam_key, alpha, alpha)
  perm = jax.random.permutation(perm_key, x.shape[0])
  return lam * x + (1 - lam) * x[perm], y, y[perm], lam


def make_step_fn(model: nn.Module, tx: optax.GradientTransformation, *,
                 augmentation: str = "none", max_shift: int = 0,
                 seed: int = 0, mixup: float = 0.0,
                 mesh: jax.sharding.Mesh | None = None, scan: bool = False,
                 vmap_seeds: bool = False):
  """Returns jitted f(state, x, y, idx) -> (state, loss) for one batch, or
  with `scan`, for a chunk: idx [steps, batch] -> losses [steps].

  With `vmap_seeds`, several seeds train as one program: the state and idx
  gain a leading seed axis, the function takes the seeds [S] as a fifth
  argument, and each seed draws exactly the keys it draws alone.

  The data stays on device; `idx` selects the batch. On accelerators a
  whole chunk runs as one compiled `lax.scan` (`scan=True`); on CPU the
  steps are better driven from Python: XLA:CPU runs convolutions inside a
  while loop an order of magnitude slower than as top-level ops. With
  `mixup` > 0 each augmented batch is mixed with a permutation of itself
  (`mix_batch`); 0 leaves the step exactly as without it.

  With `mesh`, the step is data parallel: `idx` (and so the batch) is split
  over the mesh's "data" axis, the state and the data are replicated, and
  the compiler averages the gradients across devices.
  """

  def loss_fn(params, x, y, key):
    logits = model.apply({"params": params}, x, train=True,
                         rngs={"dropout": key})
    return losses.cross_entropy(logits, y)

  def mixed_loss_fn(params, x, y, key, y_other, lam):
    logits = model.apply({"params": params}, x, train=True,
                         rngs={"dropout": key})
    return (lam * losses.cross_entropy(logits, y)
            + (1 - lam) * losses.cross_entropy(logits, y_other))

  def step(state, x, y, idx, step_seed):
    key = jax.random.fold_in(jax.random.key(step_seed), state["step"])
    aug_key, dropout_key = jax.random.split(key)
    batch = augment.augment(augmentation, aug_key, x[idx],
                            max_shift=max_shift)
    if mixup > 0:
      batch, labels, other, lam = mix_batch(jax.random.fold_in(key, 1),
                                            batch, y[idx], mixup)
      loss, grads = jax.value_and_grad(mixed_loss_fn)(
          state["params"], batch, labels, dropout_key, other, lam)
    else:
      loss, grads = jax.value_and_grad(loss_fn)(state["params"], batch,
                                                y[idx], dropout_key)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    return {"params": params, "opt_state": opt_state,
            "step": state["step"] + 1}, loss

  one = (jax.vmap(step, in_axes=(0, None, None, 0, 0)) if vmap_seeds
         else step)

  def chunk(state, x, y, idxs, seeds):
    return jax.lax.scan(lambda s, idx: one(s, x, y, idx, seeds), state,
                        idxs)

  fn = chunk if scan else one
  if not vmap_seeds:
    fn = functools.partial(lambda f, s, x, y, i: f(s, x, y, i, seed), fn)
  if mesh is None:
    return jax.jit(fn, donate_argnums=0)
  rep = devices.replicated(mesh)
  split = devices.batch_sharded(mesh, leading=int(scan) + int(vmap_seeds))
  shardings = (rep, rep, rep, split) + ((rep,) if vmap_seeds else ())
  return jax.jit(fn, in_shardings=shardings, out_shardings=(rep, rep),
                 donate_argnums=0)


def train_classifier(model: nn.Module, train_x: np.ndarray,
                     train_y: np.ndarray, test_x: np.ndarray,
                     test_y: np.ndarray, schedule: ClassifierSchedule, *,
                     seed: int, stage: Stage, flag: str,
                     show_progress: bool = True,
                     scan: str = "auto") -> dict[str, Any]:
  """Trains (or resumes) one classifier stage; returns its result dict.

  `scan`: "true" runs each chunk as one compiled `lax.scan`, "false" drives
  the steps from Python, "auto" scans on accelerators only (see
  `make_step_fn`). Both give the same batches and keys.

  The returned dict holds "params" (final parameters, numpy), "history"
  (per-chunk step, train_loss, test_accuracy), "test_accuracy" and
  "train_seconds".
  """
  return train_classifiers(model, train_x, train_y, test_x, test_y,
                           schedule, seeds=[seed], stages=[stage], flag=flag,
                           show_progress=show_progress, scan=scan,
                           vmap_seeds=False)[0]


def train_classifiers(model: nn.Module, train_x: np.ndarray,
                      train_y: np.ndarray, test_x: np.ndarray,
                      test_y: np.ndarray, schedule: ClassifierSchedule, *,
                      seeds: Sequence[int], stages: Sequence[Stage],
                      flag: str, show_progress: bool = True,
                      scan: str = "auto", vmap_seeds: bool = True
                      ) -> list[dict[str, Any]]:
  """`train_classifier` for several seeds at once, one stage each: with
  `vmap_seeds`, their parameters and optimiser states stacked and trained
  by one vmapped program, each seed with exactly its own batches and keys,
  so that each result equals the seed's own run to float tolerance."""
  schedule.validate(flag, len(train_y))
  tx = make_optimizer(schedule.optimizer, schedule.learning_rate,
                      schedule.steps, schedule=schedule.lr_schedule,
                      weight_decay=schedule.weight_decay,
                      steps_per_epoch=schedule.steps_per_epoch,
                      decay_rate=schedule.lr_decay, l2=schedule.l2_dense,
                      l2_mask=dense_mask, flag=flag)
  mesh = devices.data_mesh()
  devices.check_batch(schedule.batch_size, mesh, flag)
  rep = devices.replicated(mesh)
  x = devices.global_batch(np.asarray(train_x), rep)
  y = devices.global_batch(np.asarray(train_y, np.int32), rep)
  scanned = devices.on_accelerator(scan, f"{flag}.scan")
  if len(seeds) > 1 and not vmap_seeds:
    raise ValueError("several seeds train together only vmapped")
  train_step = make_step_fn(model, tx, augmentation=schedule.augment,
                            max_shift=schedule.max_shift, seed=seeds[0],
                            mixup=schedule.mixup, mesh=mesh, scan=scanned,
                            vmap_seeds=vmap_seeds)
  seed_args = (devices.global_batch(np.asarray(seeds, np.int32), rep),
               ) if vmap_seeds else ()
  predict = make_predict_fn(model)

  def accuracy(params) -> float:
    # On host copies: the test set is predicted on one device per process.
    params = jax.device_get(params)
    return float((predict(params, test_x).argmax(-1) == test_y).mean())

  def indices(step: int, num_steps: int) -> np.ndarray:
    """[steps, (seeds,) batch]: each seed's own batches."""
    per_seed = [batch_indices(s, step, num_steps, len(train_y),
                              schedule.batch_size) for s in seeds]
    return np.stack(per_seed, 1) if vmap_seeds else per_seed[0]

  def run_chunk(state, step: int, num_steps: int):
    idx = indices(step, num_steps)
    if scanned:
      state, step_losses = train_step(state, x, y, devices.global_batch(
          idx, devices.batch_sharded(mesh, idx.ndim - 1)), *seed_args)
      return state, jnp.moveaxis(step_losses, 0, -1)  # [(seeds,) steps]
    one = devices.batch_sharded(mesh, idx.ndim - 2)
    step_losses = []
    for i in idx:
      state, loss = train_step(state, x, y, devices.global_batch(i, one),
                               *seed_args)
      step_losses.append(loss)
    return state, jnp.stack(step_losses, -1)

  def summarise(state, step_losses: np.ndarray) -> dict[str, float]:
    return {"train_loss": float(step_losses.mean()),
            "test_accuracy": accuracy(state["params"])}

  initial = [_init_state(model, tx, x, s) for s in seeds]
  initial = (jax.tree.map(lambda *parts: jnp.stack(parts), *initial)
             if vmap_seeds else initial[0])
  # Placed before resuming: checkpoints restore into the template's
  # (replicated, every process's) sharding, with no transfer between hosts.
  initial = jax.device_put(initial, rep)

  def place(state):
    """Stacked seeds come back from the loop as host arrays."""
    return jax.device_put(state, rep) if vmap_seeds else state

  outs = loop.train_stages_in_chunks(
      stages, initial, stacked=vmap_seeds, steps=schedule.steps,
      steps_per_chunk=schedule.steps_per_chunk,
      run_chunk=lambda state, step, n: run_chunk(place(state), step, n),
      summarise=summarise, flag=flag, show_progress=show_progress)
  results = []
  for out in outs:
    params = jax.tree.map(np.asarray, out.state["params"])
    results.append({
        "params": params, "history": out.history,
        "test_accuracy": (out.history[-1]["test_accuracy"] if out.history
                          else accuracy(params)),
        "train_seconds": out.train_seconds})
  return results
