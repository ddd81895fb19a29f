"""Augmentations keep shapes, are seeded, and do what they say."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avdigits import augment
from avdigits.errors import ConfigError


def test_none_is_identity():
  x = jnp.ones((2, 5, 5))
  assert augment.augment("none", jax.random.key(0), x, max_shift=2) is x


def test_shift_translates_with_zero_fill():
  x = jnp.zeros((8, 28, 28)).at[:, 10:18, 10:18].set(1.0)
  out = np.asarray(augment.augment("shift", jax.random.key(0), x,
                                   max_shift=2))
  assert out.shape == x.shape
  np.testing.assert_allclose(out.sum((1, 2)), 64.0)  # nothing falls off
  ys, xs = np.nonzero(out[0])
  assert 8 <= ys.min() <= 12 and 8 <= xs.min() <= 12
  assert any(not np.array_equal(out[0], o) for o in out[1:])


def test_shift_mask_is_seeded_and_keeps_shape():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 100, 23, 1)),
                  jnp.float32)
  a = augment.augment("shift_mask", jax.random.key(1), x, max_shift=10)
  b = augment.augment("shift_mask", jax.random.key(1), x, max_shift=10)
  assert a.shape == x.shape
  np.testing.assert_array_equal(a, b)
  assert (np.asarray(a) == 0).mean() > (np.asarray(x) == 0).mean()


def test_unknown_kind_names_the_flag():
  with pytest.raises(ConfigError, match="speech.augment"):
    augment.validate("mixup", "speech")
