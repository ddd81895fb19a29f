"""Augmentations keep shapes, are seeded, and do what they say."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avdigits.errors import ConfigError
from avdigits.inputs import augment


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


def test_stretch_by_factor_one_is_identity():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 100, 23)),
                  jnp.float32)
  for axis in (1, 2):
    np.testing.assert_allclose(
        augment._stretch(jax.random.key(0), x, axis, 0.0), x, atol=1e-6)


def test_warp_is_seeded_keeps_shape_and_changes_the_input():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 100, 23)),
                  jnp.float32)
  a = augment.augment("warp", jax.random.key(2), x, max_shift=5)
  np.testing.assert_array_equal(
      a, augment.augment("warp", jax.random.key(2), x, max_shift=5))
  assert a.shape == x.shape and np.isfinite(np.asarray(a)).all()
  assert not np.allclose(a, x)


def test_shift_noise_stays_in_pixel_range_and_occludes():
  x = jnp.full((16, 28, 28), 0.5)
  out = np.asarray(augment.augment("shift_noise", jax.random.key(0), x,
                                   max_shift=0))
  assert out.shape == x.shape
  assert out.min() >= -0.5 and out.max() <= 0.5
  assert (out == -0.5).sum() > 0


def test_existing_kinds_keep_their_random_streams():
  """Adding kinds must not change what "shift_mask" draws (docs figures
  were measured with it): its time shift, time mask and frequency mask come
  from the three keys of split(key, 3), as rebuilt here in numpy."""
  b, t, f, s = 3, 40, 16, 3
  x = np.random.default_rng(0).normal(size=(b, t, f)).astype(np.float32)
  key = jax.random.key(5)
  k_shift, k_time, k_freq = jax.random.split(key, 3)
  shifts = np.asarray(jax.random.randint(k_shift, (b,), -s, s + 1))
  expected = np.stack([np.roll(u, int(n), axis=0)
                       for u, n in zip(x, shifts, strict=True)])

  def band(k, size, width):
    """[B, size] True inside each example's masked band."""
    k1, k2 = jax.random.split(k)
    widths = np.asarray(jax.random.randint(k1, (b, 1), 0, width + 1))
    starts = np.asarray(jax.random.randint(k2, (b, 1), 0, size))
    pos = np.arange(size)[None, :]
    return (pos >= starts) & (pos < starts + widths)

  time_band = band(k_time, t, t // 10)       # up to 4 frames
  freq_band = band(k_freq, f, f // 8)        # up to 2 bins
  expected[time_band] = 0.0
  expected = np.where(freq_band[:, None, :], 0.0, expected)
  out = np.asarray(augment.augment("shift_mask", key, jnp.asarray(x),
                                   max_shift=s))
  np.testing.assert_array_equal(out, expected)
  assert time_band.any() and freq_band.any()   # the masks were exercised
  assert (shifts != 0).any()
  # "roll" is the same time shift without the masks.
  rolled = np.stack([np.roll(u, int(n), axis=0)
                     for u, n in zip(x, shifts, strict=True)])
  np.testing.assert_array_equal(
      augment.augment("roll", key, jnp.asarray(x), max_shift=s), rolled)


def test_shift_masks_adds_a_second_pair_of_masks_on_top_of_shift_mask():
  """"shift_masks" is "shift_mask" (same shift and first masks, same
  keys) times a second time and frequency mask: every value it keeps equals
  shift_mask's, and over a batch it zeroes strictly more."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 100, 23)),
                  jnp.float32)
  one = np.asarray(augment.augment("shift_mask", jax.random.key(3), x,
                                   max_shift=10))
  two = np.asarray(augment.augment("shift_masks", jax.random.key(3), x,
                                   max_shift=10))
  kept = two != 0
  np.testing.assert_array_equal(two[kept], one[kept])
  assert not (one == 0)[kept].any()
  assert (two == 0).sum() > (one == 0).sum()
