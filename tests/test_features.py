"""Tests for avdigits.features: centring, image scaling, log-mel filterbanks.

The oracle for the filterbanks is kaldi_native_fbank (Kaldi's own algorithm)
fed int16-scaled samples, the convention both backends follow.
"""

import wave

import jax
import jax.numpy as jnp
import kaldi_native_fbank as knf
import numpy as np
import pytest

from avdigits import features
from avdigits.errors import ConfigError, DataError
from tests.conftest import requires_real_data

# Largest |difference| from kaldi_native_fbank, natural-log units. The jax
# backend is Kaldi's algorithm in float32: measured max 2.1e-4 over all 2,500
# FSDD files and 3.1e-4 on the chirps (knf, itself float32, is up to 4.5e-4
# from a float64 Kaldi on them). Two jax runs of different shapes (batched vs
# single, padded vs packed) differ by up to 5e-5. psf's filters are drawn
# over whole FFT bins (see log_mel_psf); measured max / mean: chirps
# 2.45 / 0.155 (8 kHz) and 2.0 / 0.079 (16 kHz); the 20 FSDD files below
# 7.44 / 0.213 (all 2,500 files 7.44 / 0.173).
JAX_TOL = 1e-3
JAX_SELF_TOL = 2e-4
PSF_CHIRP_MAX, PSF_CHIRP_MEAN = 3.0, 0.2
PSF_FSDD_MAX, PSF_FSDD_MEAN = 8.0, 0.25
# The two backends' batched features ([N, 100, 23], centred) against each
# other: mean |difference| over the frames that hold speech (not the zero
# padding), measured 0.1528 (chirps, 8 kHz), 0.0761 (16 kHz) and 0.2134 (the
# 20 FSDD files below); bounds a few per cent above.
BACKENDS_CHIRP_MEAN = {8000: 0.16, 16000: 0.08}
BACKENDS_FSDD_MEAN = 0.22


def knf_fbank(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
  """Kaldi fbank of a [-1, 1] waveform at int16 scale -> [T, 23]."""
  opts = knf.FbankOptions()
  opts.frame_opts.samp_freq = sample_rate
  opts.frame_opts.dither = 0.0
  opts.mel_opts.num_bins = 23
  fbank = knf.OnlineFbank(opts)
  fbank.accept_waveform(sample_rate, (waveform * 32768.0).tolist())
  fbank.input_finished()
  frames = [fbank.get_frame(i) for i in range(fbank.num_frames_ready)]
  return np.array(frames, np.float32).reshape(-1, 23)


def chirp(sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
  """A 100 Hz -> 0.45 fs linear chirp (amplitude 0.5) in white noise."""
  t = np.arange(int(seconds * sample_rate)) / sample_rate
  rate = (0.45 * sample_rate - 100) / seconds
  noise = np.random.default_rng(seed).standard_normal(len(t))
  return (0.5 * np.sin(2 * np.pi * (100 * t + rate / 2 * t ** 2))
          + 0.01 * noise).astype(np.float32)


def read_wav(path) -> tuple[np.ndarray, int]:
  with wave.open(str(path), "rb") as f:
    samples = np.frombuffer(f.readframes(f.getnframes()), "<i2")
    return samples.astype(np.float32) / 32768.0, f.getframerate()


def diff_stats(ours: list[np.ndarray], refs: list[np.ndarray]):
  d = np.concatenate([np.abs(a - b).ravel()
                      for a, b in zip(ours, refs, strict=True)])
  return d.max(), d.mean()


def backend_mean_diff(a: np.ndarray, b: np.ndarray) -> float:
  """Mean |a - b| over the frames (rows) that are not padding in both."""
  frames = (a != 0).any(-1) | (b != 0).any(-1)
  return float(np.abs(a - b)[frames].mean())


# ------------------------------------------------------------------ centring


@pytest.mark.parametrize("num_frames,length,expected", [
    # Rows 1..T of the input; 0 = padding. Odd padding / excess goes last.
    (4, 0, [0, 0, 0, 0]),
    (4, 1, [0, 1, 0, 0]),
    (4, 2, [0, 1, 2, 0]),
    (4, 3, [1, 2, 3, 0]),
    (4, 4, [1, 2, 3, 4]),
    (4, 5, [1, 2, 3, 4]),
    (4, 6, [2, 3, 4, 5]),
    (4, 7, [2, 3, 4, 5]),
    (5, 2, [0, 1, 2, 0, 0]),
])
def test_centre_frames_small_cases(num_frames, length, expected):
  feats = np.repeat(np.arange(1, length + 1, dtype=np.float32)[:, None], 3, 1)
  out = features.centre_frames(feats, num_frames)
  np.testing.assert_array_equal(
      out, np.repeat(np.array(expected, np.float32)[:, None], 3, 1))
  assert out.dtype == np.float32


@pytest.mark.parametrize("length,first,offset", [
    (0, 0, 50), (1, 0, 49), (99, 0, 0), (100, 0, 0), (101, 0, 0),
    (250, 75, 0)])
def test_centre_frames_to_100(length, first, offset):
  feats = np.arange(1, 2 * length + 1, dtype=np.float32).reshape(length, 2)
  out = features.centre_frames(feats)
  kept = min(length, 100)
  assert out.shape == (100, 2)
  np.testing.assert_array_equal(out[offset:offset + kept],
                                feats[first:first + kept])
  assert not out[:offset].any() and not out[offset + kept:].any()


def test_centre_frames_batch_and_errors():
  batch = features.centre_frames_batch([np.ones((3, 2)), np.ones((7, 2))], 5)
  assert batch.shape == (2, 5, 2)
  np.testing.assert_array_equal(batch[0, :, 0], [0, 1, 1, 1, 0])
  with pytest.raises(DataError, match="features"):
    features.centre_frames(np.ones(5))
  with pytest.raises(ConfigError, match="num_frames"):
    features.centre_frames(np.ones((5, 2)), 0)


# ------------------------------------------------------------------- images


def test_scale_images_endpoints():
  images = np.zeros((3, 28, 28), np.uint8)
  images[1] = 255
  images[2] = 51
  out = features.scale_images(images)
  assert isinstance(out, np.ndarray)
  assert out.dtype == np.float32 and out.shape == (3, 28, 28)
  assert (out[0] == -0.5).all() and (out[1] == 0.5).all()
  np.testing.assert_allclose(out[2], 51 / 255 - 0.5, rtol=1e-6)
  on_device = features.scale_images(jnp.asarray(images))
  assert isinstance(on_device, jax.Array) and on_device.dtype == jnp.float32
  on_device = np.asarray(on_device)
  assert (on_device[0] == -0.5).all() and (on_device[1] == 0.5).all()
  np.testing.assert_allclose(on_device, out, rtol=0, atol=1e-7)


# ------------------------------------------------- Kaldi framing and oracle


@pytest.mark.parametrize("length", [0, 199, 200, 279, 280, 1000])
def test_frame_count_matches_kaldi(length):
  wave_ = chirp(8000, 1.0)[:length]
  assert features.num_kaldi_frames(length, 8000) == len(
      knf_fbank(wave_, 8000))
  assert features.log_mel_psf(wave_, 8000).shape == (
      features.num_kaldi_frames(length, 8000), 23)


@pytest.mark.parametrize("sample_rate", [8000, 16000])
@pytest.mark.parametrize("seconds", [0.7, 1.3])  # Padded, truncated.
def test_jax_matches_kaldi_on_chirp(sample_rate, seconds):
  wave_ = chirp(sample_rate, seconds)
  expected = features.centre_frames(knf_fbank(wave_, sample_rate))
  out = features.log_mel([wave_], sample_rate)[0]
  np.testing.assert_allclose(out, expected, rtol=0, atol=JAX_TOL)


def test_log_mel_jax_matches_kaldi_on_padded_batch():
  waves = [chirp(16000, 0.7), chirp(16000, 1.3, 1)]
  batch = np.zeros((2, len(waves[1])), np.float32)
  batch[0, :len(waves[0])] = waves[0]
  batch[1] = waves[1]
  out = features.log_mel_jax(batch, np.array([len(w) for w in waves]), 16000)
  np.testing.assert_allclose(
      np.asarray(out),
      features.centre_frames_batch([knf_fbank(w, 16000) for w in waves]),
      rtol=0, atol=JAX_TOL)


@pytest.mark.parametrize("sample_rate", [11025, 22050, 44100])
def test_jax_matches_kaldi_at_other_rates(sample_rate):
  # Radix 2, radix 4 with per-sample frame means, radix 1.
  wave_ = chirp(sample_rate, 0.3)
  expected = features.centre_frames(knf_fbank(wave_, sample_rate), 32)
  out = features.log_mel([wave_], sample_rate, num_frames=32)[0]
  np.testing.assert_allclose(out, expected, rtol=0, atol=JAX_TOL)


@pytest.mark.parametrize("sample_rate", [8000, 16000])
def test_psf_close_to_kaldi_on_chirp(sample_rate):
  waves = [chirp(sample_rate, s, seed) for seed, s in enumerate((0.7, 1.3))]
  largest, mean = diff_stats(
      [features.log_mel_psf(w, sample_rate) for w in waves],
      [knf_fbank(w, sample_rate) for w in waves])
  assert largest < PSF_CHIRP_MAX and mean < PSF_CHIRP_MEAN
  jax_feats = features.log_mel(waves, sample_rate)
  psf_feats = features.log_mel(waves, sample_rate,
                               backend="python_speech_features")
  assert np.abs(jax_feats - psf_feats).max() < PSF_CHIRP_MAX
  assert (backend_mean_diff(jax_feats, psf_feats)
          < BACKENDS_CHIRP_MEAN[sample_rate])


@requires_real_data
def test_both_backends_match_kaldi_on_fsdd(real_data_dir):
  paths = sorted((real_data_dir / "fsdd" / "recordings").glob("*.wav"))[::125]
  assert len(paths) == 20
  waves = [read_wav(p)[0] for p in paths]
  assert {read_wav(p)[1] for p in paths} == {8000}
  refs = [knf_fbank(w, 8000) for w in waves]
  jax_feats = features.log_mel(waves, 8000)
  np.testing.assert_allclose(
      jax_feats, features.centre_frames_batch(refs), rtol=0, atol=JAX_TOL)
  largest, mean = diff_stats([features.log_mel_psf(w, 8000) for w in waves],
                             refs)
  assert largest < PSF_FSDD_MAX and mean < PSF_FSDD_MEAN
  psf_feats = features.log_mel(waves, 8000, backend="python_speech_features")
  assert np.abs(jax_feats - psf_feats).max() < PSF_FSDD_MAX
  assert backend_mean_diff(jax_feats, psf_feats) < BACKENDS_FSDD_MEAN


# ----------------------------------------------------------- jax behaviour


def test_batched_equals_single_and_ignores_padding():
  waves = [chirp(8000, s, seed) for seed, s in enumerate((0.3, 1.1, 0.55))]
  lengths = np.array([len(w) for w in waves])
  rng = np.random.default_rng(1)
  batch = rng.uniform(-1, 1, (3, 9000)).astype(np.float32)  # Garbage padding.
  for row, w in zip(batch, waves, strict=False):
    row[:len(w)] = w
  together = np.asarray(features.log_mel_jax(batch, lengths, 8000))
  for i, w in enumerate(waves):
    alone = np.asarray(features.log_mel_jax(w[None], lengths[i:i + 1], 8000))
    np.testing.assert_allclose(together[i], alone[0], rtol=0,
                               atol=JAX_SELF_TOL)
  longer = np.pad(batch, ((0, 0), (0, 4000)), constant_values=0.3)
  np.testing.assert_allclose(
      np.asarray(features.log_mel_jax(longer, lengths, 8000)), together,
      rtol=0, atol=JAX_SELF_TOL)
  packed = features.log_mel(waves, 8000, batch_size=2)
  np.testing.assert_allclose(packed, together, rtol=0, atol=JAX_SELF_TOL)


def test_packing_across_many_blocks_keeps_order():
  rng = np.random.default_rng(2)
  waves = [chirp(8000, s, i) for i, s in enumerate(rng.uniform(0.02, 1.2, 40))]
  one_by_one = np.concatenate(
      [features.log_mel([w], 8000) for w in waves[:6]])
  all_at_once = features.log_mel(waves, 8000, batch_size=3)
  np.testing.assert_allclose(all_at_once[:6], one_by_one, rtol=0,
                             atol=JAX_SELF_TOL)
  refs = features.centre_frames_batch([knf_fbank(w, 8000) for w in waves])
  np.testing.assert_allclose(all_at_once, refs, rtol=0, atol=JAX_TOL)


def test_packing_many_one_frame_utterances():
  # 400 pieces of >= 200 samples overflow a 512-frame block's 61,440 samples.
  base = chirp(8000, 0.5)
  waves = [base[i:i + 200 + i % 80] for i in range(400)]
  out = features.log_mel(waves, 8000)
  refs = features.centre_frames_batch([knf_fbank(w, 8000) for w in waves])
  np.testing.assert_allclose(out, refs, rtol=0, atol=JAX_TOL)


@pytest.mark.parametrize("backend", features.BACKENDS)
def test_short_utterances_are_zero(backend):
  waves = [chirp(8000, 1.0)[:n] for n in (0, 80, 199, 200)]
  out = features.log_mel(waves, 8000, backend=backend)
  assert out.shape == (4, 100, 23) and out.dtype == np.float32
  assert np.isfinite(out).all()
  assert not out[:3].any()
  assert out[3, 49].all() and not np.delete(out[3], 49, axis=0).any()


def test_short_utterances_are_zero_in_log_mel_jax():
  out = features.log_mel_jax(np.ones((2, 150), np.float32), np.array([150, 0]),
                             8000)
  assert out.shape == (2, 100, 23) and not np.asarray(out).any()


def test_cmn_subtracts_the_mean_of_kept_frames_in_both_backends():
  waves = [chirp(8000, 0.5), chirp(8000, 1.4, 3)]  # 48 and 138 frames.
  for backend in features.BACKENDS:
    plain = features.log_mel(waves, 8000, backend=backend)
    normed = features.log_mel(waves, 8000, backend=backend, cmn=True)
    for i, (first, kept) in enumerate([(26, 48), (0, 100)]):
      block = plain[i, first:first + kept]
      np.testing.assert_allclose(normed[i, first:first + kept],
                                 block - block.mean(0), rtol=0, atol=1e-5)
      assert not np.delete(normed[i], np.s_[first:first + kept], 0).any()
  lengths = np.array([len(w) for w in waves])
  batch = np.zeros((2, lengths.max()), np.float32)
  for row, w in zip(batch, waves, strict=False):
    row[:len(w)] = w
  np.testing.assert_allclose(
      np.asarray(features.log_mel_jax(batch, lengths, 8000, cmn=True)),
      features.log_mel(waves, 8000, cmn=True), rtol=0, atol=JAX_SELF_TOL)


# -------------------------------------------------------------------- errors


def test_bad_arguments():
  waves = [chirp(8000, 0.1)]
  with pytest.raises(ConfigError, match=r"backend.*'librosa'.*'jax'"):
    features.log_mel(waves, 8000, backend="librosa")
  with pytest.raises(ConfigError, match="num_bins"):
    features.log_mel(waves, 8000, num_bins=200)
  with pytest.raises(ConfigError, match="sample_rate"):
    features.log_mel(waves, 0)
  with pytest.raises(ConfigError, match="batch_size"):
    features.log_mel(waves, 8000, batch_size=0)
  with pytest.raises(ConfigError, match="num_frames"):
    features.log_mel(waves, 8000, num_frames=0)
  with pytest.raises(DataError, match=r"waveforms\[1\].*1-D"):
    features.log_mel([waves[0], np.zeros((2, 100))], 8000)
  with pytest.raises(DataError, match=r"waveforms\[0\].*NaN"):
    features.log_mel([np.full(300, np.nan)], 8000)
