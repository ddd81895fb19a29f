"""Test-time corruptions: seeded, bounded, and at the strength they claim."""

import numpy as np
import pytest

from avdigits.errors import ConfigError
from avdigits.inputs import corrupt


def _images(n=6):
  return np.random.default_rng(0).uniform(-0.5, 0.5, (n, 28, 28)).astype(
      np.float32)


def test_image_noise_is_seeded_clipped_and_scaled():
  x = np.zeros((200, 28, 28), np.float32)
  a = corrupt.image_noise(x, 0.1, seed=3)
  np.testing.assert_array_equal(a, corrupt.image_noise(x, 0.1, seed=3))
  assert abs(a.std() - 0.1) < 0.005
  assert corrupt.image_noise(_images(), 5.0, seed=0).max() <= 0.5
  np.testing.assert_array_equal(corrupt.image_noise(x, 0.0, seed=0), x)
  with pytest.raises(ConfigError, match="std"):
    corrupt.image_noise(x, -1.0, seed=0)


@pytest.mark.parametrize("size", [0, 1, 7, 28])
def test_occlusion_blanks_one_square_of_that_side(size):
  x = np.full((5, 28, 28), 0.5, np.float32)
  out = corrupt.image_occlusion(x, size, seed=1)
  blanked = (out == -0.5).sum(axis=(1, 2))
  np.testing.assert_array_equal(blanked, size * size)
  with pytest.raises(ConfigError, match="occlusion size"):
    corrupt.image_occlusion(x, 29, seed=0)


def test_corrupt_images_dispatches_and_rejects_unknown_kinds():
  x = _images()
  np.testing.assert_array_equal(corrupt.corrupt_images(x, "occlusion", 4, 2),
                                corrupt.image_occlusion(x, 4, 2))
  with pytest.raises(ConfigError, match="blur"):
    corrupt.corrupt_images(x, "blur", 1.0, 0)


@pytest.mark.parametrize("snr", [20.0, 5.0, 0.0, -5.0])
def test_mix_at_snr_hits_the_requested_snr(snr):
  rng = np.random.default_rng(0)
  signal = np.sin(np.arange(4000) / 7.0).astype(np.float32)
  noise = rng.standard_normal(4000)
  mixed = corrupt.mix_at_snr(signal, noise, snr)
  added = mixed - signal
  measured = 10 * np.log10(np.mean(signal ** 2) / np.mean(added ** 2))
  assert abs(measured - snr) < 1e-3


def test_silent_signal_and_length_mismatch():
  silent = np.zeros(100, np.float32)
  np.testing.assert_array_equal(
      corrupt.mix_at_snr(silent, np.ones(100), 0.0), silent)
  with pytest.raises(ConfigError, match="samples"):
    corrupt.mix_at_snr(silent, np.ones(99), 0.0)


def test_add_noise_white_and_babble_are_seeded():
  rng = np.random.default_rng(1)
  waves = [rng.uniform(-0.3, 0.3, n).astype(np.float32) for n in (800, 1200)]
  pool = [rng.uniform(-0.3, 0.3, 500).astype(np.float32) for _ in range(3)]
  for kind in corrupt.AUDIO_NOISES:
    a = corrupt.add_noise(waves, kind, 5.0, seed=4, pool=pool)
    b = corrupt.add_noise(waves, kind, 5.0, seed=4, pool=pool)
    assert [len(w) for w in a] == [800, 1200]
    for x, y, clean in zip(a, b, waves, strict=True):
      np.testing.assert_array_equal(x, y)
      assert not np.array_equal(x, clean)
  clean = corrupt.add_noise(waves, "white", float("inf"), seed=0)
  for x, y in zip(clean, waves, strict=True):
    np.testing.assert_array_equal(x, y)


def test_babble_needs_a_pool_and_known_kinds():
  with pytest.raises(ConfigError, match="pool"):
    corrupt.add_noise([np.ones(10, np.float32)], "babble", 0.0, seed=0)
  with pytest.raises(ConfigError, match="pink"):
    corrupt.add_noise([np.ones(10, np.float32)], "pink", 0.0, seed=0)
