"""The evaluation protocols on score matrices whose answers are known."""

import numpy as np
import pytest

from avdigits import evaluate
from avdigits.errors import DataError


def _perfect_scores(image_digits, speech_classes):
  speech_digits = np.where(speech_classes == 10, 0, speech_classes)
  return (image_digits[:, None] == speech_digits[None, :]).astype(float)


def _data(num_classes=11, per_class=5, seed=0):
  rng = np.random.default_rng(seed)
  image_digits = np.repeat(np.arange(10), per_class)
  speech_classes = np.repeat(np.arange(num_classes), per_class)
  return rng.permutation(image_digits), rng.permutation(speech_classes)


def test_perfect_scores_give_full_accuracy_and_oh_counts_as_zero():
  images, speech = _data()
  scores = _perfect_scores(images, speech)
  # Break ties towards "oh" for digit 0 so that the rule is exercised.
  scores[:, speech == 10] += 0.5
  out = evaluate.evaluate_scores(scores, images, speech, 11, trials=50)
  assert out["annotation"]["accuracy"] == 1.0
  assert out["retrieval"]["accuracy"] == 1.0
  confusion = np.array(out["annotation"]["confusion"])
  assert confusion.shape == (10, 11)
  assert confusion[0, 10] == 50 and confusion[0, 0] == 0
  assert np.array(out["retrieval"]["confusion"]).shape == (11, 10)
  assert out["recall"]["image_to_speech"]["R@1"] == 1.0
  assert out["recall"]["speech_to_image"]["R@1"] == 1.0


def test_random_scores_are_near_chance_and_seeded():
  images, speech = _data(num_classes=10, per_class=20)
  scores = np.random.default_rng(1).normal(size=(len(images), len(speech)))
  a = evaluate.annotation(scores, images, speech, 10, trials=200, seed=3)
  b = evaluate.annotation(scores, images, speech, 10, trials=200, seed=3)
  assert a == b
  assert 0.05 < a["accuracy"] < 0.16
  assert np.array(a["confusion"]).sum() == 2000


def test_accuracy_is_mean_of_per_class_accuracy():
  images, speech = _data(num_classes=10)
  scores = _perfect_scores(images, speech)
  # Digit 3 images always prefer utterances of 4: annotation of 3 fails.
  scores[images == 3] = (speech == 4)[None, :] * 2.0
  out = evaluate.annotation(scores, images, speech, 10, trials=30)
  assert out["per_class"][3] == 0.0
  assert out["accuracy"] == pytest.approx(0.9)
  assert np.array(out["confusion"])[3, 4] == 30


def test_recall_at_k_by_hand():
  scores = np.array([[0.9, 0.8, 0.1], [0.1, 0.2, 0.3]])
  query = np.array([1, 2])
  items = np.array([0, 1, 2])
  r = evaluate.recall_at_k(scores, query, items, ks=(1, 2, 3))
  assert r == {"R@1": 0.5, "R@2": 1.0, "R@3": 1.0}


def test_missing_class_is_named():
  images, speech = _data(num_classes=10)
  keep = speech != 7
  scores = _perfect_scores(images, speech[keep])
  with pytest.raises(DataError, match=r"lack class\(es\) \[7\]"):
    evaluate.annotation(scores, images, speech[keep], 10)


def test_evaluate_scores_on_a_hand_made_matrix():
  """One image per digit and one utterance per speech class ("oh" = 10), so
  every trial draws the same candidates and the answers are known:

  - image 3 scores "five" highest: annotation of 3 fails (0.9 overall);
  - image 0 scores "oh" highest: correct, "oh" names 0;
  - "seven" scores image 2 highest (2 prefers "two" itself): retrieval of
    "seven" fails (10/11 overall).
  """
  digits = np.arange(10)
  classes = np.arange(11)
  by_digit = (digits[:, None] == np.where(classes == 10, 0, classes)[None, :])
  scores = by_digit.astype(float)
  scores[3, 5] = 2.0                     # row 3's best; column 5 keeps 5
  scores[5, 5] = 4.0
  scores[0, 10] = 1.5                    # row 0's best and column 10's
  scores[2, 7] = 3.0                     # column 7's best; row 2 keeps 2
  scores[2, 2] = 5.0
  # Shuffled, so that the protocols must go by the labels.
  rng = np.random.default_rng(0)
  rows, cols = rng.permutation(10), rng.permutation(11)
  out = evaluate.evaluate_scores(scores[rows][:, cols], digits[rows],
                                 classes[cols], 11, trials=7, seed=3)

  annotation = out["annotation"]
  assert annotation["per_class"] == [1.0] * 3 + [0.0] + [1.0] * 6
  assert annotation["accuracy"] == pytest.approx(0.9)
  expected = np.zeros((10, 11), int)
  expected[digits, digits] = 7
  expected[3] = 0
  expected[3, 5] = 7
  expected[0] = 0
  expected[0, 10] = 7
  assert annotation["confusion"] == expected.tolist()

  retrieval = out["retrieval"]
  assert retrieval["per_class"] == [1.0] * 7 + [0.0] + [1.0] * 3
  assert retrieval["accuracy"] == pytest.approx(10 / 11)
  expected = np.zeros((11, 10), int)
  expected[digits, digits] = 7
  expected[7] = 0
  expected[7, 2] = 7
  expected[10, 0] = 7
  assert retrieval["confusion"] == expected.tolist()

  # Recall: image 3 finds "three" second, "seven" finds image 7 second.
  assert out["recall"]["image_to_speech"] == {"R@1": 0.9, "R@5": 1.0,
                                              "R@10": 1.0}
  assert out["recall"]["speech_to_image"] == {
      "R@1": pytest.approx(10 / 11), "R@5": 1.0, "R@10": 1.0}


def test_recall_at_k_query_without_a_same_digit_item_never_hits():
  scores = np.array([[0.9, 0.8, 0.1],    # digit 5: no item of digit 5
                     [0.1, 0.2, 0.3],    # digit 0: item 0 ranked third
                     [0.3, 0.2, 0.1]])   # digit 0: item 0 ranked first
  query = np.array([5, 0, 0])
  items = np.array([0, 1, 2])
  r = evaluate.recall_at_k(scores, query, items, ks=(1, 2, 3))
  assert r == {"R@1": pytest.approx(1 / 3), "R@2": pytest.approx(1 / 3),
               "R@3": pytest.approx(2 / 3)}


def test_recall_at_k_beyond_the_item_count_never_counts_a_miss():
  scores = np.array([[0.9, 0.8, 0.1]])
  r = evaluate.recall_at_k(scores, np.array([5]), np.array([0, 1, 2]),
                           ks=(3, 5))
  assert r == {"R@3": 0.0, "R@5": 0.0}
