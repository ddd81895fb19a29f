"""Classifier training: mixup batches and steps, batched prediction."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avdigits.errors import ConfigError
from avdigits.models import convnets
from avdigits.training.classifier import (
  ClassifierSchedule,
  _init_state,
  make_predict_fn,
  make_step_fn,
  mix_batch,
)
from avdigits.training.optim import make_optimizer


def test_mix_batch_is_a_convex_pairing():
  x = jnp.arange(24, dtype=jnp.float32).reshape(6, 4)
  y = jnp.arange(6)
  key = jax.random.key(3)
  mixed, y1, y2, lam = mix_batch(key, x, y, 0.4)
  lam_key, perm_key = jax.random.split(key)
  perm = jax.random.permutation(perm_key, 6)
  assert float(lam) == pytest.approx(float(jax.random.beta(lam_key, 0.4,
                                                           0.4)))
  assert 0 <= float(lam) <= 1
  np.testing.assert_allclose(mixed, lam * x + (1 - lam) * x[perm],
                             rtol=1e-6)
  np.testing.assert_array_equal(y1, y)
  np.testing.assert_array_equal(y2, y[perm])


def _step(mixup, seed=0):
  net = convnets.SpeechNet(hidden=16, num_classes=4)
  tx = make_optimizer("adam", 1e-3, 10)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 20, 23)),
                  jnp.float32)
  y = jnp.arange(8) % 4
  state = _init_state(net, tx, x, 0)
  step = make_step_fn(net, tx, mixup=mixup, seed=seed)
  _, loss = step(state, x, y, jnp.arange(8))
  return float(loss)


def test_mixup_step_is_seeded_and_changes_the_loss():
  assert _step(0.4) == _step(0.4)
  assert _step(0.4) != _step(0.0)
  assert _step(0.4) != _step(0.4, seed=1)
  assert np.isfinite(_step(0.4))


def test_negative_mixup_is_a_config_error():
  schedule = ClassifierSchedule(batch_size=2, steps=1, steps_per_chunk=1,
                                mixup=-0.1)
  with pytest.raises(ConfigError, match="speech.mixup"):
    schedule.validate("speech", 10)


_TRACED_SHAPES = []


class _Traced(nn.Module):
  """A dense layer that records the input shapes it is traced with."""

  @nn.compact
  def __call__(self, x):
    _TRACED_SHAPES.append(x.shape)
    return nn.Dense(3)(x)


def test_predict_pads_the_last_batch_and_matches_one_apply():
  model = _Traced()
  x = np.random.default_rng(0).normal(size=(10, 5)).astype(np.float32)
  params = model.init(jax.random.key(0), x[:1])["params"]
  predict = make_predict_fn(model, batch_size=4)
  _TRACED_SHAPES.clear()
  out = predict(params, x)        # batches of 4, 4 and 2 padded to 4
  assert _TRACED_SHAPES == [(4, 5)]  # one compiled shape
  assert out.shape == (10, 3)
  np.testing.assert_allclose(out, model.apply({"params": params}, x),
                             rtol=1e-6, atol=1e-6)
  # Fewer examples than a batch: applied as they are, no padding.
  _TRACED_SHAPES.clear()
  few = predict(params, x[:3])
  assert _TRACED_SHAPES == [(3, 5)]
  np.testing.assert_allclose(few, model.apply({"params": params}, x[:3]),
                             rtol=1e-6, atol=1e-6)
