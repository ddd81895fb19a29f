"""Joint training on pairs: losses, sampling, initialisation, resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avdigits import losses
from avdigits.errors import ConfigError
from avdigits.models import convnets
from avdigits.training import joint
from avdigits.training.workdir import Stage


def test_group_positives_for_ten_and_eleven_classes():
  np.testing.assert_array_equal(joint.group_positives(10),
                                np.eye(10, dtype=bool))
  pos = joint.group_positives(11)
  assert pos.shape == (10, 11)
  assert pos[0, 0] and pos[0, 10] and pos.sum() == 11


def _embeddings(g=3, c=10, e=16, noise=0.0, seed=0):
  rng = np.random.default_rng(seed)
  base = rng.normal(size=(10, e)).astype(np.float32) * 3
  x = np.broadcast_to(base, (g, 10, e)) + noise * rng.normal(size=(g, 10, e))
  y = np.broadcast_to(base[np.arange(c) % 10], (g, c, e)) + noise * rng.normal(
      size=(g, c, e))
  return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)


@pytest.mark.parametrize("kind", joint.JOINT_LOSSES)
def test_matched_embeddings_cost_less_than_shuffled(kind):
  x, y = _embeddings()
  pos = jnp.asarray(joint.group_positives(10))
  good = joint.group_loss(x, y, pos, kind)
  bad = joint.group_loss(x, y[:, ::-1], pos, kind)
  assert float(good) < float(bad)


def test_hinge_is_the_papers_hinge_summed_over_images():
  x, y = _embeddings(noise=1.0, seed=1)
  pos = jnp.asarray(joint.group_positives(10))
  scores = jnp.einsum("gde,gce->gdc", x, y)
  expected = losses.paper_hinge(scores, jnp.broadcast_to(pos, scores.shape)
                                ).sum(-1).mean()
  np.testing.assert_allclose(joint.group_loss(x, y, pos, "hinge"), expected,
                             rtol=1e-6)
  clamped = joint.group_loss(jnp.zeros_like(x), y, pos, "hinge", clamp=True)
  np.testing.assert_allclose(clamped, 90.0)  # every score 0: 9 negatives x 10


def _group_hinge_by_hand(x, y, positives, clamp, margin=1.0):
  """The group hinge and its gradient in x, by loops, in float64: the mean
  over groups g of sum over images d, positives p, negatives n of
  max(0, margin - S[d, p] + S[d, n]), S = x y^T (clamped: max(0, x y^T))."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  groups, digits, _ = x.shape
  loss, grad = 0.0, np.zeros_like(x)
  for g in range(groups):
    raw = x[g] @ y[g].T
    scores = np.maximum(raw, 0) if clamp else raw
    # dS[d, c] / dx[g, d] = y[g, c], zero where the clamp cuts.
    slope = (raw > 0) if clamp else np.ones_like(raw)
    for d in range(digits):
      for p in np.flatnonzero(positives[d]):
        for n in np.flatnonzero(~positives[d]):
          h = margin - scores[d, p] + scores[d, n]
          if h > 0:
            loss += h
            grad[g, d] += slope[d, n] * y[g, n] - slope[d, p] * y[g, p]
  return loss / groups, grad / groups


def test_clamped_hinge_matches_the_hand_computed_clamp():
  # Unstructured embeddings: about half the scores are negative and most
  # hinge terms are active, so the clamp changes both loss and gradient.
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(2, 10, 4)), jnp.float32)
  y = jnp.asarray(rng.normal(size=(2, 11, 4)), jnp.float32)
  pos = joint.group_positives(11)
  results = {}
  for clamp in (True, False):
    loss, grad = jax.value_and_grad(
        lambda x, c=clamp: joint.group_loss(x, y, jnp.asarray(pos), "hinge",
                                            clamp=c))(x)
    expected_loss, expected_grad = _group_hinge_by_hand(x, y, pos, clamp)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-5)
    results[clamp] = (float(loss), np.asarray(grad))
  assert abs(results[True][0] - results[False][0]) > 1.0
  assert np.abs(results[True][1] - results[False][1]).max() > 0.5


def test_unknown_loss_is_a_config_error():
  x, y = _embeddings()
  with pytest.raises(ConfigError, match="cosine"):
    joint.group_loss(x, y, jnp.asarray(joint.group_positives(10)), "cosine")
  with pytest.raises(ConfigError, match="train.loss"):
    joint.JointSchedule(loss="cosine").validate("train")


def test_sample_groups_draws_one_of_each_class():
  labels = np.repeat(np.arange(10), 7)
  np.random.default_rng(0).shuffle(labels)
  table, counts = joint.class_index_table(labels, 10)
  images, speech = joint.sample_groups(
      jax.random.key(0), 5, jnp.asarray(table), jnp.asarray(counts),
      jnp.asarray(table), jnp.asarray(counts))
  assert images.shape == (5, 10) and speech.shape == (5, 10)
  np.testing.assert_array_equal(labels[np.asarray(images)],
                                np.tile(np.arange(10), (5, 1)))


def _model(image=True, speech=True):
  return joint.JointModel(
      aligner=convnets.Aligner(embed_dim=8),
      image_net=convnets.ImageNet(widths=(4, 8), hidden=16) if image else None,
      speech_net=convnets.SpeechNet(hidden=16, num_classes=10, features=8)
      if speech else None)


def test_init_params_copies_pretrained_and_checks_shapes():
  images = np.zeros((2, 28, 28), np.float32)
  speech = np.zeros((2, 20, 23), np.float32)
  classifier = convnets.ImageNet(widths=(4, 8), hidden=16)
  pretrained = classifier.init(jax.random.key(5), images)["params"]
  params = joint.init_params(_model(), images, speech, 0,
                             {"image_net": pretrained})
  assert "logits" not in params["image_net"]
  np.testing.assert_array_equal(params["image_net"]["conv1"]["kernel"],
                                pretrained["conv1"]["kernel"])
  wider = convnets.ImageNet(widths=(8, 8), hidden=16).init(
      jax.random.key(0), images)["params"]
  with pytest.raises(ConfigError, match="shapes"):
    joint.init_params(_model(), images, speech, 0, {"image_net": wider})
  with pytest.raises(ConfigError, match="no such part"):
    joint.init_params(_model(image=False), np.zeros((2, 16), np.float32),
                      speech, 0, {"image_net": pretrained})


def _toy_data(seed=0):
  """Images and spectrograms whose class is written in a fixed pattern."""
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(10), 6)
  images = rng.normal(0, 0.05, (60, 28, 28)).astype(np.float32)
  speech = rng.normal(0, 0.05, (60, 20, 23)).astype(np.float32)
  for i, c in enumerate(labels):
    images[i, 2 * c:2 * c + 3, 4:24] = 0.5
    speech[i, 5:15, 2 * c:2 * c + 2] = 2.0
  return images, labels, speech, labels.copy()


def _train(tmp_path, name, steps, model=None):
  images, digits, speech, labels = _toy_data()
  # A constant rate, so that a 40-step run is the first 40 steps of a
  # 60-step one (a cosine schedule depends on the total).
  schedule = joint.JointSchedule(steps=steps, steps_per_chunk=20, groups=2,
                                 learning_rate=3e-3, lr_schedule="constant")
  stage = Stage(tmp_path, name, {"toy": 1})
  return joint.train_joint(model or _model(), images, digits, speech, labels,
                           10, schedule, seed=0, stage=stage, flag="train")


def test_joint_training_learns_the_pairs(tmp_path):
  out = _train(tmp_path, "a", 120)
  history = out["history"]
  assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
  images, digits, speech, labels = _toy_data(seed=1)
  scores = joint.score_matrix(_model(), out["params"], images, speech)
  assert (labels[scores.argmax(1)] == digits).mean() > 0.5  # chance: 0.1


def test_frozen_parts_take_activations(tmp_path):
  images, digits, speech, labels = _toy_data()
  model = _model(image=False)
  acts = images.reshape(60, -1)[:, :32]
  stage = Stage(tmp_path, "frozen", {})
  out = joint.train_joint(model, acts, digits, speech, labels, 10,
                          joint.JointSchedule(steps=20, steps_per_chunk=20,
                                              groups=2),
                          seed=0, stage=stage, flag="train")
  params = out["params"]
  assert set(params) == {"aligner", "speech_net"}
  # Both parts trained.
  start = joint.init_params(model, acts, speech, 0)
  for part in ("aligner", "speech_net"):
    assert any(not np.allclose(a, b) for a, b in zip(
        jax.tree.leaves(params[part]), jax.tree.leaves(start[part]),
        strict=True)), part
  # The activations go straight into the aligner: x = relu(acts W_d + b_d),
  # y = embed(speech) W_m + b_m, scores y . x, by hand.
  aligner = jax.tree.map(lambda a: np.asarray(a, np.float64),
                         params["aligner"])
  x = np.maximum(acts @ aligner["image_map"]["kernel"]
                 + aligner["image_map"]["bias"], 0)
  v = np.asarray(model.speech_net.apply({"params": params["speech_net"]},
                                        speech, method="embed"), np.float64)
  y = v @ aligner["speech_map"]["kernel"] + aligner["speech_map"]["bias"]
  np.testing.assert_allclose(joint.score_matrix(model, params, acts, speech),
                             x @ y.T, rtol=1e-4, atol=1e-4)
