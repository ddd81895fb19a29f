"""Training perturbations for unseen voices: speed, channel, VTLP, trimming."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avdigits import features
from avdigits.errors import ConfigError
from avdigits.inputs import perturb

RATE = 8000


def _tone(n: int = 4000, freq: float = 440.0, seed: int = 0) -> np.ndarray:
  t = np.arange(n) / RATE
  noise = np.random.default_rng(seed).normal(0, 0.01, n)
  return (0.5 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


waves = st.builds(_tone, st.integers(400, 6000), st.floats(100.0, 3000.0),
                  st.integers(0, 100))


@settings(max_examples=20, deadline=None)
@given(waves)
def test_speed_one_is_identity(wave):
  out = perturb.speed(wave, 1.0)
  assert out.dtype == np.float32 and out.shape == wave.shape
  np.testing.assert_array_equal(out, wave)
  assert out is not wave


@settings(max_examples=20, deadline=None)
@given(waves, st.sampled_from([0.9, 1.1, 0.95, 1.2]))
def test_speed_changes_duration_by_the_factor(wave, factor):
  out = perturb.speed(wave, factor)
  assert out.dtype == np.float32 and out.ndim == 1
  assert abs(len(out) - len(wave) / factor) <= 1
  np.testing.assert_array_equal(out, perturb.speed(wave, factor))


def test_speed_moves_a_tone_up_by_the_factor():
  wave = _tone(8000, 500.0)
  out = perturb.speed(wave, 1.1)
  peak = np.argmax(np.abs(np.fft.rfft(out))) * RATE / len(out)
  assert peak == pytest.approx(550.0, abs=2.0)


def test_speed_rejects_silly_factors():
  with pytest.raises(ConfigError, match="speed"):
    perturb.speed(_tone(), 0.0)


@settings(max_examples=15, deadline=None)
@given(waves, st.integers(0, 2**31 - 1))
def test_channel_is_deterministic_per_seed_and_keeps_shape(wave, seed):
  a = perturb.channel(wave, RATE, np.random.default_rng(seed))
  b = perturb.channel(wave, RATE, np.random.default_rng(seed))
  np.testing.assert_array_equal(a, b)
  assert a.dtype == np.float32 and a.shape == wave.shape
  assert np.isfinite(a).all() and np.abs(a).max() <= 1.0
  c = perturb.channel(wave, RATE, np.random.default_rng(seed + 1))
  assert not np.array_equal(a, c)


def test_channel_keeps_silence_silent():
  silent = np.zeros(800, np.float32)
  out = perturb.channel(silent, RATE, np.random.default_rng(0))
  np.testing.assert_array_equal(out, silent)


def test_channel_noise_follows_the_snr():
  # With every other part neutral, the added noise sits at the drawn SNR.
  wave = _tone(8000, 700.0)
  old = (perturb.REVERB_PROBABILITY, perturb.EQ_DB, perturb.GAIN_DB,
         perturb.SNR_DB, perturb.LOW_CUT_HZ, perturb.HIGH_CUT_FRACTION)
  try:
    perturb.REVERB_PROBABILITY, perturb.EQ_DB = 0.0, 0.0
    perturb.GAIN_DB, perturb.SNR_DB = (0.0, 0.0), (10.0, 10.0)
    perturb.LOW_CUT_HZ, perturb.HIGH_CUT_FRACTION = (50.0, 50.0), (1.0, 1.0)
    out = perturb.channel(wave, RATE, np.random.default_rng(3))
  finally:
    (perturb.REVERB_PROBABILITY, perturb.EQ_DB, perturb.GAIN_DB,
     perturb.SNR_DB, perturb.LOW_CUT_HZ, perturb.HIGH_CUT_FRACTION) = old
  spectrum = np.abs(np.fft.rfft(out)) ** 2
  tone_bin = int(round(700.0 * len(out) / RATE))
  signal = spectrum[tone_bin - 3:tone_bin + 4].sum()
  noise = spectrum.sum() - signal
  assert 10 * np.log10(signal / noise) == pytest.approx(10.0, abs=1.0)


def test_trim_silence_finds_the_word():
  rng = np.random.default_rng(0)
  word = _tone(3000, 300.0)
  padded = np.concatenate([rng.normal(0, 1e-3, 4000), word,
                           rng.normal(0, 1e-3, 6000)]).astype(np.float32)
  out = perturb.trim_silence(padded, RATE, margin_s=0.0)
  assert abs(len(out) - len(word)) <= 2 * int(0.02 * RATE)
  assert out.dtype == np.float32


@pytest.mark.parametrize("wave", [np.zeros(4000, np.float32),
                                  np.zeros(10, np.float32)])
def test_trim_silence_leaves_silence_alone(wave):
  np.testing.assert_array_equal(perturb.trim_silence(wave, RATE), wave)


def test_trim_silence_keeps_a_trimmed_word_whole():
  word = _tone(3000, 300.0)
  np.testing.assert_array_equal(perturb.trim_silence(word, RATE), word)


# ------------------------------------------------------------------- VTLP


def test_vtln_warp_is_identity_at_one_and_fixes_the_ends():
  hz = np.linspace(0, 4000, 101)
  np.testing.assert_array_equal(features.vtln_warp_hz(hz, 1.0, RATE), hz)
  for warp in (0.9, 1.1):
    out = features.vtln_warp_hz(hz, warp, RATE)
    assert out[np.searchsorted(hz, 20.0)] == pytest.approx(
        hz[np.searchsorted(hz, 20.0)], abs=1e-9) or hz[1] > 20
    assert out[-1] == pytest.approx(4000.0)
    assert np.all(np.diff(out) > 0)            # monotone
    mid = hz == 2000.0
    assert out[mid] == pytest.approx(2000.0 / warp)


def test_warped_banks_identity_and_shift():
  plain = features.kaldi_mel_banks(23, RATE)
  np.testing.assert_array_equal(features.kaldi_mel_banks(23, RATE, 1.0),
                                plain)
  centre = lambda banks: (np.arange(len(banks))[:, None] * banks).sum(0) / (
      banks.sum(0))
  # Kaldi scales the edges by 1 / warp: warp > 1 moves triangles down.
  assert np.all(centre(features.kaldi_mel_banks(23, RATE, 1.1))[3:-3]
                < centre(plain)[3:-3])
  assert np.all(centre(features.kaldi_mel_banks(23, RATE, 0.9))[3:-3]
                > centre(plain)[3:-3])


def test_log_mel_warp_one_equals_plain_and_changes_otherwise():
  waves = [_tone(4000, 600.0, seed) for seed in range(3)]
  plain = features.log_mel(waves, RATE)
  np.testing.assert_array_equal(features.log_mel(waves, RATE, warp=1.0),
                                plain)
  warped = features.log_mel(waves, RATE, warp=1.1)
  assert warped.shape == plain.shape and warped.dtype == np.float32
  assert np.abs(warped - plain).max() > 0.1


def test_warp_needs_the_jax_backend_and_a_sane_factor():
  with pytest.raises(ConfigError, match="jax feature backend"):
    features.log_mel([_tone()], RATE, backend="python_speech_features",
                     warp=1.1)
  with pytest.raises(ConfigError, match="VTLN factor"):
    features.log_mel([_tone()], RATE, warp=3.0)


def test_speaker_normalise_uses_each_speakers_own_statistics():
  rng = np.random.default_rng(0)
  feats = rng.normal(size=(6, 10, 4)).astype(np.float32)
  feats[:3] = feats[:3] * 3 + 5
  feats[:, :2] = 0.0                                # padding frames
  speakers = np.array(["a"] * 3 + ["b"] * 3)
  out = features.speaker_normalise(feats, speakers)
  for who in "ab":
    voiced = out[speakers == who][:, 2:].reshape(-1, 4)
    np.testing.assert_allclose(voiced.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(voiced.std(0), 1.0, atol=2e-3)
  np.testing.assert_array_equal(out[:, :2], 0.0)
