"""Evaluating a string model on a fixed test set of strings per length:

- retrieval: recall@1/5/10 both ways among the test strings of a length (a
  hit is a retrieved item spelling the same digit string);
- reading: each speech step scored against every digit class (its best
  column in that digit's box, and the best blank column, averaged over
  `reader_images` canvases of one image per digit from the training
  images), then the steps aligned left to right to blank and word segments
  (`matchmap.read_segments`), each word paid a bonus plus a weighted log
  prior of its length (the training utterances' durations); the minimum
  length, weight and bonus are chosen on dev strings built from training
  utterances and images (`choose_reader`). String accuracy and digit
  error rate (edit distance / length);
- localisation: the fraction of image digits whose best-matching speech step
  (over the whole matchmap) falls inside that digit's spoken word;
  `localisation_aligned` counts the same among the steps the best ordered
  alignment gives the digit (`matchmap.ordered_path`);
- chance R@1: the expected R@1 of random scores on these test strings
  (`chance_recall_at_1`; strings that repeat raise it above 1/N).

The test strings are a function of the data seed (the split's) and the
length, so every training seed is scored on the same ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
from typing import Any

import jax
import numpy as np

from avdigits import evaluate, features, matchmap, settings
from avdigits.errors import ConfigError, DataError
from avdigits.models.sequence import STRIDE, StringModel
from avdigits.strings import data as strings_data
from avdigits.strings import features as strings_features
from avdigits.strings.train import step_mask

READING_GAP = 6        # blank columns around each digit of a reading canvas
EXAMPLES = 3           # test pairs kept for the heat-map figure
SCORE_BLOCK = 50       # pairs per side of one block of exact scoring


@dataclasses.dataclass(frozen=True)
class EvalSettings:
  """A config's `strings` evaluation settings; `pooling` scores the pairs
  for retrieval."""
  test_lengths: tuple[int, ...] = (2, 3, 4, 5, 6, 7)
  test_strings: int = 1000
  pooling: str = "ordered_both"
  reader_images: int = 5
  reader_min_steps: tuple[int, ...] = (1, 3)
  reader_duration_weight: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)
  reader_word_bonus: tuple[float, ...] = (-3.0, -2.0, -1.0, -0.5, 0.0, 1.0)
  reader_dev_strings: int = 100

  @classmethod
  def from_config(cls, section: Any) -> EvalSettings:
    """The settings of a `strings` section: retrieval is scored with its
    `eval_pooling` when set, else with the pooling the model trained
    with."""
    return settings.from_section(
        cls, section, pooling=section.get("eval_pooling")
        or section.get("pooling", cls.pooling))


def test_strings(pools: strings_data.Pools, length: int, count: int,
                 seed: int, recorded: dict[int, tuple] | None = None
                 ) -> strings_data.Strings | None:
  """The fixed test strings of one length: a function of `seed` (the data
  seed, not a training seed), the length and the pools alone. With
  `recorded` ({length: (SpeechSet, digits)}), up to `count` of those
  recordings (None if it has none of this length), each paired with a
  drawn image."""
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


def chance_recall_at_1(digits: np.ndarray) -> float:
  """Expected R@1 of random scores among strings `digits` [N, L] (either
  direction): each query's top item is uniform, a hit with probability
  (items spelling its string) / N."""
  codes = np.unique(digits, axis=0, return_inverse=True)[1].reshape(-1)
  counts = np.bincount(codes)
  return float(np.mean(counts[codes]) / len(codes))


def fingerprint(strings: strings_data.Strings) -> str:
  """A short digest of which utterances and images make the strings."""
  text = "|".join(",".join(ids) for ids in strings.utterance_ids)
  return hashlib.sha1(text.encode()).hexdigest()[:16]


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


@dataclasses.dataclass(frozen=True)
class Prototypes:
  """What the reader scores speech steps against: embedded reading
  canvases [K, W, D] with step masks [K, W] and digit boxes [K, 10, 2]."""
  canvases: np.ndarray
  masks: np.ndarray
  boxes: np.ndarray


def prototypes(model: StringModel, params: Any, pools: strings_data.Pools,
               count: int, rng: np.random.Generator) -> Prototypes:
  """`count` reading canvases of the pools' images, embedded."""
  drawn = [reading_canvas(pools.images, pools, rng) for _ in range(count)]
  width = strings_features.round_up(max(c.shape[1] for c, _ in drawn),
                                    strings_features.COLUMN_MULTIPLE)
  padded = np.zeros((count, strings_data.HEIGHT, width), np.uint8)
  for k, (canvas, _) in enumerate(drawn):
    padded[k, :, :canvas.shape[1]] = canvas
  masks = step_mask(np.arange(width)[None] < np.array(
      [c.shape[1] for c, _ in drawn])[:, None])
  return Prototypes(_embed(model, params, "embed_images",
                           np.asarray(features.scale_images(padded))),
                    masks, np.stack([b for _, b in drawn]))


def step_class_scores(speech: np.ndarray, protos: Prototypes) -> np.ndarray:
  """[N, T, 11]: each speech step's score for digits 0-9 and the blank,
  the mean over the prototypes' canvases of `matchmap.class_scores`."""
  return np.mean([matchmap.class_scores(speech @ canvas.T, boxes, mask)
                  for canvas, mask, boxes in zip(
                      protos.canvases, protos.masks, protos.boxes,
                      strict=True)], axis=0)


def word_durations(pools: strings_data.Pools) -> np.ndarray:
  """log p(d) for d = 1..D speech steps: how long the pools' utterances
  (digit words) last, add-one smoothed, D the longest."""
  speech = pools.speech
  index = np.concatenate([np.concatenate(by) for by in
                          pools.by_speaker.values()])
  step_s = features.FRAME_SHIFT_MS * STRIDE / 1000
  steps = np.array([math.ceil(len(speech.waveforms[i]) / speech.sample_rate
                              / step_s) for i in index])
  counts = np.bincount(steps, minlength=steps.max() + 1)[1:] + 1.0
  return np.log(counts / counts.sum())


def word_prior(log_durations: np.ndarray, min_steps: int, weight: float,
               bonus: float) -> np.ndarray:
  """`read_segments`' per-word score by length: bonus + weight log p(d),
  words shorter than `min_steps` forbidden."""
  prior = bonus + weight * np.asarray(log_durations, np.float64)
  prior[:min_steps - 1] = -np.inf
  return prior


def reading_figures(got: list[list[int]], digits: np.ndarray
                    ) -> dict[str, float]:
  """String accuracy and digit error rate (edit distance / digits)."""
  truth = digits.tolist()
  return {"string_accuracy": float(np.mean([
      g == t for g, t in zip(got, truth, strict=True)])),
          "digit_error_rate": sum(matchmap.edit_distance(g, t) for g, t in
                                  zip(got, truth, strict=True))
          / digits.size}


def choose_reading(dev: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                   log_durations: np.ndarray, settings: EvalSettings
                   ) -> dict[str, Any]:
  """The reader settings (min_steps, duration_weight, word_bonus) with the
  best mean string accuracy (then digit error rate, then grid order) over
  dev sets [(step scores, valid steps, digits)], with every setting's dev
  figures."""
  table = []
  for low, weight, bonus in itertools.product(
      settings.reader_min_steps, settings.reader_duration_weight,
      settings.reader_word_bonus):
    prior = word_prior(log_durations, low, weight, bonus)
    figures = [reading_figures(matchmap.read_segments(scores, valid, prior),
                               digits) for scores, valid, digits in dev]
    table.append({"min_steps": low, "duration_weight": weight,
                  "word_bonus": bonus,
                  **{k: float(np.mean([f[k] for f in figures]))
                     for k in ("string_accuracy", "digit_error_rate")}})
  best = min(range(len(table)), key=lambda i: (
      -table[i]["string_accuracy"], table[i]["digit_error_rate"], i))
  return {**{k: table[best][k] for k in ("min_steps", "duration_weight",
                                         "word_bonus")},
          "log_durations": np.asarray(log_durations).tolist(),
          "dev": table}


def choose_reader(model: StringModel, params: Any,
                  pools: strings_data.Pools, protos: Prototypes,
                  feature_cfg, settings: EvalSettings, *, seed: int
                  ) -> dict[str, Any]:
  """`choose_reading` on `reader_dev_strings` strings of each test length
  drawn from `pools` (the training utterances and images)."""
  rng = np.random.default_rng([seed, 23])
  dev = []
  for length in settings.test_lengths:
    strings = strings_data.draw_strings(pools, length,
                                        settings.reader_dev_strings, rng)
    arrays = strings_features.to_arrays(strings, feature_cfg)
    speech = _embed(model, params, "embed_speech", arrays.speech)
    dev.append((step_class_scores(speech, protos),
                step_mask(arrays.speech_mask), arrays.digits))
  out = choose_reading(dev, word_durations(pools), settings)
  out["dev_lengths"] = list(settings.test_lengths)
  out["dev_strings"] = settings.reader_dev_strings
  return out


def evaluate_length(model: StringModel, params: Any,
                    pools: strings_data.Pools, feature_cfg,
                    settings: EvalSettings, length: int, *, test_seed: int,
                    protos: Prototypes, reading: dict[str, Any],
                    recorded: dict[int, tuple] | None = None
                    ) -> dict[str, Any] | None:
  """Every figure of one string length (and a few example matchmaps),
  read with the `reading` settings against `protos`; None when `recorded`
  has no string of this length."""
  strings = test_strings(pools, length, settings.test_strings, test_seed,
                         recorded)
  if strings is None:
    return None
  arrays = strings_features.to_arrays(strings, feature_cfg)
  speech = _embed(model, params, "embed_speech", arrays.speech)
  images = _embed(model, params, "embed_images", arrays.images)
  speech_mask = step_mask(arrays.speech_mask)
  image_mask = step_mask(arrays.image_mask)
  out: dict[str, Any] = {"count": len(strings),
                         "test_strings": fingerprint(strings)}
  out["recall"] = recall(score_matrix(speech, speech_mask, images,
                                      image_mask, settings.pooling),
                         arrays.digits)
  out["chance_R@1"] = chance_recall_at_1(arrays.digits)
  out["reading"] = reading_figures(matchmap.read_segments(
      step_class_scores(speech, protos), speech_mask, word_prior(
          reading["log_durations"], reading["min_steps"],
          reading["duration_weight"], reading["word_bonus"])),
      arrays.digits)

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
                   test_seed: int,
                   reader_pools: strings_data.Pools | None = None,
                   reading: dict[str, Any] | None = None,
                   recorded: dict[int, tuple] | None = None
                   ) -> dict[str, Any]:
  """{"strings": {str(length): figures} over the settings' test lengths
  (those `recorded` has, when given), "reader": its settings}. Test
  strings come from `pools` and `test_seed`; the reader's canvases from
  `reader_pools` (the training images; else the test ones) and, without
  given `reading` settings, its choice from strings of `reader_pools`."""
  source = reader_pools if reader_pools is not None else pools
  protos = prototypes(model, params, source, settings.reader_images,
                      np.random.default_rng([seed, 19]))
  if reading is None:
    if reader_pools is None:
      raise ConfigError("the strings reader needs training strings to "
                        "choose its settings on, or settings of a trained "
                        "run")
    reading = choose_reader(model, params, reader_pools, protos, feature_cfg,
                            settings, seed=seed)
  reading = dict(reading, prototypes=("training images"
                                      if reader_pools is not None
                                      else "test images"))
  out = {}
  for length in settings.test_lengths:
    figures = evaluate_length(model, params, pools, feature_cfg, settings,
                              length, test_seed=test_seed, protos=protos,
                              reading=reading, recorded=recorded)
    if figures is not None:
      out[str(length)] = figures
  if not out:
    raise DataError(f"no test strings of lengths {settings.test_lengths}")
  return {"strings": out, "reader": reading}
