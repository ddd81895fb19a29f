"""Loss functions: classification, and ranking / contrastive alignment losses.

All are pure jax.numpy functions of arrays: jit-, vmap- and grad-friendly,
with no Python loops over data. Alignment losses return one value per row
(per example); the caller sums or averages over the batch.

Class convention for speech: classes 0..9 are the spoken digits "zero" to
"nine" and class 10 is "oh", which also denotes the digit 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from avdigits.errors import ConfigError

OH_CLASS = 10


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy of logits [..., K] against int labels [...]."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Fraction of rows of logits [..., K] whose argmax equals labels [...]."""
  return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def speech_digit(speech_classes: jax.Array) -> jax.Array:
  """The digit a speech class denotes: "oh" (class 10) -> 0, others as is."""
  return jnp.where(speech_classes == OH_CLASS, 0, speech_classes)


def positive_mask(image_digits: jax.Array,
                  speech_classes: jax.Array) -> jax.Array:
  """Which utterances say each image's digit.

  Args:
    image_digits: int [B], the digit (0..9) of each image.
    speech_classes: int [C] (the same candidates for every image) or [B, C]
      (candidates per image); classes 0..10, 10 = "oh".

  Returns:
    bool [B, C], True where the utterance's digit equals the image's digit.
    Both "zero" (0) and "oh" (10) are positives for the digit 0.
  """
  digits = speech_digit(jnp.asarray(speech_classes))
  image_digits = jnp.asarray(image_digits)[:, None]
  return jnp.broadcast_to(digits == image_digits,
                          (image_digits.shape[0], digits.shape[-1]))


def paper_hinge(scores: jax.Array, positives: jax.Array,
                margin: float = 1.0) -> jax.Array:
  """The paper's pairwise ranking hinge, summed per row.

  The paper's cost, C = sum_k sum_l max(0, 1 - S_kk + S_kl), generalised to
  any number of positives per row: for every positive p and every negative n
  of a row, add max(0, margin - S[p] + S[n]). A positive is never a negative,
  so two positives of a row (e.g. "oh" and "zero" for the digit 0) are not
  ranked against each other. A row with no positives or no negatives costs 0.

  Args:
    scores: float [..., C], the scores of C candidates for each row.
    positives: bool [..., C], which candidates match the row.
    margin: the hinge margin.

  Returns:
    float [...], the cost of each row (a scalar for a single row [C]).
  """
  positives = positives.astype(bool)
  diff = margin - scores[..., :, None] + scores[..., None, :]
  pairs = positives[..., :, None] & ~positives[..., None, :]
  return jnp.sum(jnp.where(pairs, jax.nn.relu(diff), 0.0), axis=(-2, -1))


def symmetric_hinge(scores: jax.Array, positives: jax.Array,
                    speech_scores: jax.Array | None = None,
                    speech_positives: jax.Array | None = None,
                    margin: float = 1.0) -> jax.Array:
  """The paper's hinge from both sides: images rank utterances and vice versa.

  Image side: paper_hinge(scores, positives), each image ranking its C
  candidate utterances. Speech side: paper_hinge(speech_scores,
  speech_positives), each example's utterance ranking D candidate images, the
  images of every other digit being its negatives.

  Args:
    scores: float [B, C], image b against candidate utterance c.
    positives: bool [B, C].
    speech_scores: float [B, D], example b's utterance against candidate image
      d. When None, scores must be square [B, B] (image i against utterance j,
      example j's own utterance) and the speech side is its transpose.
    speech_positives: bool [B, D]; None exactly when speech_scores is None.
    margin: the hinge margin.

  Returns:
    float [B], the image-side plus the speech-side cost of each example.
  """
  if (speech_scores is None) != (speech_positives is None):
    raise ConfigError("symmetric_hinge: pass both speech_scores and "
                     "speech_positives, or neither")
  if speech_scores is None:
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
      raise ConfigError("symmetric_hinge: without speech_scores, scores must "
                       f"be square [B, B], got {scores.shape}")
    speech_scores, speech_positives = scores.T, positives.T
  return (paper_hinge(scores, positives, margin)
          + paper_hinge(speech_scores, speech_positives, margin))


def _multi_positive_nce(logits: jax.Array, positives: jax.Array) -> jax.Array:
  """-log(total softmax probability of the positives), per row; 0 if none."""
  floor = jnp.finfo(logits.dtype).min / 2  # finite: keeps gradients NaN-free
  positive_logits = jnp.where(positives, logits, floor)
  loss = (jax.nn.logsumexp(logits, axis=-1)
          - jax.nn.logsumexp(positive_logits, axis=-1))
  return jnp.where(positives.any(axis=-1), loss, 0.0)


def info_nce(scores: jax.Array, positives: jax.Array | None = None,
             temperature: float = 0.1,
             both_directions: bool = False) -> jax.Array:
  """Contrastive (InfoNCE) loss over a batch, with any number of positives.

  Each row's loss is -log of the softmax probability (over the row's
  candidates, logits scores / temperature) that falls on its positives:
  logsumexp(all) - logsumexp(positives). Positives do not compete with each
  other; a row with no positives costs 0.

  Args:
    scores: float [B, K], row b (an image) against K candidates; [B, B] for
      the usual in-batch form where candidate j is example j's utterance.
    positives: bool [B, K]; None means the identity (needs a square matrix).
    temperature: the softmax temperature.
    both_directions: also score each column against the rows (needs [B, B])
      and return the mean of the two directions for each example.

  Returns:
    float [B], the loss of each example.
  """
  if positives is None or both_directions:
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
      raise ConfigError("info_nce: positives=None or both_directions=True "
                       f"needs square scores [B, B], got {scores.shape}")
  if positives is None:
    positives = jnp.eye(scores.shape[0], dtype=bool)
  positives = positives.astype(bool)
  logits = scores / temperature
  loss = _multi_positive_nce(logits, positives)
  if both_directions:
    loss = 0.5 * (loss + _multi_positive_nce(logits.T, positives.T))
  return loss
