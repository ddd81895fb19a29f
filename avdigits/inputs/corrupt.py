"""Test-time corruptions for robustness curves: pure, seeded functions.

Images are float [N, H, W] in [-0.5, 0.5] (see features.scale_images);
waveforms are float arrays in [-1, 1]. Every function takes a seed or a
numpy Generator, so a curve is reproducible point by point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from avdigits.errors import ConfigError

IMAGE_CORRUPTIONS = ("noise", "occlusion")
AUDIO_NOISES = ("white", "babble")


def image_noise(images: np.ndarray, std: float, seed: int) -> np.ndarray:
  """Adds Gaussian pixel noise of `std` (in units of the [0, 1] ink range),
  clipped back to [-0.5, 0.5]."""
  if std < 0:
    raise ConfigError(f"image noise std must be >= 0, got {std}")
  rng = np.random.default_rng(seed)
  noisy = images + std * rng.standard_normal(images.shape)
  return np.clip(noisy, -0.5, 0.5).astype(np.float32)


def image_occlusion(images: np.ndarray, size: int, seed: int) -> np.ndarray:
  """Blanks one random size x size square of each image (set to background).

  The square lies fully inside the image, centred anywhere in the central
  region, so `size` is the occluded area's side in pixels.
  """
  n, h, w = images.shape
  if not 0 <= size <= min(h, w):
    raise ConfigError(f"occlusion size must be in [0, {min(h, w)}], got "
                      f"{size}")
  rng = np.random.default_rng(seed)
  tops = rng.integers(0, h - size + 1, n)
  lefts = rng.integers(0, w - size + 1, n)
  rows = np.arange(h)[None, :] - tops[:, None]          # [N, H]
  cols = np.arange(w)[None, :] - lefts[:, None]         # [N, W]
  inside = (((rows >= 0) & (rows < size))[:, :, None]
            & ((cols >= 0) & (cols < size))[:, None, :])
  return np.where(inside, np.float32(-0.5), images).astype(np.float32)


def corrupt_images(images: np.ndarray, kind: str, strength: float,
                   seed: int) -> np.ndarray:
  """Dispatches to image_noise (std) or image_occlusion (side in pixels)."""
  if kind == "noise":
    return image_noise(images, strength, seed)
  if kind == "occlusion":
    return image_occlusion(images, int(strength), seed)
  raise ConfigError(f"image corruption {kind!r}: choose one of "
                    f"{', '.join(IMAGE_CORRUPTIONS)}")


def mix_at_snr(signal: np.ndarray, noise: np.ndarray,
               snr_db: float) -> np.ndarray:
  """signal + noise scaled so that 10 log10(P_signal / P_noise) = snr_db.

  A silent signal is returned unchanged (its SNR is undefined).
  """
  if len(noise) != len(signal):
    raise ConfigError(f"mix_at_snr: noise has {len(noise)} samples, signal "
                      f"{len(signal)}")
  p_signal = float(np.mean(np.square(signal, dtype=np.float64)))
  p_noise = float(np.mean(np.square(noise, dtype=np.float64)))
  if p_signal == 0 or p_noise == 0:
    return signal.astype(np.float32)
  gain = np.sqrt(p_signal / (p_noise * 10.0 ** (snr_db / 10.0)))
  return (signal + gain * noise).astype(np.float32)


def babble(length: int, pool: Sequence[np.ndarray], rng: np.random.Generator,
           talkers: int = 4) -> np.ndarray:
  """The sum of `talkers` random utterances from `pool`, each tiled to
  `length` samples from a random start (crowd noise from other speech)."""
  if not pool:
    raise ConfigError("babble noise needs a non-empty pool of utterances")
  out = np.zeros(length, np.float64)
  for i in rng.integers(0, len(pool), talkers):
    source = np.asarray(pool[i], np.float64)
    if not len(source):
      continue
    start = rng.integers(0, len(source))
    reps = -(-(start + length) // len(source))
    out += np.tile(source, reps)[start:start + length]
  return out


def add_noise(waveforms: Sequence[np.ndarray], kind: str, snr_db: float,
              seed: int, pool: Sequence[np.ndarray] = ()
              ) -> list[np.ndarray]:
  """Each waveform mixed with white or babble noise at `snr_db`.

  Args:
    waveforms: the clean utterances.
    kind: "white" (Gaussian) or "babble" (sums of utterances from `pool`;
      pass utterances disjoint from `waveforms`, e.g. the training set).
    snr_db: signal-to-noise ratio in dB; float("inf") returns copies.
    seed: seeds the noise.
    pool: utterances babble is made of.
  """
  if kind not in AUDIO_NOISES:
    raise ConfigError(f"audio noise {kind!r}: choose one of "
                      f"{', '.join(AUDIO_NOISES)}")
  rng = np.random.default_rng(seed)
  out = []
  for wave in waveforms:
    wave = np.asarray(wave, np.float32)
    if np.isinf(snr_db) and snr_db > 0:
      out.append(wave.copy())
      continue
    noise = (rng.standard_normal(len(wave)) if kind == "white"
             else babble(len(wave), pool, rng))
    out.append(mix_at_snr(wave, noise, snr_db))
  return out
