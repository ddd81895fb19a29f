"""Waveform perturbations that give the training set new voices and channels.

Each is a pure function of a float32 mono waveform in [-1, 1] (and, where
random, a `numpy.random.Generator`): the same inputs give the same output,
shapes stay 1-D float32, and every factor-style perturbation is the identity
at its neutral setting (speed 1.0). They run on the host, once per training
utterance copy, before features (see `prepare.prepare_data`):

  * `speed`: Kaldi's speed perturbation (sox `speed`): resampling by a factor,
    which changes duration, pitch and formants together.
  * `channel`: a random microphone and room: band limits, a smooth
    equaliser, gain, additive noise at a random SNR and, sometimes,
    reverberation by a synthetic exponentially decaying room response.

Vocal tract length perturbation warps the mel filterbank instead; it lives
with the features (`features.log_mel(..., warp=...)`).
"""

from __future__ import annotations

import fractions

import numpy as np
import scipy.signal

from avdigits.data import audio
from avdigits.errors import ConfigError

# Ranges of the random channel (see `channel`).
LOW_CUT_HZ = (50.0, 400.0)
HIGH_CUT_FRACTION = (0.6, 1.0)   # of Nyquist; 1.0 keeps the full band
EQ_DB = 6.0                      # peak boost/cut of the smooth equaliser
EQ_KNOTS = 6
GAIN_DB = (-20.0, 0.0)
SNR_DB = (5.0, 40.0)
REVERB_PROBABILITY = 0.3
RT60_S = (0.1, 0.5)


def _check_factor(factor: float, flag: str) -> float:
  if not 0.5 <= float(factor) <= 2.0:
    raise ConfigError(f"{flag}: factor {factor!r} must be in [0.5, 2]")
  return float(factor)


def speed(wave: np.ndarray, factor: float) -> np.ndarray:
  """Plays `wave` `factor` times as fast (sox `speed`, Kaldi's recipe).

  The waveform is resampled by 1/factor and read at the original rate: 1.1
  is 10% shorter and higher, 0.9 longer and lower; 1.0 returns a float32
  copy of the input.
  """
  factor = _check_factor(factor, "speed")
  wave = np.asarray(wave, np.float32)
  if factor == 1.0:
    return wave.copy()
  ratio = fractions.Fraction(factor).limit_denominator(100)
  return audio.resample(wave, ratio.numerator, ratio.denominator)


def _band_limit(wave: np.ndarray, sample_rate: int, low_hz: float,
                high_fraction: float) -> np.ndarray:
  nyquist = sample_rate / 2
  if high_fraction < 1.0:
    sos = scipy.signal.butter(4, [low_hz / nyquist, high_fraction],
                              btype="bandpass", output="sos")
  else:
    sos = scipy.signal.butter(2, low_hz / nyquist, btype="highpass",
                              output="sos")
  return scipy.signal.sosfilt(sos, wave)


def _equalise(wave: np.ndarray, gains_db: np.ndarray) -> np.ndarray:
  """Multiplies the spectrum by a smooth curve through `gains_db` knots."""
  spectrum = np.fft.rfft(wave)
  knots = np.linspace(0.0, 1.0, len(gains_db))
  curve = np.interp(np.linspace(0.0, 1.0, len(spectrum)), knots, gains_db)
  return np.fft.irfft(spectrum * 10 ** (curve / 20), n=len(wave))


def _reverberate(wave: np.ndarray, sample_rate: int, rt60: float,
                 rng: np.random.Generator) -> np.ndarray:
  """Convolves with exponentially decaying noise (a synthetic room)."""
  length = int(rt60 * sample_rate)
  t = np.arange(length) / sample_rate
  response = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
  response[0] = 1.0
  response /= np.sqrt(np.sum(response ** 2))
  return scipy.signal.fftconvolve(wave, response)[:len(wave)]


def channel(wave: np.ndarray, sample_rate: int,
            rng: np.random.Generator) -> np.ndarray:
  """`wave` as heard through a random microphone in a random room.

  In order: reverberation (with probability REVERB_PROBABILITY, RT60 drawn
  from RT60_S), a band-pass (low cut from LOW_CUT_HZ, high cut a fraction
  HIGH_CUT_FRACTION of Nyquist), a smooth equaliser of +-EQ_DB, a gain from
  GAIN_DB relative to the input's peak, and white noise at an SNR from
  SNR_DB. Returns float32 of the same length, clipped to [-1, 1].
  """
  wave = np.asarray(wave, np.float64)
  peak = float(np.max(np.abs(wave), initial=0.0))
  if peak == 0.0:
    return wave.astype(np.float32)
  if rng.random() < REVERB_PROBABILITY:
    wave = _reverberate(wave, sample_rate, rng.uniform(*RT60_S), rng)
  wave = _band_limit(wave, sample_rate, rng.uniform(*LOW_CUT_HZ),
                     min(rng.uniform(*HIGH_CUT_FRACTION) * 1.05, 1.0))
  wave = _equalise(wave, rng.uniform(-EQ_DB, EQ_DB, EQ_KNOTS))
  wave *= 10 ** (rng.uniform(*GAIN_DB) / 20) * peak / max(
      float(np.max(np.abs(wave))), 1e-9)
  power = float(np.mean(wave ** 2))
  noise = rng.standard_normal(len(wave)) * np.sqrt(
      power / 10 ** (rng.uniform(*SNR_DB) / 10))
  return np.clip(wave + noise, -1.0, 1.0).astype(np.float32)


def trim_silence(wave: np.ndarray, sample_rate: int, *,
                 threshold_db: float = 30.0,
                 margin_s: float = 0.05) -> np.ndarray:
  """Cuts leading and trailing silence, the way FSDD's files are trimmed.

  Frames of 20 ms whose energy is `threshold_db` below the loudest frame,
  and no more than 6 dB above the quietest, count as silence; `margin_s`
  seconds are kept on either side of the voiced span. A waveform with no
  voiced frame (silence) is returned unchanged.
  """
  wave = np.asarray(wave, np.float32)
  energy, frame = audio.frame_energy_db(wave, sample_rate)
  if len(energy) < 3:
    return wave
  threshold = max(energy.max() - threshold_db, energy.min() + 6.0)
  voiced = np.flatnonzero(energy > threshold)
  if not len(voiced) or energy.max() - energy.min() < 6.0:
    return wave
  margin = int(margin_s * sample_rate)
  start = max(voiced[0] * frame - margin, 0)
  stop = min((voiced[-1] + 1) * frame + margin, len(wave))
  return wave[start:stop]
