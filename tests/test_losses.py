"""Tests for avdigits.losses against plain-Python loops."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avdigits import losses
from avdigits.errors import ConfigError

RTOL, ATOL = 1e-5, 1e-5


def _random_case(seed, b=4, c=7, classes=11):
  """Random scores [b, c] and the positives of random image/speech classes."""
  rng = np.random.default_rng(seed)
  scores = rng.normal(size=(b, c)).astype(np.float32)
  image_digits = rng.integers(0, 10, b)
  speech_classes = rng.integers(0, classes, (b, c))
  positives = np.asarray(losses.positive_mask(image_digits, speech_classes))
  return jnp.asarray(scores), positives


# Plain-Python references: loops over rows and pairs, in float64 numpy, each
# returning the per-row values [B] and the gradient of w . values by hand.


def _ref_hinge(scores, positives, weights, margin=1.0):
  scores = np.asarray(scores, np.float64)
  values, grad = np.zeros(scores.shape[0]), np.zeros(scores.shape)
  for b in range(scores.shape[0]):
    for p in range(scores.shape[1]):
      for n in range(scores.shape[1]):
        if positives[b, p] and not positives[b, n]:
          cost = margin - scores[b, p] + scores[b, n]
          if cost > 0:
            values[b] += cost
            grad[b, p] -= weights[b]
            grad[b, n] += weights[b]
  return values, grad


def _ref_nce(scores, positives, weights, temperature):
  scores = np.asarray(scores, np.float64)
  values, grad = np.zeros(scores.shape[0]), np.zeros(scores.shape)
  for b in range(scores.shape[0]):
    if not positives[b].any():
      continue
    exp = [math.exp(s / temperature) for s in scores[b]]
    total = sum(exp)
    positive_total = sum(e for e, p in zip(exp, positives[b], strict=True) if p)
    values[b] = -math.log(positive_total / total)
    for k, (e, p) in enumerate(zip(exp, positives[b], strict=True)):
      grad[b, k] = weights[b] * (e / total
                                 - (e / positive_total if p else 0.0))
      grad[b, k] /= temperature
  return values, grad


def _weights(n):
  return np.random.default_rng(0).uniform(0.5, 2.0, n)


def _check(fn, scores, values, grad):
  """fn(scores) [B] == values, and the gradient of w . fn(scores) == grad."""
  weights = jnp.asarray(_weights(scores.shape[0]), jnp.float32)

  def weighted_total(s):
    rows = fn(s)
    return jnp.dot(weights, rows), rows

  (_, rows), gradient = jax.jit(
      jax.value_and_grad(weighted_total, has_aux=True))(scores)
  np.testing.assert_allclose(rows, values, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(gradient, grad, rtol=RTOL, atol=ATOL)
  assert np.abs(grad).sum() > 0


def test_cross_entropy_and_accuracy_match_loops():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(5, 10)).astype(np.float32)
  labels = rng.integers(0, 10, 5).astype(np.int32)
  expected = np.mean([
      -(logits[i, labels[i]] - math.log(sum(math.exp(v) for v in logits[i])))
      for i in range(5)])
  np.testing.assert_allclose(losses.cross_entropy(logits, labels), expected,
                             rtol=RTOL)
  labels[:3] = logits[:3].argmax(axis=1)
  labels[3:] = (logits[3:].argmax(axis=1) + 1) % 10
  assert float(losses.accuracy(logits, labels)) == pytest.approx(0.6)


def test_positive_mask_oh_and_zero_both_denote_zero():
  speech = np.arange(11)  # "zero".."nine", then "oh"
  mask = np.asarray(losses.positive_mask(np.array([0, 3, 9]), speech))
  assert mask.shape == (3, 11)
  assert np.flatnonzero(mask[0]).tolist() == [0, 10]
  assert np.flatnonzero(mask[1]).tolist() == [3]
  assert np.flatnonzero(mask[2]).tolist() == [9]
  per_row = np.array([[10, 0, 1], [10, 0, 1]])
  np.testing.assert_array_equal(
      losses.positive_mask(np.array([0, 1]), per_row),
      [[True, True, False], [False, False, True]])


def test_paper_hinge_oh_zero_by_hand():
  # Image of a 0; candidates "zero", "oh", "one", "two".
  scores = jnp.array([[2.0, 1.5, 1.0, -3.0]])
  positives = losses.positive_mask(np.array([0]), np.array([0, 10, 1, 2]))
  # Pairs: (zero, one) 0, (zero, two) 0, (oh, one) 0.5, (oh, two) 0.
  # "oh" and "zero" are never ranked against each other.
  assert float(losses.paper_hinge(scores, positives)[0]) == pytest.approx(0.5)
  assert float(losses.paper_hinge(scores, positives, margin=2.0)[0]) == (
      pytest.approx(1.0 + 1.5))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paper_hinge_matches_loop(seed):
  scores, positives = _random_case(seed)
  weights = _weights(scores.shape[0])
  _check(lambda s: losses.paper_hinge(s, positives, margin=0.7), scores,
         *_ref_hinge(scores, positives, weights, margin=0.7))


def test_paper_hinge_without_negatives_or_positives_is_zero():
  scores = jnp.array([[0.3, -0.2], [0.1, 0.4]])
  positives = np.array([[True, True], [False, False]])
  np.testing.assert_array_equal(losses.paper_hinge(scores, positives), [0, 0])


def test_paper_hinge_single_row_and_vmap():
  scores, positives = _random_case(3, b=6)
  expected, _ = _ref_hinge(scores, positives, _weights(6))
  stacked, stacked_pos = scores.reshape(2, 3, -1), positives.reshape(2, 3, -1)
  vmapped = jax.vmap(losses.paper_hinge)(stacked, stacked_pos)
  looped = jnp.stack([losses.paper_hinge(stacked[t], stacked_pos[t])
                      for t in range(2)])
  np.testing.assert_allclose(vmapped, looped, rtol=RTOL)
  np.testing.assert_allclose(vmapped.reshape(-1), expected, rtol=RTOL,
                             atol=ATOL)
  single = losses.paper_hinge(scores[0], positives[0])
  assert single.shape == ()
  np.testing.assert_allclose(single, expected[0], rtol=RTOL)


def test_symmetric_hinge_matches_loop():
  scores, positives = _random_case(4, b=4, c=6)
  speech_scores, speech_positives = _random_case(5, b=4, c=5)
  weights = _weights(4)
  image_values, image_grad = _ref_hinge(scores, positives, weights)
  speech_values, speech_grad = _ref_hinge(speech_scores, speech_positives,
                                          weights)
  _check(lambda s: losses.symmetric_hinge(s, positives, speech_scores,
                                          speech_positives),
         scores, image_values + speech_values, image_grad)
  _check(lambda s: losses.symmetric_hinge(scores, positives, s,
                                          speech_positives),
         speech_scores, image_values + speech_values, speech_grad)


def test_symmetric_hinge_square_uses_transpose():
  rng = np.random.default_rng(6)
  digits = rng.integers(0, 10, 5)
  speech = np.where(digits == 0, 10, digits)  # "oh" pairs with image 0
  positives = np.asarray(losses.positive_mask(digits, speech))
  scores = jnp.asarray(rng.normal(size=(5, 5)).astype(np.float32))
  weights = _weights(5)
  image_values, image_grad = _ref_hinge(scores, positives, weights)
  speech_values, speech_grad = _ref_hinge(scores.T, positives.T, weights)
  _check(lambda s: losses.symmetric_hinge(s, positives), scores,
         image_values + speech_values, image_grad + speech_grad.T)
  vmapped = jax.vmap(losses.symmetric_hinge)(
      jnp.stack([scores, 2 * scores]), np.stack([positives, positives]))
  np.testing.assert_allclose(
      vmapped[1], losses.symmetric_hinge(2 * scores, positives), rtol=RTOL)
  with pytest.raises(ConfigError, match="square"):
    losses.symmetric_hinge(scores[:, :4], positives[:, :4])
  with pytest.raises(ConfigError, match="speech_positives"):
    losses.symmetric_hinge(scores, positives, scores)


@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_info_nce_matches_loop(temperature):
  scores, positives = _random_case(7, b=5, c=6)
  positives = np.array(positives)
  positives[2] = False  # a row without positives costs 0
  positives[3, :2] = True  # and one with several
  _check(lambda s: losses.info_nce(s, positives, temperature), scores,
         *_ref_nce(scores, positives, _weights(5), temperature))
  assert float(losses.info_nce(scores, positives, temperature)[2]) == 0.0


def test_info_nce_both_directions_and_identity():
  scores, positives = _random_case(8, b=5, c=5)
  weights = _weights(5)
  rows, rows_grad = _ref_nce(scores, positives, weights, 0.5)
  cols, cols_grad = _ref_nce(scores.T, positives.T, weights, 0.5)
  _check(lambda s: losses.info_nce(s, positives, 0.5, both_directions=True),
         scores, 0.5 * (rows + cols), 0.5 * (rows_grad + cols_grad.T))
  eye = np.eye(5, dtype=bool)
  np.testing.assert_allclose(losses.info_nce(scores, None, 0.5),
                             _ref_nce(scores, eye, weights, 0.5)[0],
                             rtol=RTOL)
  with pytest.raises(ConfigError, match="square"):
    losses.info_nce(scores[:, :3], positives[:, :3], both_directions=True)


def test_info_nce_vmap_and_jit():
  scores, positives = _random_case(9, b=6, c=4)
  stacked, stacked_pos = scores.reshape(2, 3, 4), positives.reshape(2, 3, 4)
  vmapped = jax.vmap(lambda s, p: losses.info_nce(s, p, 0.2))(stacked,
                                                            stacked_pos)
  np.testing.assert_allclose(vmapped.reshape(-1),
                             _ref_nce(scores, positives, _weights(6), 0.2)[0],
                             rtol=RTOL, atol=ATOL)
  jitted = jax.jit(losses.info_nce, static_argnames="both_directions")
  np.testing.assert_allclose(jitted(scores, positives, 0.2),
                             losses.info_nce(scores, positives, 0.2),
                             rtol=RTOL)


def test_losses_jit():
  scores, positives = _random_case(10)
  np.testing.assert_allclose(jax.jit(losses.paper_hinge)(scores, positives),
                             losses.paper_hinge(scores, positives), rtol=RTOL)
  digits, speech = np.array([0, 4]), np.array([[10, 4], [4, 0]])
  np.testing.assert_array_equal(jax.jit(losses.positive_mask)(digits, speech),
                                [[True, False], [True, False]])
