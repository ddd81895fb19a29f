"""Evaluating a string model on a fixed test set of strings per length:

- retrieval: recall@1/5/10 both ways among the test strings of a length (a
  hit is a retrieved item spelling the same digit string);
- reading: each spoken string's digits read off its matchmap with a canvas
  of one image per digit class (`matchmap.class_scores`, `read_steps`);
  string accuracy and digit error rate (edit distance / length), the mean
  over `reading_trials` draws of the canvas's images;
- localisation: the fraction of image digits whose best-matching speech step
  (over the whole matchmap) falls inside that digit's spoken word;
  `localisation_aligned` counts the same among the steps the best ordered
  alignment gives the digit (`matchmap.ordered_path`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from avdigits import evaluate, features, matchmap
from avdigits.errors import DataError
from avdigits.models.sequence import STRIDE, StringModel
from avdigits.strings import data as strings_data
from avdigits.strings import features as strings_features
from avdigits.strings.train import step_mask

READING_GAP = 6        # blank columns around each digit of a reading canvas
EXAMPLES = 3           # test pairs kept for the heat-map figure
SCORE_BLOCK = 50       # pairs per side of one block of exact scoring


@dataclasses.dataclass(frozen=True)
class EvalSettings:
  """A config's `strings` evaluation settings."""
  test_lengths: tuple[int, ...] = (2, 3, 4, 5, 6, 7)
  test_strings: int = 1000
  reading_trials: int = 5
  min_read_steps: int = 5
  pooling: str = "ordered_both"


def test_strings(pools: strings_data.Pools, length: int, count: int,
                 seed: int, recorded: dict[int, tuple] | None = None
                 ) -> strings_data.Strings | None:
  """The fixed test strings of one length: a function of the seed, the
  length and the pools alone. With `recorded` ({length: (SpeechSet,
  digits)}), up to `count` of those recordings (None if it has none of
  this length), each paired with a drawn image."""
  rng = np.random.default_rng([seed, 17, length])
  if recorded is None:
    return strings_data.draw_strings(pools, length, count, rng)
  if length not in recorded:
    return None
  speech, digits = recorded[length]
  keep = np.sort(rng.permutation(len(digits))[:count])
  return strings_data.pair_with_images(speech.take(keep), digits[keep],
                                       pools, rng)


def _embed(model: StringModel, params: Any, method: str, x: np.ndarray,
           batch: int = 100) -> np.ndarray:
  fn = jax.jit(lambda p, v: model.apply({"params": p}, v, method=method))
  return np.concatenate([np.asarray(fn(params, x[i:i + batch]))
                         for i in range(0, len(x), batch)])


def score_matrix(speech: np.ndarray, speech_mask: np.ndarray,
                 images: np.ndarray, image_mask: np.ndarray, pooling: str,
                 block: int = SCORE_BLOCK) -> np.ndarray:
  """Exact pooled scores [N speech, M images]: one compiled program over
  `block` x `block` pair blocks (`matchmap.all_scores`)."""
  return matchmap.all_scores(speech, speech_mask, images, image_mask,
                             pooling, block)


def recall(scores: np.ndarray, digits: np.ndarray) -> dict[str, dict]:
  """Recall@{1,5,10} both ways; a hit spells the query's digit string."""
  codes = np.unique(digits, axis=0, return_inverse=True)[1].reshape(-1)
  return {direction: evaluate.recall_at_k(matrix, codes, codes)
          for direction, matrix in (("speech_to_image", scores),
                                    ("image_to_speech", scores.T))}


def reading_canvas(images: strings_data.ImageSet, pools: strings_data.Pools,
                   rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
  """(canvas uint8 [28, W], box steps [10, 2]): one random image of each
  digit, 0 to 9, READING_GAP blank columns apart."""
  picks = [int(rng.choice(pools.by_digit[d])) for d in range(10)]
  canvas, boxes = strings_data.compose_number(
      [images.images[i] for i in picks], rng, gap=READING_GAP)
  return canvas, np.stack([boxes[:, 0] // STRIDE,
                           -(-boxes[:, 1] // STRIDE)], -1)


def read(speech: np.ndarray, speech_mask: np.ndarray, canvas: np.ndarray,
         canvas_mask: np.ndarray, box_steps: np.ndarray, min_steps: int
         ) -> list[list[int]]:
  """Each spoken string's digits read against one embedded canvas
  (speech [N, T, D], canvas [W, D])."""
  maps = np.einsum("ntd,wd->ntw", speech, canvas)
  step_scores = matchmap.class_scores(maps, box_steps, canvas_mask)
  return [matchmap.read_steps(s, m, min_steps)
          for s, m in zip(step_scores, speech_mask, strict=True)]


def evaluate_length(model: StringModel, params: Any,
                    pools: strings_data.Pools, feature_cfg,
                    settings: EvalSettings, length: int, *, seed: int,
                    recorded: dict[int, tuple] | None = None
                    ) -> dict[str, Any] | None:
  """Every figure of one string length (and a few example matchmaps);
  None when `recorded` has no string of this length."""
  strings = test_strings(pools, length, settings.test_strings, seed,
                         recorded)
  if strings is None:
    return None
  arrays = strings_features.to_arrays(strings, feature_cfg)
  speech = _embed(model, params, "embed_speech", arrays.speech)
  images = _embed(model, params, "embed_images", arrays.images)
  speech_mask = step_mask(arrays.speech_mask)
  image_mask = step_mask(arrays.image_mask)
  out: dict[str, Any] = {"count": len(strings)}
  out["recall"] = recall(score_matrix(speech, speech_mask, images,
                                      image_mask, settings.pooling),
                         arrays.digits)

  rng = np.random.default_rng([seed, 19, length])
  exact, errors = [], []
  for _ in range(settings.reading_trials):
    canvas, box_steps = reading_canvas(pools.images, pools, rng)
    width = strings_features.round_up(canvas.shape[1],
                                       strings_features.COLUMN_MULTIPLE)
    padded = np.zeros((1, canvas.shape[0], width), np.uint8)
    padded[0, :, :canvas.shape[1]] = canvas
    embedded = _embed(model, params, "embed_images",
                      np.asarray(features.scale_images(padded)))[0]
    canvas_mask = step_mask(np.arange(width)[None] < canvas.shape[1])[0]
    got = read(speech, speech_mask, embedded, canvas_mask, box_steps,
               settings.min_read_steps)
    truth = arrays.digits.tolist()
    exact.append(np.mean([g == t for g, t in zip(got, truth, strict=True)]))
    errors.append(sum(matchmap.edit_distance(g, t)
                      for g, t in zip(got, truth, strict=True))
                  / arrays.digits.size)
  out["reading"] = {"string_accuracy": float(np.mean(exact)),
                    "digit_error_rate": float(np.mean(errors))}

  def matchmap_of(i: int) -> np.ndarray:
    return np.einsum("td,wd->tw", speech[i], images[i])

  if arrays.word_steps is not None:
    hits, aligned = [], []
    for i in range(len(strings)):
      maps = matchmap_of(i)
      hits.append(matchmap.localised(maps, arrays.box_steps[i],
                                     arrays.word_steps[i], speech_mask[i]))
      path = matchmap.ordered_path(maps, speech_mask[i], image_mask[i])
      aligned.append(matchmap.localised_on_path(
          maps, path, arrays.box_steps[i], arrays.word_steps[i]))
    out["localisation"] = float(np.mean(np.concatenate(hits)))
    out["localisation_aligned"] = float(np.mean(np.concatenate(aligned)))
  out["examples"] = [
      {"matchmap": np.round(matchmap_of(i)[speech_mask[i]][
          :, image_mask[i]], 3).tolist(),
       "first_step": int(np.argmax(speech_mask[i])),
       "words": (arrays.word_steps[i].tolist()
                 if arrays.word_steps is not None else None),
       "boxes": arrays.box_steps[i].tolist(),
       "digits": arrays.digits[i].tolist()}
      for i in range(min(EXAMPLES, len(strings)))]
  return out


def evaluate_model(model: StringModel, params: Any, pools: strings_data.Pools,
                   feature_cfg, settings: EvalSettings, *, seed: int,
                   recorded: dict[int, tuple] | None = None
                   ) -> dict[str, dict[str, Any]]:
  """{str(length): figures} over the settings' test lengths (those
  `recorded` has, when given)."""
  out = {}
  for length in settings.test_lengths:
    figures = evaluate_length(model, params, pools, feature_cfg, settings,
                              length, seed=seed, recorded=recorded)
    if figures is not None:
      out[str(length)] = figures
  if not out:
    raise DataError(f"no test strings of lengths {settings.test_lengths}")
  return out
