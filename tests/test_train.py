"""Classifier training: mixup batches and steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avdigits import models
from avdigits.errors import ConfigError
from avdigits.optim import make_optimizer
from avdigits.train import (
  ClassifierSchedule,
  _init_state,
  make_step_fn,
  mix_batch,
)


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
  net = models.SpeechNet(hidden=16, num_classes=4)
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
