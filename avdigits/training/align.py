"""Training the alignment model on frozen convnet activations.

Each iteration takes one random training image and one random training
utterance of every speech class (the paper's protocol), scores the image
against the utterances with `models.Aligner` and takes one optimiser step on
the hinge loss. Iterations run in chunks inside one compiled `lax.scan`; the
random draws of chunk c come from `fold_in(seed, c)`, so a resumed run
repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from avdigits import losses, settings
from avdigits.data.types import speech_class_to_digit
from avdigits.errors import ConfigError, DataError
from avdigits.models.convnets import Aligner
from avdigits.training import devices, loop, optim
from avdigits.training.optim import make_optimizer
from avdigits.training.workdir import Stage

LOSSES = ("paper_hinge", "symmetric_hinge", "info_nce")
# How the aligner starts: "gaussian", every parameter (biases included) a
# zero-mean Gaussian as the paper states; "gaussian_mirrored", the same draw,
# negated (W_m, b_m -> -W_m, -b_m) when its mean matching-pair score on the
# training data is negative (a zero-mean Gaussian is symmetric, so the
# mirror is as likely a draw as the original); "zero_bias", Gaussian kernels
# and zero biases.
INITS = ("gaussian", "gaussian_mirrored", "zero_bias")


@dataclasses.dataclass(frozen=True)
class AlignSchedule:
  """The alignment model's training settings."""
  steps: int = 500_000               # iterations, one image each
  steps_per_chunk: int = 50_000
  optimizer: str = "sgd"
  learning_rate: float = 1e-5
  lr_schedule: str = "constant"
  embed_dim: int = 512
  init_std: float = 0.01
  clamp: bool = True
  margin: float = 1.0
  impl: str = "auto"   # auto | plain | fast (see make_fast_sgd_chunk_fn)
  block: int = 16
  init: str = "zero_bias"  # one of INITS

  @property
  def bias_std(self) -> float:
    return 0.0 if self.init == "zero_bias" else self.init_std

  def use_fast(self) -> bool:
    """Whether the reassociated SGD path applies (and is asked for)."""
    fits = (self.optimizer == "sgd" and self.lr_schedule == "constant"
            and self.steps_per_chunk % self.block == 0
            and self.steps % self.block == 0)
    if self.impl == "fast" and not fits:
      raise ConfigError(
          "--config.align.impl=fast needs optimizer=sgd, lr_schedule="
          "constant and steps and steps_per_chunk divisible by block")
    return self.impl == "fast" or (self.impl == "auto" and fits)

  @classmethod
  def from_config(cls, section: Any, **derived: Any) -> AlignSchedule:
    """The schedule of a config section (fields of the same names)."""
    return settings.from_section(cls, section, **derived)

  def validate(self, flag: str = "align") -> None:
    """Raises ConfigError naming `--config.<flag>.*` for a bad setting."""
    settings.check_fields_positive(self, flag, "steps", "steps_per_chunk",
                                   "embed_dim", "init_std")
    if self.impl not in ("auto", "plain", "fast"):
      raise ConfigError(f"--config.{flag}.impl={self.impl!r}: choose auto, "
                        f"plain or fast")
    if self.init not in INITS:
      raise ConfigError(f"--config.{flag}.init={self.init!r}: choose one of "
                        f"{', '.join(INITS)}")
    optim.validate(self.optimizer, self.learning_rate,
                   schedule=self.lr_schedule, flag=flag)


def class_index_table(labels: np.ndarray,
                      num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """Returns (table [C, max_count], counts [C]) of example indices by class.

  Raises DataError if a class has no example.
  """
  counts = np.bincount(labels, minlength=num_classes)[:num_classes]
  if np.any(counts == 0):
    missing = np.flatnonzero(counts == 0).tolist()
    raise DataError(f"alignment training data lacks speech class(es) "
                    f"{missing}")
  table = np.zeros((num_classes, counts.max()), np.int32)
  for c in range(num_classes):
    idx = np.flatnonzero(labels == c)
    table[c, :len(idx)] = idx
  return table, counts.astype(np.int32)


def positive_mask(image_digits: np.ndarray, speech_labels: np.ndarray
                  ) -> np.ndarray:
  """[P, Q] True where image p and utterance q show the same digit."""
  speech_digits = speech_class_to_digit(np.asarray(speech_labels))
  return np.asarray(image_digits)[:, None] == speech_digits[None, :]


def dead_level(image_digits: np.ndarray, num_classes: int,
               margin: float = 1.0) -> float:
  """The per-iteration hinge cost when every score is 0 (a dead clamped
  aligner): margin times the mean number of negatives per image, 9 for
  FSDD's 10 classes, 10 (9 for digit 0, which "oh" and "zero" both name)
  for TIDIGITS' 11."""
  negatives = (~positive_mask(image_digits, np.arange(num_classes))).sum(1)
  return float(margin * negatives.mean())


def mean_positive_score(params: Any, image_acts: np.ndarray,
                        image_digits: np.ndarray, speech_acts: np.ndarray,
                        speech_labels: np.ndarray) -> float:
  """Mean unclamped score y . x over the matching (same digit) pairs."""
  model = Aligner(embed_dim=params["image_map"]["kernel"].shape[1])
  scores = model.apply({"params": params}, jnp.asarray(image_acts),
                       jnp.asarray(speech_acts), method="score_matrix")
  mask = positive_mask(image_digits, speech_labels)
  return float(np.asarray(scores)[mask].mean())


def mirror(params: Any) -> Any:
  """The mirrored draw: W_m and b_m negated, so every score changes sign."""
  return {**params, "speech_map": jax.tree.map(jnp.negative,
                                               params["speech_map"])}


def initial_params(schedule: AlignSchedule, image_acts: np.ndarray,
                   image_digits: np.ndarray, speech_acts: np.ndarray,
                   speech_labels: np.ndarray, *, seed: int
                   ) -> tuple[Any, dict[str, Any]]:
  """The aligner's starting parameters for `seed` under `schedule.init`,
  and {"mean_positive_score" (after any mirroring), "mirrored"}."""
  model = Aligner(embed_dim=schedule.embed_dim, init_std=schedule.init_std,
                  bias_std=schedule.bias_std)
  params = model.init(jax.random.key(seed),
                      jnp.asarray(image_acts[:1], jnp.float32),
                      jnp.zeros((1, 1, speech_acts.shape[-1]),
                                jnp.float32))["params"]
  score = mean_positive_score(params, image_acts, image_digits, speech_acts,
                              speech_labels)
  mirrored = schedule.init == "gaussian_mirrored" and score < 0
  if mirrored:
    params, score = mirror(params), -score
  return params, {"mean_positive_score": score, "mirrored": mirrored}


def sample_chunk(key: jax.Array, chunk_index: int | jax.Array, length: int,
                 num_images: int, table: jax.Array,
                 counts: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Draws `length` iterations: image indices [L] and utterances [L, C]."""
  key = jax.random.fold_in(key, chunk_index)
  image_key, speech_key = jax.random.split(key)
  image_idx = jax.random.randint(image_key, (length,), 0, num_images)
  u = jax.random.uniform(speech_key, (length, table.shape[0]))
  rank = jnp.minimum((u * counts).astype(jnp.int32), counts - 1)
  speech_idx = table[jnp.arange(table.shape[0]), rank]
  return image_idx, speech_idx


def make_align_chunk_fn(model: Aligner, tx: optax.GradientTransformation,
                        schedule: AlignSchedule, num_classes: int):
  """Returns jitted f(state, image_acts, image_digits, speech_acts, table,
  counts, key, chunk_index, length) -> (state, per-iteration costs)."""
  speech_digits = speech_class_to_digit(np.arange(num_classes))

  def cost_fn(params, w, v, positives):
    scores = model.apply({"params": params}, w[None], v[None],
                         clamp=schedule.clamp)
    return losses.paper_hinge(scores, positives[None],
                              margin=schedule.margin).sum()

  def step(carry, sample):
    params, opt_state, w_all, w_digits, v_all = carry
    image_i, speech_i = sample
    positives = w_digits[image_i] == speech_digits
    cost, grads = jax.value_and_grad(cost_fn)(params, w_all[image_i],
                                              v_all[speech_i], positives)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return (params, opt_state, w_all, w_digits, v_all), cost

  @functools.partial(jax.jit, static_argnums=8, donate_argnums=0)
  def run_chunk(state, w_all, w_digits, v_all, table, counts, key,
                chunk_index, length):
    samples = sample_chunk(key, chunk_index, length, w_all.shape[0], table,
                           counts)
    carry = (state["params"], state["opt_state"], w_all, w_digits, v_all)
    carry, costs = jax.lax.scan(step, carry, samples)
    new = {"params": carry[0], "opt_state": carry[1],
           "step": state["step"] + length}
    return new, costs

  return run_chunk


def make_fast_sgd_chunk_fn(schedule: AlignSchedule, num_classes: int,
                           block: int = 16):
  """The same SGD as `make_align_chunk_fn`, reassociated for speed.

  Within a block of `block` iterations the two big kernels (speech W_m
  [N, E], image W_d [512, E]) are not updated in place: their rank-one SGD
  updates are kept as factors and applied as corrections,

    W_m x_s = W_m0 x_s - lr sum_{r<s} a_r (x_r . x_s),
    a_s W_m = a_s W_m0 - lr sum_{r<s} (a_r . a_s) x_r,
    w_s W_d = w_s W_d0 - lr sum_{r<s} (w_s . w_r) delta_r,

  and folded into the kernels with one matrix product per block. The
  arithmetic is exactly plain SGD's, in another order, so the costs agree
  with the plain step to float32 rounding. Plain SGD with a constant
  learning rate only.
  """
  lr = schedule.learning_rate
  speech_digits = jnp.asarray(speech_class_to_digit(np.arange(num_classes)))

  def cost_of_scores(raw, positives):
    scores = jax.nn.relu(raw) if schedule.clamp else raw
    return losses.paper_hinge(scores, positives, margin=schedule.margin)

  cost_and_grad = jax.value_and_grad(cost_of_scores)

  def run_block(carry, blk, w_all, w_digits, v_all):
    speech_k, speech_b, image_k, image_b = carry
    image_i, speech_i = blk                        # [K], [K, C]
    w_blk = w_all[image_i]                         # [K, 512]
    pre0 = w_blk @ image_k                         # [K, E]
    gram = jnp.einsum("ki,li->kl", w_blk, w_blk)   # [K, K]
    positives = w_digits[image_i][:, None] == speech_digits[None, :]

    def step(c, t):
      speech_b, image_b, xs, deltas, as_ = c
      v = v_all[speech_i[t]]                       # [C, N]
      pre = pre0[t] + image_b - lr * gram[t] @ deltas  # rows >= t are 0
      x = jax.nn.relu(pre)
      u = speech_k @ x - lr * ((xs @ x) @ as_)     # W_m x   [N]
      raw = v @ u + speech_b @ x
      cost, g = cost_and_grad(raw, positives[t])
      a = g @ v                                    # [N]
      total = g.sum()
      dx = a @ speech_k - lr * ((as_ @ a) @ xs) + total * speech_b
      delta = dx * (pre > 0)
      xs, deltas, as_ = (xs.at[t].set(x), deltas.at[t].set(delta),
                         as_.at[t].set(a))
      return (speech_b - lr * total * x, image_b - lr * delta, xs, deltas,
              as_), cost

    e, n = speech_k.shape[1], speech_k.shape[0]
    zeros = (jnp.zeros((block, e)), jnp.zeros((block, e)),
             jnp.zeros((block, n)))
    (speech_b, image_b, xs, deltas, as_), costs = jax.lax.scan(
        step, (speech_b, image_b) + zeros, jnp.arange(block))
    speech_k = speech_k - lr * jnp.einsum("kn,ke->ne", as_, xs)
    image_k = image_k - lr * jnp.einsum("ki,ke->ie", w_blk, deltas)
    return (speech_k, speech_b, image_k, image_b), costs

  @functools.partial(jax.jit, static_argnums=8, donate_argnums=0)
  def run_chunk(state, w_all, w_digits, v_all, table, counts, key,
                chunk_index, length):
    image_i, speech_i = sample_chunk(key, chunk_index, length,
                                     w_all.shape[0], table, counts)
    p = state["params"]
    carry = (p["speech_map"]["kernel"], p["speech_map"]["bias"],
             p["image_map"]["kernel"], p["image_map"]["bias"])
    blocks = (image_i.reshape(-1, block),
              speech_i.reshape(-1, block, speech_i.shape[-1]))
    carry, costs = jax.lax.scan(
        lambda c, b: run_block(c, b, w_all, w_digits, v_all), carry, blocks)
    params = {"speech_map": {"kernel": carry[0], "bias": carry[1]},
              "image_map": {"kernel": carry[2], "bias": carry[3]}}
    return {"params": params, "opt_state": state["opt_state"],
            "step": state["step"] + length}, costs.reshape(-1)

  return run_chunk


def train_alignment(image_acts: np.ndarray, image_digits: np.ndarray,
                    speech_acts: np.ndarray, speech_labels: np.ndarray,
                    num_classes: int, schedule: AlignSchedule, *, seed: int,
                    stage: Stage, flag: str = "align",
                    show_progress: bool = True) -> dict[str, Any]:
  """Trains (or resumes) the aligner; returns params, cost curve, start
  info, dead level and timing."""
  schedule.validate(flag)
  model = Aligner(embed_dim=schedule.embed_dim, init_std=schedule.init_std,
                  bias_std=schedule.bias_std)
  tx = make_optimizer(schedule.optimizer, schedule.learning_rate,
                      schedule.steps, schedule=schedule.lr_schedule,
                      flag=flag)
  table, counts = class_index_table(np.asarray(speech_labels), num_classes)
  # One image per iteration: nothing to split, so one device of every
  # process of a job holds the whole state and runs the same iterations.
  rep = devices.replicated(devices.process_mesh())
  data = jax.device_put((np.asarray(image_acts, np.float32),
                         np.asarray(image_digits),
                         np.asarray(speech_acts, np.float32), table, counts),
                        rep)
  params, start_info = initial_params(schedule, image_acts, image_digits,
                                      speech_acts, speech_labels, seed=seed)
  if schedule.use_fast():
    chunk_fn = make_fast_sgd_chunk_fn(schedule, num_classes, schedule.block)
  else:
    chunk_fn = make_align_chunk_fn(model, tx, schedule, num_classes)
  key = jax.random.key(seed + 1)

  def run_chunk(state, step: int, length: int):
    return chunk_fn(state, *data, key, step // schedule.steps_per_chunk,
                    length)

  def summarise(state, costs: np.ndarray) -> dict[str, float]:
    del state
    return {"cost_sum": float(costs.sum()), "cost_mean": float(costs.mean()),
            "cost_first": float(costs[0]), "cost_last": float(costs[-1])}

  initial = jax.device_put({"params": params, "opt_state": tx.init(params),
                            "step": jnp.zeros((), jnp.int32)}, rep)
  out = loop.train_in_chunks(
      stage, initial,
      steps=schedule.steps, steps_per_chunk=schedule.steps_per_chunk,
      run_chunk=run_chunk, summarise=summarise, what="cost", flag=flag,
      show_progress=show_progress)
  return {"params": jax.tree.map(np.asarray, out.state["params"]),
          "history": out.history,
          "start": start_info,
          "dead_level": dead_level(image_digits, num_classes,
                                   schedule.margin),
          "train_seconds": out.train_seconds}
