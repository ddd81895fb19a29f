"""The paper's evaluation protocols and recall@k, on precomputed scores.

All functions take a score matrix `scores[i, j]` between test image i and
test utterance j (higher = better match), the images' digits and the
utterances' speech classes (10 = "oh", which denotes digit 0).
"""

from __future__ import annotations

import numpy as np

from avdigits.data.types import speech_class_to_digit
from avdigits.errors import DataError

NUM_DIGITS = 10


def _by_class(labels: np.ndarray, num_classes: int, what: str
              ) -> list[np.ndarray]:
  groups = [np.flatnonzero(labels == c) for c in range(num_classes)]
  missing = [c for c, g in enumerate(groups) if len(g) == 0]
  if missing:
    raise DataError(f"evaluation: the test {what} lack class(es) {missing}")
  return groups


def _draw(rng: np.random.Generator, groups: list[np.ndarray],
          trials: int) -> np.ndarray:
  """[trials, len(groups)]: one random member of every group per trial."""
  return np.stack([g[rng.integers(0, len(g), trials)] for g in groups], 1)


def _trials(rng: np.random.Generator, scores: np.ndarray,
            query_groups: list[np.ndarray],
            candidate_groups: list[np.ndarray], trials: int,
            correct: np.ndarray) -> dict:
  """For each query class q, `trials` random queries of q, each scored
  (`scores[query, candidate]`) against one random candidate of every
  candidate class; the pick is right where `correct[q, picked class]`.

  Returns the mean of the per-class accuracies, them, and the confusion
  matrix [query classes, candidate classes] (rows = truth).
  """
  confusion = np.zeros(correct.shape, np.int64)
  per_class = []
  for q, group in enumerate(query_groups):
    queries = group[rng.integers(0, len(group), trials)]
    candidates = _draw(rng, candidate_groups, trials)      # [T, classes]
    predicted = scores[queries[:, None], candidates].argmax(1)
    np.add.at(confusion[q], predicted, 1)
    per_class.append(float(np.mean(correct[q, predicted])))
  return {"accuracy": float(np.mean(per_class)), "per_class": per_class,
          "confusion": confusion.tolist()}


def annotation(scores: np.ndarray, image_digits: np.ndarray,
               speech_classes: np.ndarray, num_speech_classes: int, *,
               trials: int = 100, seed: int = 0) -> dict:
  """Image annotation: an image against one utterance of each speech class.

  For each digit, `trials` random test images of that digit; each is scored
  against one random test utterance of every speech class and annotated with
  the best-scoring class. "oh" and "zero" both count as 0.

  Returns accuracy (mean of per-digit accuracies), per_class accuracies and
  the confusion matrix [10 image digits, num_speech_classes] (rows = truth).
  """
  class_digits = speech_class_to_digit(np.arange(num_speech_classes))
  return _trials(
      np.random.default_rng(seed), scores,
      _by_class(image_digits, NUM_DIGITS, "images"),
      _by_class(speech_classes, num_speech_classes, "utterances"), trials,
      np.arange(NUM_DIGITS)[:, None] == class_digits[None, :])


def retrieval(scores: np.ndarray, image_digits: np.ndarray,
              speech_classes: np.ndarray, num_speech_classes: int, *,
              trials: int = 100, seed: int = 0) -> dict:
  """Image retrieval: an utterance against one image of each digit.

  Returns accuracy (mean of per-speech-class accuracies), per_class and the
  confusion matrix [num_speech_classes, 10 digits] (rows = truth).
  """
  class_digits = speech_class_to_digit(np.arange(num_speech_classes))
  return _trials(
      np.random.default_rng(seed + 1), scores.T,
      _by_class(speech_classes, num_speech_classes, "utterances"),
      _by_class(image_digits, NUM_DIGITS, "images"), trials,
      class_digits[:, None] == np.arange(NUM_DIGITS)[None, :])


def recall_at_k(scores: np.ndarray, query_digits: np.ndarray,
                item_digits: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)
                ) -> dict[str, float]:
  """Fraction of queries (rows) with a same-digit item among the top k."""
  order = np.argsort(-scores, axis=1, kind="stable")
  hits = item_digits[order] == query_digits[:, None]
  return {f"R@{k}": float(np.mean(hits[:, :k].any(1))) for k in ks}


def recall_both_ways(scores: np.ndarray, image_digits: np.ndarray,
                     speech_digits: np.ndarray) -> dict[str, dict[str, float]]:
  """recall@k of image queries among utterances and of utterance queries
  among images (`scores` [images, utterances]); defined for any subset of
  classes, unlike annotation and retrieval."""
  return {"image_to_speech": recall_at_k(scores, image_digits, speech_digits),
          "speech_to_image": recall_at_k(scores.T, speech_digits,
                                         image_digits)}


def evaluate_scores(scores: np.ndarray, image_digits: np.ndarray,
                    speech_classes: np.ndarray, num_speech_classes: int, *,
                    trials: int = 100, seed: int = 0) -> dict:
  """Annotation, retrieval and recall@k in both directions."""
  speech_digits = speech_class_to_digit(speech_classes)
  return {
      "annotation": annotation(scores, image_digits, speech_classes,
                               num_speech_classes, trials=trials, seed=seed),
      "retrieval": retrieval(scores, image_digits, speech_classes,
                             num_speech_classes, trials=trials, seed=seed),
      "recall": recall_both_ways(scores, image_digits, speech_digits),
  }
