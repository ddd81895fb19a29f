"""Training on pairs alone: convnets and aligner as one model, end to end.

The only supervision is which image and which utterance belong together.
Each step draws `groups` groups; a group is one training image of every
digit and one training utterance of every speech class (the paper's
protocol, batched), and the loss asks each image to score its own digit's
utterance(s) above the others of its group, and (symmetric losses) each
utterance to score its digit's image above the others. No classification
head is used.

A convnet may be left out of the model (`image_net=None` / `speech_net=None`):
the inputs are then that convnet's precomputed, frozen activations, which is
how the two-stage (paper) model and the random-network ablations train
their aligner with the same code.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from avdigits import losses, settings
from avdigits.data.types import speech_class_to_digit
from avdigits.errors import ConfigError
from avdigits.inputs import augment
from avdigits.models.convnets import Aligner, ImageNet, SpeechNet
from avdigits.training import devices, loop, optim
from avdigits.training.align import class_index_table
from avdigits.training.classifier import make_predict_fn
from avdigits.training.optim import make_optimizer
from avdigits.training.workdir import Stage

JOINT_LOSSES = ("hinge", "symmetric_hinge", "info_nce")
NUM_DIGITS = 10


class JointModel(nn.Module):
  """Image and speech inputs -> joint embeddings x (images), y (speech).

  Attributes:
    aligner: the maps into the joint space (x = relu(W_d w + b_d),
      y = W_m v + b_m).
    image_net: the image convnet, or None when inputs are its activations.
    speech_net: the speech convnet, or None when inputs are its activations.
  """

  aligner: Aligner
  image_net: ImageNet | None = None
  speech_net: SpeechNet | None = None

  def embed_images(self, images: jax.Array, train: bool = False
                   ) -> jax.Array:
    """x [B, embed_dim] from images [B, 28, 28] (or activations [B, W])."""
    w = (images if self.image_net is None
         else self.image_net.embed(images, train))
    return self.aligner.embed_image(w)

  def embed_speech(self, speech: jax.Array, train: bool = False
                   ) -> jax.Array:
    """y [B, embed_dim] from spectrograms [B, T, F] (or activations)."""
    v = (speech if self.speech_net is None
         else self.speech_net.embed(speech, train))
    return self.aligner.embed_speech(v)

  def __call__(self, images: jax.Array, speech: jax.Array,
               train: bool = False) -> tuple[jax.Array, jax.Array]:
    return self.embed_images(images, train), self.embed_speech(speech, train)


@dataclasses.dataclass(frozen=True)
class JointSchedule:
  """How to train a JointModel on groups of pairs."""
  steps: int = 2000
  steps_per_chunk: int = 250
  groups: int = 6
  optimizer: str = "adam"
  learning_rate: float = 1e-3
  lr_schedule: str = "cosine"
  weight_decay: float = 0.0
  loss: str = "info_nce"
  clamp: bool = False
  margin: float = 1.0
  temperature: float = 0.1
  image_augment: str = "none"
  image_max_shift: int = 0
  speech_augment: str = "none"
  speech_max_shift: int = 0

  @classmethod
  def from_config(cls, section: Any) -> JointSchedule:
    """The schedule of a config section (fields of the same names)."""
    return settings.from_section(cls, section)

  def validate(self, flag: str) -> None:
    """Raises ConfigError naming `--config.<flag>.*` for a bad setting."""
    settings.check_fields_positive(self, flag, "steps", "steps_per_chunk",
                                   "groups", "temperature")
    if self.loss not in JOINT_LOSSES:
      raise ConfigError(f"--config.{flag}.loss={self.loss!r}: choose one of "
                        f"{', '.join(JOINT_LOSSES)}")
    augment.validate(self.image_augment, f"{flag}.image")
    augment.validate(self.speech_augment, f"{flag}.speech")
    optim.validate(self.optimizer, self.learning_rate,
                   schedule=self.lr_schedule, flag=flag)


def group_positives(num_speech_classes: int) -> np.ndarray:
  """bool [10, C]: which speech classes say each digit ("oh" says 0)."""
  digits = speech_class_to_digit(np.arange(num_speech_classes))
  return np.arange(NUM_DIGITS)[:, None] == digits[None, :]


def group_loss(x: jax.Array, y: jax.Array, positives: jax.Array, kind: str,
               *, clamp: bool = False, margin: float = 1.0,
               temperature: float = 0.1) -> jax.Array:
  """Mean over groups of the cross-modal loss of each group.

  Args:
    x: [G, 10, E], one image embedding per digit in each group.
    y: [G, C, E], one utterance embedding per speech class.
    positives: bool [10, C] (see group_positives).
    kind: "hinge" (the paper's: images rank utterances), "symmetric_hinge"
      (and utterances rank images) or "info_nce" (softmax over the group,
      both directions).
    clamp: score max(0, y.x) as in the paper, instead of y.x.
  """
  scores = jnp.einsum("gde,gce->gdc", x, y)
  if clamp:
    scores = nn.relu(scores)
  pos = jnp.broadcast_to(positives, scores.shape)
  back, back_pos = jnp.swapaxes(scores, 1, 2), jnp.swapaxes(pos, 1, 2)
  if kind == "hinge":
    cost = losses.paper_hinge(scores, pos, margin).sum(-1)
  elif kind == "symmetric_hinge":
    cost = (losses.paper_hinge(scores, pos, margin).sum(-1)
            + losses.paper_hinge(back, back_pos, margin).sum(-1))
  elif kind == "info_nce":
    cost = 0.5 * (losses.info_nce(scores, pos, temperature).mean(-1)
                  + losses.info_nce(back, back_pos, temperature).mean(-1))
  else:
    raise ConfigError(f"group_loss: unknown loss {kind!r}; choose one of "
                      f"{', '.join(JOINT_LOSSES)}")
  return cost.mean()


def sample_groups(key: jax.Array, groups: int, image_table: jax.Array,
                  image_counts: jax.Array, speech_table: jax.Array,
                  speech_counts: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Indices of `groups` groups: images [G, 10] and utterances [G, C]."""

  def draw(k, table, counts):
    u = jax.random.uniform(k, (groups, table.shape[0]))
    rank = jnp.minimum((u * counts).astype(jnp.int32), counts - 1)
    return table[jnp.arange(table.shape[0]), rank]

  k_image, k_speech = jax.random.split(key)
  return (draw(k_image, image_table, image_counts),
          draw(k_speech, speech_table, speech_counts))


def init_params(model: JointModel, images: np.ndarray, speech: np.ndarray,
                seed: int, pretrained: dict[str, Any] | None = None
                ) -> dict[str, Any]:
  """Random parameters, with `pretrained` subtrees ("image_net",
  "speech_net": classifier params) copied in; their logits are dropped."""
  params = model.init(jax.random.key(seed), images[:1], speech[:1])["params"]
  params = dict(params)
  for name, tree in (pretrained or {}).items():
    if name not in params:
      raise ConfigError(f"pretrained {name!r}: the model has no such part "
                        f"(has {sorted(params)})")
    tree = {k: v for k, v in tree.items() if k != "logits"}
    shapes = jax.tree.map(np.shape, tree)
    if (jax.tree.structure(tree) != jax.tree.structure(params[name])
        or shapes != jax.tree.map(np.shape, params[name])):
      raise ConfigError(f"pretrained {name!r}: parameter shapes do not match "
                        "the model's (different widths?)")
    params[name] = jax.tree.map(jnp.asarray, tree)
  return params


def make_joint_step(model: JointModel, tx: optax.GradientTransformation,
                    schedule: JointSchedule, num_speech_classes: int,
                    seed: int):
  """Returns jitted f(state, images, speech, tables...) -> (state, loss)."""
  positives = jnp.asarray(group_positives(num_speech_classes))
  g = schedule.groups

  def loss_fn(params, images, speech, key):
    x, y = model.apply({"params": params}, images, speech, train=True,
                       rngs={"dropout": key})
    return group_loss(x.reshape(g, NUM_DIGITS, -1),
                      y.reshape(g, num_speech_classes, -1), positives,
                      schedule.loss, clamp=schedule.clamp,
                      margin=schedule.margin,
                      temperature=schedule.temperature)

  @functools.partial(jax.jit, donate_argnums=0)
  def step(state, images, speech, image_table, image_counts, speech_table,
           speech_counts):
    key = jax.random.fold_in(jax.random.key(seed), state["step"])
    k_sample, k_image, k_speech, k_drop = jax.random.split(key, 4)
    image_idx, speech_idx = sample_groups(k_sample, g, image_table,
                                          image_counts, speech_table,
                                          speech_counts)
    batch_images = images[image_idx.reshape(-1)]
    batch_speech = speech[speech_idx.reshape(-1)]
    if model.image_net is not None:
      batch_images = augment.augment(schedule.image_augment, k_image,
                                     batch_images,
                                     max_shift=schedule.image_max_shift)
    if model.speech_net is not None:
      batch_speech = augment.augment(schedule.speech_augment, k_speech,
                                     batch_speech,
                                     max_shift=schedule.speech_max_shift)
    loss, grads = jax.value_and_grad(loss_fn)(state["params"], batch_images,
                                              batch_speech, k_drop)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    return {"params": optax.apply_updates(state["params"], updates),
            "opt_state": opt_state, "step": state["step"] + 1}, loss

  return step


def train_joint(model: JointModel, train_images: np.ndarray,
                image_digits: np.ndarray, train_speech: np.ndarray,
                speech_labels: np.ndarray, num_speech_classes: int,
                schedule: JointSchedule, *, seed: int, stage: Stage,
                flag: str, pretrained: dict[str, Any] | None = None,
                show_progress: bool = False) -> dict[str, Any]:
  """Trains (or resumes) a JointModel stage on groups of pairs.

  Returns "params" (numpy), "history" (per-chunk step and mean loss) and
  "train_seconds".
  """
  schedule.validate(flag)
  tx = make_optimizer(schedule.optimizer, schedule.learning_rate,
                      schedule.steps, schedule=schedule.lr_schedule,
                      weight_decay=schedule.weight_decay, flag=flag)
  image_table, image_counts = class_index_table(np.asarray(image_digits),
                                                NUM_DIGITS)
  speech_table, speech_counts = class_index_table(np.asarray(speech_labels),
                                                  num_speech_classes)
  # Replicated on one device of every process (the groups are drawn inside
  # the step).
  rep = devices.replicated(devices.process_mesh())
  tables = jax.device_put((image_table, image_counts, speech_table,
                           speech_counts), rep)
  images = jax.device_put(np.asarray(train_images, np.float32), rep)
  speech = jax.device_put(np.asarray(train_speech, np.float32), rep)
  params = init_params(model, train_images, train_speech, seed, pretrained)
  step_fn = make_joint_step(model, tx, schedule, num_speech_classes, seed)

  def run_chunk(state, step: int, num_steps: int):
    del step  # the step function draws from the state's own step
    chunk_losses = []
    for _ in range(num_steps):
      state, loss = step_fn(state, images, speech, *tables)
      chunk_losses.append(loss)
    return state, jnp.stack(chunk_losses)

  def summarise(state, chunk_losses: np.ndarray) -> dict[str, float]:
    del state
    return {"train_loss": float(chunk_losses.mean())}

  out = loop.train_in_chunks(
      stage, jax.device_put({"params": params, "opt_state": tx.init(params),
                             "step": jnp.zeros((), jnp.int32)}, rep),
      steps=schedule.steps, steps_per_chunk=schedule.steps_per_chunk,
      run_chunk=run_chunk, summarise=summarise, flag=flag,
      show_progress=show_progress)
  return {"params": jax.tree.map(np.asarray, out.state["params"]),
          "history": out.history, "train_seconds": out.train_seconds}


def score_matrix(model: JointModel, params: dict[str, Any],
                 images: np.ndarray, speech: np.ndarray) -> np.ndarray:
  """Scores [P, Q] = y(speech q) . x(image p) of every test pair."""
  x = make_predict_fn(model, "embed_images")(params, images)
  y = make_predict_fn(model, "embed_speech")(params, speech)
  return x @ y.T
