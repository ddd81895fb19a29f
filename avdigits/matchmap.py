"""Matchmaps: the similarity of every speech step with every image column,
pooled into one score per (spoken string, number image) pair; the
contrastive loss over a batch of pairs; and what a matchmap tells without
text: which digits a spoken string says (reading: each speech step scored
against digit boxes, then a monotonic alignment of the steps to blank and
word segments, `read_segments`) and where in the speech an image digit is
said (localisation).

Pooling, for a matchmap M [T, W] with masks (Harwath et al. 2018):
  "misa": mean over speech steps of the max over image columns,
  "sima": mean over image columns of the max over speech steps,
  "both": the average of the two,
  "sisa": the mean of M,
  "ordered": "misa" with the columns the speech steps pick constrained to
    run left to right (never back): the best monotonic alignment of speech
    to image, by dynamic programming. The others cannot tell "12" from
    "21"; this one can.
  "ordered_both": the average of "ordered" and its image-side twin (each
    image column matched to a speech step, left to right, averaged over
    columns), so neither side's length or silences weigh alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from avdigits import losses
from avdigits.errors import ConfigError

POOLINGS = ("ordered", "ordered_both", "misa", "sima", "both", "sisa")
_FAR = -1e4  # a masked column's score: below any path through real ones


def check_pooling(pooling: str, flag: str = "strings.pooling") -> str:
  if pooling not in POOLINGS:
    raise ConfigError(f"--config.{flag}: unknown pooling {pooling!r}; choose "
                      f"one of {', '.join(POOLINGS)}")
  return pooling


def matchmaps(speech: jax.Array, images: jax.Array) -> jax.Array:
  """Every pair's matchmap: speech [B, T, D], images [C, W, D] ->
  [B, C, T, W] of dot products."""
  return jnp.einsum("btd,cwd->bctw", speech, images,
                    precision=jax.lax.Precision.HIGHEST)


def _masked_max(x: jax.Array, mask: jax.Array, axis: int) -> jax.Array:
  return jnp.max(jnp.where(mask, x, -jnp.inf), axis=axis)


def _masked_mean(x: jax.Array, mask: jax.Array, axis: int) -> jax.Array:
  return (jnp.where(mask, x, 0.0).sum(axis=axis)
          / jnp.maximum(mask.sum(axis=axis), 1))


def pool(maps: jax.Array, speech_mask: jax.Array, image_mask: jax.Array,
         pooling: str) -> jax.Array:
  """Scores [B, C] of matchmaps [B, C, T, W] with masks [B, T] and [C, W]."""
  check_pooling(pooling)
  if pooling == "ordered":
    return _ordered(maps, speech_mask, image_mask)
  if pooling == "ordered_both":
    image_side = _ordered(jnp.swapaxes(maps, 0, 1).swapaxes(2, 3),
                          image_mask, speech_mask).T
    return 0.5 * (_ordered(maps, speech_mask, image_mask) + image_side)
  s = speech_mask[:, None, :, None]
  i = image_mask[None, :, None, :]
  if pooling == "sisa":
    both = s & i
    return (jnp.where(both, maps, 0.0).sum(axis=(2, 3))
            / jnp.maximum(both.sum(axis=(2, 3)), 1))
  misa = _masked_mean(_masked_max(maps, i, 3), speech_mask[:, None, :], 2)
  if pooling == "misa":
    return misa
  sima = _masked_mean(_masked_max(maps, s, 2), image_mask[None, :, :], 2)
  return sima if pooling == "sima" else 0.5 * (misa + sima)


def _running_max(x: jax.Array) -> jax.Array:
  """Running maximum along axis 0, one whole-slice maximum per row (the
  rows are image columns or speech steps, a few dozen: on the CPU this is
  about twice as fast as `lax.cummax` over the last axis)."""
  out = [x[0]]
  for row in x[1:]:
    out.append(jnp.maximum(out[-1], row))
  return jnp.stack(out)


def _ordered(maps: jax.Array, speech_mask: jax.Array, image_mask: jax.Array
             ) -> jax.Array:
  """Mean over valid speech steps of M[t, w(t)], maximised over
  non-decreasing column choices w(t): D_t = M_t + cummax_w(D_{t-1}), padded
  steps carrying D through; the best end column over valid ones. The scan
  runs over [T, W, B, C], pairs last, so each step is whole-slice work."""
  rows = jnp.transpose(jnp.where(image_mask[None, :, None, :], maps, _FAR),
                       (2, 3, 0, 1))

  def step(best, inputs):
    row, valid = inputs                          # [W, B, C], [B]
    extended = row + _running_max(best)
    return jnp.where(valid[None, :, None], extended, best), None

  start = jnp.zeros(rows.shape[1:], maps.dtype)
  best, _ = jax.lax.scan(step, start, (rows, speech_mask.T))
  best = jnp.max(jnp.where(image_mask.T[:, None, :], best, -jnp.inf), axis=0)
  return best / jnp.maximum(speech_mask.sum(axis=1), 1)[:, None]


def scores(speech: jax.Array, speech_mask: jax.Array, images: jax.Array,
           image_mask: jax.Array, pooling: str) -> jax.Array:
  """Pooled matchmap scores [B, C] of B spoken strings and C images."""
  return pool(matchmaps(speech, images), speech_mask, image_mask, pooling)


def score_blocks(speech: jax.Array, speech_mask: jax.Array,
                 images: jax.Array, image_mask: jax.Array, pooling: str
                 ) -> jax.Array:
  """Pooled scores of every block pair: speech [R, B, T, D] (masks
  [R, B, T]) and images [K, C, W, D] (masks [K, C, W]) -> [R, K, B, C],
  block by block (`lax.map` over both block axes), so that one compiled
  program holds only one [B, C, T, W] matchmap at a time."""

  def row(block):
    s, s_mask = block
    return jax.lax.map(lambda c: scores(s, s_mask, c[0], c[1], pooling),
                       (images, image_mask))

  return jax.lax.map(row, (speech, speech_mask))


_score_blocks = jax.jit(score_blocks, static_argnames="pooling")


def _blocks(x: np.ndarray, size: int) -> np.ndarray:
  """[N, ...] -> [ceil(N / size), size, ...], zero-padded (masks False)."""
  rows = -(-len(x) // size) * size
  padded = np.zeros((rows,) + x.shape[1:], x.dtype)
  padded[:len(x)] = x
  return padded.reshape((rows // size, size) + x.shape[1:])


def all_scores(speech: np.ndarray, speech_mask: np.ndarray,
               images: np.ndarray, image_mask: np.ndarray, pooling: str,
               block: int = 50) -> np.ndarray:
  """Exact pooled scores [N, M] of N spoken strings and M images, computed
  in one jitted program over `block` x `block` pair blocks (padding
  dropped): the same numbers as `scores` on all pairs at once."""
  check_pooling(pooling)
  n, m = len(speech), len(images)
  out = _score_blocks(
      _blocks(np.asarray(speech, np.float32), block),
      _blocks(np.asarray(speech_mask, bool), block),
      _blocks(np.asarray(images, np.float32), block),
      _blocks(np.asarray(image_mask, bool), block), pooling)
  out = np.asarray(out).transpose(0, 2, 1, 3)
  return out.reshape(out.shape[0] * block, -1)[:n, :m]


def same_strings(speech_digits: jax.Array, image_digits: jax.Array
                 ) -> jax.Array:
  """bool [B, C]: pairs that spell the same digit string."""
  return (speech_digits[:, None, :] == image_digits[None, :, :]).all(-1)


def contrastive_loss(speech: jax.Array, speech_mask: jax.Array,
                     images: jax.Array, image_mask: jax.Array,
                     digits: jax.Array, *, pooling: str,
                     temperature: float) -> jax.Array:
  """Symmetric InfoNCE over a batch of B pairs (row b's spoken string with
  column b's image): mean of both directions' cost per pair, [B]. Pairs of
  other rows spelling the same string are positives too."""
  return losses.info_nce(
      scores(speech, speech_mask, images, image_mask, pooling),
      same_strings(digits, digits), temperature, both_directions=True)


# ------------------------------------------------- reading and localisation


def class_scores(maps: np.ndarray, box_steps: np.ndarray,
                 image_mask: np.ndarray) -> np.ndarray:
  """Per speech step, the best score inside each digit box of a reading
  canvas and, last, the best over its blank columns: maps [..., T, W],
  box_steps [K, 2] -> [..., T, K + 1]."""
  maps = np.asarray(maps)
  columns = np.arange(maps.shape[-1])
  inside = np.zeros(maps.shape[-1], bool)
  out = []
  for start, stop in box_steps:
    out.append(maps[..., start:stop].max(-1))
    inside |= (columns >= start) & (columns < stop)
  blank = ~inside & np.asarray(image_mask, bool)
  out.append(np.where(blank, maps, -np.inf).max(-1))
  return np.stack(out, -1)


@jax.jit
def _segment_choices(step_scores: jax.Array, word_prior: jax.Array
                     ) -> jax.Array:
  """Forward pass of `read_segments` over strings [N, T, 11] whose valid
  steps come first: per end step t (1..T), the best last segment as 0
  (one blank step) or 1 + 10 (d - 1) + c (a word of class c, d steps)."""
  durations = jnp.arange(1, len(word_prior) + 1)

  def one(scores):
    total = jnp.concatenate([jnp.zeros((1, scores.shape[1]), scores.dtype),
                             jnp.cumsum(scores, axis=0)])

    def step(best, t):
      start = jnp.maximum(t - durations, 0)
      before = jnp.where(t - durations >= 0, best[start], -jnp.inf)
      words = (before[:, None] + total[t, :10] - total[start, :10]
               + word_prior[:, None])
      blank = best[t - 1] + scores[t - 1, 10]
      options = jnp.concatenate([blank[None], words.reshape(-1)])
      choice = jnp.argmax(options)
      return best.at[t].set(options[choice]), choice

    start = jnp.full(scores.shape[0] + 1, -jnp.inf).at[0].set(0.0)
    return jax.lax.scan(step, start, jnp.arange(1, scores.shape[0] + 1))[1]

  return jax.vmap(one)(step_scores)


def read_segments(step_scores: np.ndarray, valid: np.ndarray,
                  word_prior: np.ndarray) -> list[list[int]]:
  """The digits each spoken string says, by the best monotonic alignment of
  its valid speech steps to a sequence of segments: blank steps (scored by
  column 10 of `step_scores` [N, T, 11]) and digit words (c in 0..9 over d
  consecutive steps, scored by column c plus `word_prior[d - 1]`: a length
  prior and per-word bonus; -inf forbids d, and words are at most
  len(word_prior) steps). A digit said twice without a pause is two words
  when the prior favours two words' lengths over one. Semi-Markov Viterbi,
  forward pass jitted."""
  step_scores = np.asarray(step_scores, np.float32)
  valid = np.asarray(valid, bool)
  order = np.argsort(~valid, axis=1, kind="stable")   # valid steps first
  compact = np.take_along_axis(step_scores, order[..., None], axis=1)
  choices = np.asarray(_segment_choices(
      compact, jnp.asarray(word_prior, jnp.float32)))
  out = []
  for choice, t in zip(choices, valid.sum(axis=1), strict=True):
    digits = []
    while t > 0:
      k = int(choice[t - 1])
      if k == 0:
        t -= 1
        continue
      digits.append((k - 1) % 10)
      t -= (k - 1) // 10 + 1
    out.append(digits[::-1])
  return out


def edit_distance(a: list[int], b: list[int]) -> int:
  """Levenshtein distance of two sequences."""
  row = np.arange(len(b) + 1)
  for i, x in enumerate(a, 1):
    previous, row = row, np.empty_like(row)
    row[0] = i
    for j, y in enumerate(b, 1):
      row[j] = min(previous[j] + 1, row[j - 1] + 1,
                   previous[j - 1] + (x != y))
  return int(row[-1])


def localised(maps: np.ndarray, box_steps: np.ndarray,
              word_steps: np.ndarray, speech_mask: np.ndarray) -> np.ndarray:
  """bool [L] for one pair: whether each image digit's best-matching speech
  step (the argmax over valid steps of the max over its box's columns) lies
  inside that digit's word. maps [T, W]."""
  maps = np.where(np.asarray(speech_mask, bool)[:, None], maps, -np.inf)
  out = []
  for (start, stop), (w0, w1) in zip(box_steps, word_steps, strict=True):
    best = int(maps[:, start:stop].max(-1).argmax())
    out.append(w0 <= best < w1)
  return np.asarray(out, bool)


def ordered_path(maps: np.ndarray, speech_mask: np.ndarray,
                 image_mask: np.ndarray) -> np.ndarray:
  """The column each valid speech step takes on the best left-to-right
  alignment ("ordered" pooling) of one matchmap [T, W]; -1 for padded
  steps."""
  maps = np.where(np.asarray(image_mask, bool)[None, :], maps, _FAR)
  steps = np.flatnonzero(speech_mask)
  path = np.full(len(maps), -1)
  if not len(steps):
    return path
  best = np.zeros(maps.shape[1])
  came_from = []
  for t in steps:
    running = np.maximum.accumulate(best)
    # Where each column's running maximum was reached (leftmost).
    argmax = np.zeros(len(best), int)
    for w in range(1, len(best)):
      argmax[w] = argmax[w - 1] if best[argmax[w - 1]] >= best[w] else w
    came_from.append(argmax)
    best = maps[t] + running
  column = int(np.argmax(np.where(image_mask, best, -np.inf)))
  for k in range(len(steps) - 1, -1, -1):
    path[steps[k]] = column
    column = int(came_from[k][column])
  return path


def localised_on_path(maps: np.ndarray, path: np.ndarray,
                      box_steps: np.ndarray, word_steps: np.ndarray
                      ) -> np.ndarray:
  """bool [L] for one pair: whether each image digit's best-matching speech
  step among those the ordered alignment `path` gives its box's columns
  lies inside that digit's word (False if the path gives it none)."""
  out = []
  for (start, stop), (w0, w1) in zip(box_steps, word_steps, strict=True):
    steps = np.flatnonzero((path >= start) & (path < stop))
    if not len(steps):
      out.append(False)
      continue
    best = steps[int(np.argmax(maps[steps, path[steps]]))]
    out.append(w0 <= best < w1)
  return np.asarray(out, bool)
