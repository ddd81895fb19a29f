"""Model inputs: Kaldi log-mel filterbanks for speech, scaled pixels for images.

Speech follows the paper: a 23-bin log-mel filterbank, 25 ms windows every
10 ms, computed exactly as Kaldi's `compute-fbank-feats --dither=0` does
(Kaldi's default dither, 1.0, adds Gaussian noise of that std to every int16
sample; without it the features are deterministic), with its other
defaults: per-frame DC removal, pre-emphasis 0.97, Povey window, FFT padded
to a power of two, power spectrum, mel triangles from 20 Hz to Nyquist built in
the mel domain, natural log floored at float32 epsilon, `snip_edges=true`, so
an utterance of n samples has 1 + (n - window) // shift frames and none when
shorter than one window). Each utterance is then zero-padded or truncated to
exactly `num_frames` frames with the utterance centred.

Scale convention: waveforms are float arrays in [-1, 1]; features are those of
the waveform times 32768, i.e. of the int16 sample values Kaldi reads from a
WAV file, so they equal Kaldi's (and `kaldi_native_fbank`'s fed int16-valued
samples) output for the same file. The [-1, 1] scale would shift every value
by -2 ln 32768 and make the epsilon floor bite on quiet frames.

Two backends produce the same layout:
  * "jax" (`log_mel_jax`, and `log_mel` for lists): Kaldi's algorithm
    exactly, batched and jittable. Float32 rounding is all that separates it
    from kaldi_native_fbank: max |difference| 2e-4 over all 2,500 FSDD
    recordings, 3e-4 on a chirp in noise (each is within 2.5e-4 of a float64
    Kaldi there; knf itself is within 4.5e-4).
  * "python_speech_features" (`log_mel_psf`): the reference library's parts
    configured as close to Kaldi as they allow; only the filter shapes differ
    (see `log_mel_psf`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import python_speech_features as psf

from avdigits.errors import ConfigError, DataError

BACKENDS = ("jax", "python_speech_features")
NUM_BINS = 23
NUM_FRAMES = 100
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
PREEMPHASIS = 0.97
LOW_FREQ_HZ = 20.0
INT16_SCALE = 32768.0
LOG_FLOOR = float(np.finfo(np.float32).eps)
VTLN_LOW_HZ = 100.0    # Kaldi's --vtln-low
VTLN_HIGH_HZ = -500.0  # Kaldi's --vtln-high (negative: from Nyquist)

_HIGHEST = jax.lax.Precision.HIGHEST


def scale_images(images: np.ndarray | jax.Array) -> np.ndarray | jax.Array:
  """Maps pixel values 0..255 to float32 in [-0.5, 0.5] (x / 255 - 0.5).

  A jax array stays a jax array, anything else becomes a numpy array; the shape
  is preserved.
  """
  xp = jnp if isinstance(images, jax.Array) else np
  pixels = xp.asarray(images, dtype=xp.float32)
  return pixels / np.float32(255) - np.float32(0.5)


# ----------------------------------------------------------------- centring


def _centre_span(total: int, num_frames: int) -> tuple[int, int, int]:
  """(first kept frame, output offset, frames kept) for centring."""
  kept = min(total, num_frames)
  return (max(0, (total - num_frames) // 2),
          max(0, (num_frames - total) // 2), kept)


def _check_num_frames(num_frames: int) -> None:
  if not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
    raise ConfigError(f"num_frames: must be a positive int, got {num_frames!r}")


def centre_frames(features: np.ndarray, num_frames: int = NUM_FRAMES
                  ) -> np.ndarray:
  """Zero-pads or truncates one utterance's [T, B] features to [num_frames, B].

  The utterance is centred: padding goes equally on both sides with the odd
  frame at the end; truncation keeps the centre, dropping the odd frame at the
  end.
  """
  _check_num_frames(num_frames)
  features = np.asarray(features)
  if features.ndim != 2:
    raise DataError("features: expected a [frames, bins] array, got shape "
                    f"{features.shape}")
  start, offset, kept = _centre_span(len(features), num_frames)
  out = np.zeros((num_frames, features.shape[1]), np.float32)
  out[offset:offset + kept] = features[start:start + kept]
  return out


def centre_frames_batch(features: Sequence[np.ndarray],
                        num_frames: int = NUM_FRAMES) -> np.ndarray:
  """`centre_frames` over a list of [T_i, B] arrays -> [N, num_frames, B]."""
  return np.stack([centre_frames(f, num_frames) for f in features])


# ------------------------------------------------- Kaldi frames and mel banks


@dataclasses.dataclass(frozen=True)
class _Geometry:
  """Kaldi's framing at one sample rate (window, shift, FFT size: samples)."""
  sample_rate: int
  window: int
  shift: int
  fft_size: int


@functools.cache
def _geometry(sample_rate: int) -> _Geometry:
  if (not isinstance(sample_rate, (int, np.integer)) or isinstance(
      sample_rate, bool) or sample_rate < 400):
    raise ConfigError(
        f"sample_rate: must be an int >= 400 Hz, got {sample_rate!r}")
  window = int(sample_rate * 0.001 * FRAME_LENGTH_MS)
  shift = int(sample_rate * 0.001 * FRAME_SHIFT_MS)
  return _Geometry(int(sample_rate), window, shift,
                   1 << (window - 1).bit_length())


def num_kaldi_frames(num_samples: int, sample_rate: int) -> int:
  """Frames Kaldi makes from `num_samples` (snip_edges=true)."""
  geo = _geometry(sample_rate)
  if num_samples < geo.window:
    return 0
  return 1 + (num_samples - geo.window) // geo.shift


def povey_window(length: int) -> np.ndarray:
  """Kaldi's Povey window: (0.5 - 0.5 cos(2 pi i / (N - 1)))^0.85."""
  i = np.arange(length)
  return (0.5 - 0.5 * np.cos(2 * np.pi * i / (length - 1))) ** 0.85


def _mel(hz):
  return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def vtln_warp_hz(hz: np.ndarray, warp: float, sample_rate: int) -> np.ndarray:
  """Kaldi's piecewise-linear VTLN frequency warp (`VtlnWarpFreq`).

  Frequencies between the inflection points are scaled by 1 / warp; below
  and above them two lines keep 20 Hz and Nyquist fixed. Kaldi's default
  inflection points: 100 Hz and Nyquist - 500 Hz. warp 1.0 is the identity.
  """
  hz = np.asarray(hz, np.float64)
  if warp == 1.0:
    return hz
  low_hz, high_hz = LOW_FREQ_HZ, sample_rate / 2
  lower = VTLN_LOW_HZ * max(1.0, warp)
  upper = (high_hz + VTLN_HIGH_HZ) * min(1.0, warp)
  scale = 1.0 / warp
  left = low_hz + (scale * lower - low_hz) / (lower - low_hz) * (hz - low_hz)
  right = high_hz + (high_hz - scale * upper) / (high_hz - upper) * (
      hz - high_hz)
  warped = np.where(hz < lower, left, np.where(hz < upper, scale * hz, right))
  return np.where((hz < low_hz) | (hz > high_hz), hz, warped)


@functools.cache
def kaldi_mel_banks(num_bins: int, sample_rate: int,
                    warp: float = 1.0) -> np.ndarray:
  """Kaldi's mel triangles as a [fft_size // 2 + 1, num_bins] float64 matrix.

  Triangles are linear in mel (1127 ln(1 + f / 700)) between equally spaced
  mel points from 20 Hz to Nyquist, evaluated at each FFT bin's frequency with
  no quantisation of the edges; the Nyquist bin gets no weight (as in Kaldi).
  With warp != 1 the triangles' edges move by Kaldi's VTLN warp
  (`vtln_warp_hz`): between the inflection points each edge sits at 1 / warp
  of its frequency, so the features are those of a voice whose formants are
  scaled by 1 / warp (vocal tract length perturbation).
  """
  if not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
    raise ConfigError(f"num_bins: must be a positive int, got {num_bins!r}")
  if not 0.5 <= warp <= 2.0:
    raise ConfigError(f"warp: VTLN factor {warp!r} must be in [0.5, 2]")
  geo = _geometry(sample_rate)
  low, high = _mel(LOW_FREQ_HZ), _mel(sample_rate / 2)
  delta = (high - low) / (num_bins + 1)
  fft_mel = _mel(np.arange(geo.fft_size // 2) * sample_rate / geo.fft_size)
  left = low + delta * np.arange(num_bins)[None, :]
  centre, right = left + delta, left + 2 * delta
  if warp != 1.0:
    left, centre, right = (
        _mel(vtln_warp_hz(700.0 * np.expm1(edge / 1127.0), warp,
                          sample_rate)) for edge in (left, centre, right))
  mel = fft_mel[:, None]
  weights = np.where(mel <= centre, (mel - left) / (centre - left),
                     (right - mel) / (right - centre))
  weights = np.where((mel > left) & (mel < right), weights, 0.0)
  empty = np.flatnonzero(~weights.any(axis=0))
  if empty.size:
    raise ConfigError(
        f"num_bins: {num_bins} is too many for sample_rate={sample_rate} "
        f"(FFT size {geo.fft_size}): mel bin {empty[0]} covers no FFT bin")
  banks = np.concatenate([weights, np.zeros((1, num_bins))], axis=0)
  banks.flags.writeable = False  # Cached: shared by every caller.
  return banks


# ------------------------------------------------------------ numpy backend


@functools.cache
def _psf_filterbank(num_bins: int, sample_rate: int) -> np.ndarray:
  """psf's mel filters for Kaldi's FFT size, 20 Hz..Nyquist: [bins, P/2+1]."""
  geo = _geometry(sample_rate)
  return psf.get_filterbanks(num_bins, geo.fft_size, sample_rate,
                             LOW_FREQ_HZ, sample_rate / 2)


def log_mel_psf(waveform: np.ndarray, sample_rate: int, *,
                num_bins: int = NUM_BINS) -> np.ndarray:
  """Kaldi-like log-mel filterbank via python_speech_features -> [T, num_bins].

  Built from psf's own parts (`sigproc.framesig`, `sigproc.powspec`,
  `get_filterbanks`) with Kaldi's settings: 25/10 ms frames and Kaldi's frame
  count, per-frame DC removal then pre-emphasis 0.97 (Kaldi's first-sample
  rule), Povey window, FFT size rounded up to a power of two, power spectrum
  (psf's 1/NFFT undone), filters from 20 Hz to Nyquist, no dither, int16
  scale, natural log floored at float32 epsilon. T is Kaldi's frame count;
  zero when the waveform is shorter than one window. (`psf.fbank` itself
  cannot remove DC per frame: on FSDD, whose recordings carry DC offsets, that
  costs up to 18 nats on silent frames.)

  What remains different is psf's filterbank: its triangles are linear in FFT
  bin index with edges rounded down to whole bins (and its mel scale is
  2595 log10(1 + f/700), which equals Kaldi's 1127 ln(1 + f/700) to 1e-5),
  whereas Kaldi's are linear in mel with exact edges; at 8 kHz the lowest
  filters span only 2-4 FFT bins, so an edge bin in or out moves them most.
  |difference| from kaldi_native_fbank, measured: all 2,500 FSDD recordings
  (8 kHz) mean 0.17, 99th percentile 2.1, max 7.4 (bin 0 of a quiet frame);
  a chirp in noise mean 0.16 / max 2.5 at 8 kHz, 0.08 / 2.0 at 16 kHz.
  """
  geo = _geometry(sample_rate)
  filterbank = _psf_filterbank(num_bins, sample_rate)
  signal = np.asarray(waveform, np.float64) * INT16_SCALE
  frames = num_kaldi_frames(len(signal), sample_rate)
  if frames == 0:
    return np.zeros((0, num_bins), np.float32)
  frames = psf.sigproc.framesig(
      signal[:(frames - 1) * geo.shift + geo.window], geo.window, geo.shift)
  frames -= frames.mean(axis=1, keepdims=True)
  frames[:, 1:] -= PREEMPHASIS * frames[:, :-1]
  frames[:, 0] *= 1 - PREEMPHASIS
  power = psf.sigproc.powspec(frames * povey_window(geo.window), geo.fft_size)
  energies = power * geo.fft_size @ filterbank.T
  return np.log(np.maximum(energies, LOG_FLOOR)).astype(np.float32)


# -------------------------------------------------------------- jax backend
#
# Each frame's DFT is a few matrix products, split radix-4 by decimation in
# frequency: with the zero-padded frame y (length P) cut into quarters y_j of
# M = P/4 samples, bin b is sum_n W_P^(n b) c_r[n] where
# c_r = sum_j W_4^(j r) y_j and r = b mod 4, so bins 4k, 4k+2 and the odd bins
# come from three real matmuls of sizes M, M and 2M (about half the work of
# one full DFT matmul), each bin still a single dot product, so float32
# rounding stays as small as a full DFT's. Only bins some mel filter uses are
# computed. Per-frame DC removal and pre-emphasis are folded in: with m the
# frame mean, Kaldi's frame is w * (z - (1 - 0.97) m), z the whole signal
# pre-emphasised (Kaldi's own first-sample rule is moot: the Povey window is
# 0 there), so its DFT is DFT(w * z) + m * (a constant vector).

# Frames per call of the packed kernel the dispatcher uses (one compiled
# shape for a whole corpus; smaller powers of two for small inputs).
_PACK_FRAMES = 4096
_MIN_PACK_FRAMES = 256


@dataclasses.dataclass(frozen=True)
class _JaxTables:
  """Constant matrices of the jax backend for one (sample_rate, num_bins)."""
  geometry: _Geometry
  block: int          # frame means add up blocks of this many samples
  window: np.ndarray  # [window] float32: Povey window at int16 scale
  dft: tuple          # 3 x [M or 2M, 2 n_g] float32 (re | im of n_g bins)
  dc: tuple           # 3 x [2 n_g] float32: spectrum per unit frame mean
  mel: np.ndarray     # [sum n_g, num_bins] float32, rows in the same order


@functools.cache
def _jax_tables(sample_rate: int, num_bins: int,
                warp: float = 1.0) -> _JaxTables:
  geo = _geometry(sample_rate)
  mel_banks = kaldi_mel_banks(num_bins, sample_rate, warp)
  window = INT16_SCALE * povey_window(geo.window)
  quarter = geo.fft_size // 4
  n = np.arange(quarter)
  needed = np.flatnonzero(mel_banks.any(axis=1))
  spectrum_dc = -(1 - PREEMPHASIS) * np.exp(
      -2j * np.pi * np.outer(needed, np.arange(geo.window)) / geo.fft_size
  ) @ window
  dft, dc, mel = [], [], []
  # Inputs: c_0, c_2 (real), then [y0 - y2 | y1 - y3] = [u | v] whose
  # c_1 = u - i v and c_3 = u + i v.
  for residues in ((0,), (2,), (1, 3)):
    columns = []
    for r in residues:
      bins = needed[needed % 4 == r]
      basis = np.exp(-2j * np.pi * np.outer(n, bins) / geo.fft_size)
      if r % 2:
        basis = np.concatenate([basis, (1j if r == 3 else -1j) * basis])
      columns.append(basis)
      mel.append(mel_banks[bins])
      dc.append(spectrum_dc[np.searchsorted(needed, bins)])
    basis = np.concatenate(columns, axis=1)
    dft.append(np.concatenate([basis.real, basis.imag], axis=1))
  dc = [np.concatenate([d.real, d.imag]) for d in
        (dc[0], dc[1], np.concatenate(dc[2:]))]
  block = math.gcd(geo.shift, geo.window)
  if geo.window // block > 16:  # Few big blocks or else plain samples.
    block = 1
  return _JaxTables(
      geo, block, window.astype(np.float32),
      tuple(d.astype(np.float32) for d in dft),
      tuple(d.astype(np.float32) for d in dc),
      np.concatenate(mel).astype(np.float32))


def _log_mel_at(signal: jax.Array, starts, tables: _JaxTables) -> jax.Array:
  """Log-mel of frames of `signal` beginning at `starts`.

  Args:
    signal: [..., W] float32, W a multiple of `tables.block`, holding a whole
      window from every start on.
    starts: int array [..., F] (or [F], shared by all rows), multiples of
      `tables.block`.
    tables: the constants.

  Returns:
    [..., F, num_bins] float32.
  """
  geo = tables.geometry
  blocks = signal.reshape(*signal.shape[:-1], -1, tables.block).sum(axis=-1)
  index = starts[..., None] // tables.block + np.arange(
      geo.window // tables.block)
  sums = jnp.take(blocks, index, axis=-1, mode="clip").sum(axis=-1)
  means = sums[..., None] / geo.window
  emphasised = jnp.concatenate(
      [signal[..., :1], signal[..., 1:] - PREEMPHASIS * signal[..., :-1]],
      axis=-1)
  index = starts[..., None] + np.arange(geo.window)
  frames = jnp.take(emphasised, index, axis=-1, mode="clip") * tables.window
  frames = jnp.pad(frames, [(0, 0)] * (frames.ndim - 1)
                   + [(0, geo.fft_size - geo.window)])
  y = jnp.split(frames, 4, axis=-1)
  inputs = (y[0] + y[1] + y[2] + y[3], y[0] - y[1] + y[2] - y[3],
            jnp.concatenate([y[0] - y[2], y[1] - y[3]], axis=-1))
  powers = []
  for x, dft, dc in zip(inputs, tables.dft, tables.dc, strict=True):
    spectrum = jnp.dot(x, dft, precision=_HIGHEST) + means * dc
    half = dft.shape[1] // 2
    powers.append(spectrum[..., :half] ** 2 + spectrum[..., half:] ** 2)
  energies = jnp.dot(jnp.concatenate(powers, axis=-1), tables.mel,
                     precision=_HIGHEST)
  return jnp.log(jnp.maximum(energies, LOG_FLOOR))


def _round_up(value: int, multiple: int) -> int:
  return -(-value // multiple) * multiple


@functools.partial(
    jax.jit, static_argnames=("sample_rate", "num_bins", "num_frames", "cmn"))
def log_mel_jax(waveforms: jax.Array, lengths: jax.Array, sample_rate: int, *,
                num_bins: int = NUM_BINS, num_frames: int = NUM_FRAMES,
                cmn: bool = False) -> jax.Array:
  """Kaldi log-mel filterbanks of a padded batch, centred -> [N, frames, bins].

  Args:
    waveforms: [N, S] float, each row a waveform in [-1, 1] padded to the
      common length S (the padding's values are never read).
    lengths: [N] int, true lengths in samples (clipped to S).
    sample_rate: Hz (static).
    num_bins: mel bins (static).
    num_frames: output frames per utterance (static); utterances are centred,
      zero-padded or truncated as in `centre_frames`. Only kept frames are
      computed.
    cmn: subtract each utterance's mean over its kept frames before padding.

  Returns:
    float32 [N, num_frames, num_bins]; all zeros for utterances shorter than
    one window.
  """
  _check_num_frames(num_frames)
  tables = _jax_tables(sample_rate, num_bins)
  geo = tables.geometry
  waveforms = jnp.asarray(waveforms, jnp.float32)
  count, samples = waveforms.shape
  num = min(num_frames, num_kaldi_frames(samples, sample_rate))
  if num == 0:
    return jnp.zeros((count, num_frames, num_bins), jnp.float32)
  lengths = jnp.clip(jnp.asarray(lengths, jnp.int32), 0, samples)
  total = jnp.where(lengths >= geo.window,
                    1 + (lengths - geo.window) // geo.shift, 0)
  kept = jnp.minimum(total, num_frames)[:, None]
  # Each row's kept frames, cut out from its first kept frame on.
  width = _round_up((num - 1) * geo.shift + geo.window, tables.block)
  padded = jnp.pad(waveforms, ((0, 0), (0, width)))
  first = jnp.maximum(0, (total - num_frames) // 2) * geo.shift
  window = jax.vmap(lambda row, start: jax.lax.dynamic_slice(
      row, (start,), (width,)))(padded, first)
  feats = _log_mel_at(window, np.arange(num) * geo.shift, tables)
  if cmn:
    valid = (jnp.arange(num)[None, :] < kept)[..., None]
    mean = (jnp.where(valid, feats, 0.0).sum(axis=1, keepdims=True)
            / jnp.maximum(kept, 1)[..., None])
    feats = feats - mean
  offset = jnp.maximum(0, (num_frames - total) // 2)[:, None]
  source = jnp.arange(num_frames)[None, :] - offset
  inside = (source >= 0) & (source < kept)
  picked = jnp.take_along_axis(
      feats, jnp.clip(source, 0, num - 1)[..., None], axis=1)
  return jnp.where(inside[..., None], picked, 0.0)


@functools.partial(jax.jit,
                   static_argnames=("sample_rate", "num_bins", "warp"))
def _log_mel_packed(signal: jax.Array, starts: jax.Array, sample_rate: int,
                    num_bins: int, warp: float = 1.0) -> jax.Array:
  """Log-mel of frames at `starts` in one packed signal -> [F, num_bins]."""
  return _log_mel_at(signal, starts,
                     _jax_tables(sample_rate, num_bins, warp))


# --------------------------------------------------------------- dispatcher


def _as_waveform(waveform, index: int) -> np.ndarray:
  array = np.asarray(waveform, dtype=np.float32)
  if array.ndim != 1:
    raise DataError(f"waveforms[{index}]: expected a 1-D mono waveform, got "
                    f"shape {array.shape}")
  if not np.isfinite(array).all():
    raise DataError(f"waveforms[{index}]: contains NaN or infinite samples")
  return array


def _pack_blocks(kept: list[int], piece: list[int], capacity: int,
                 room: Callable[[int], int], batch_size: int
                 ) -> list[tuple[int, list[int]]]:
  """Greedily packs utterances, in order, into blocks.

  A block holds at most `batch_size` utterances, `frames` frames (`capacity`,
  or the smallest power of two >= _MIN_PACK_FRAMES that fits the next
  `batch_size` utterances) and `room(frames)` samples.
  Returns [(frames, member indices)].
  """
  blocks, i = [], 0
  while i < len(kept):
    wanted = sum(kept[i:i + batch_size])
    frames = min(capacity, max(_MIN_PACK_FRAMES,
                               1 << (wanted - 1).bit_length()))
    members, frame_count, samples = [], 0, 0
    while (i < len(kept) and len(members) < batch_size
           and frame_count + kept[i] <= frames
           and samples + piece[i] <= room(frames)):
      members.append(i)
      frame_count += kept[i]
      samples += piece[i]
      i += 1
    blocks.append((frames, members))
  return blocks


def _log_mel_jax_packed(waves: list[np.ndarray], sample_rate: int,
                        num_bins: int, num_frames: int, batch_size: int,
                        warp: float = 1.0) -> np.ndarray:
  """The jax backend for a list: frames packed end to end, no padding waste.

  Each utterance is cut to the samples its kept frames read and the pieces
  are laid end to end in blocks of a fixed number of frames, so a whole
  corpus runs through one compiled shape (plus a few smaller ones for the
  last frames); the results are scattered to their centred places. Same
  numbers as `log_mel_jax`.
  """
  tables = _jax_tables(sample_rate, num_bins, warp)
  geo = tables.geometry
  out = np.zeros((len(waves), num_frames, num_bins), np.float32)
  utterances, kept, first, used, piece = [], [], [], [], []
  for i, wave in enumerate(waves):
    total = num_kaldi_frames(len(wave), sample_rate)
    if total:
      utterances.append(i)
      kept.append(min(total, num_frames))
      first.append(max(0, (total - num_frames) // 2) * geo.shift)
      used.append((kept[-1] - 1) * geo.shift + geo.window)
      piece.append(_round_up(used[-1], tables.block))
  # A block's samples: room for 1.5 shifts per frame (or one longest piece).
  longest = _round_up((num_frames - 1) * geo.shift + geo.window, tables.block)
  room = lambda frames: max(
      _round_up(frames * geo.shift * 3 // 2, tables.block), longest)
  capacity = max(_PACK_FRAMES, 1 << (num_frames - 1).bit_length())
  pending = []
  for frames, members in _pack_blocks(kept, piece, capacity, room,
                                      batch_size):
    signal = np.zeros(room(frames), np.float32)
    counts = np.array([kept[m] for m in members])
    offsets = np.cumsum([0] + [piece[m] for m in members[:-1]])
    for m, at in zip(members, offsets, strict=True):
      signal[at:at + used[m]] = waves[utterances[m]][first[m]:first[m]
                                                      + used[m]]
    index = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts,
                                                counts)
    starts = np.zeros(frames, np.int32)
    starts[:len(index)] = np.repeat(offsets, counts) + index * geo.shift
    owner = np.repeat(np.array(utterances)[members], counts)
    place = index + np.repeat((num_frames - counts) // 2, counts)
    pending.append((owner, place, _log_mel_packed(
        signal, starts, sample_rate=sample_rate, num_bins=num_bins,
        warp=warp)))
  for owner, place, feats in pending:
    out[owner, place] = np.asarray(feats)[:len(owner)]
  return out


def _kept_frames(total_frames: np.ndarray, num_frames: int
                 ) -> tuple[np.ndarray, np.ndarray]:
  """(frames kept per utterance, bool [U, num_frames] marking them): an
  utterance's frames are centred in the window."""
  kept = np.minimum(total_frames, num_frames)
  offset = (num_frames - kept) // 2
  frame = np.arange(num_frames)[None, :]
  return kept, (frame >= offset[:, None]) & (frame < (offset + kept)[:, None])


def _subtract_means(feats: np.ndarray, total_frames: np.ndarray,
                    num_frames: int) -> np.ndarray:
  """CMN on centred features: mean over each utterance's kept frames."""
  kept, valid = _kept_frames(total_frames, num_frames)
  mean = feats.sum(axis=1) / np.maximum(kept, 1)[:, None]
  return np.where(valid[..., None], feats - mean[:, None, :], 0.0).astype(
      np.float32)


def _divide_stds(feats: np.ndarray, total_frames: np.ndarray,
                 num_frames: int) -> np.ndarray:
  """CVN on centred features: std over each utterance's kept frames."""
  kept, valid = _kept_frames(total_frames, num_frames)
  count = np.maximum(kept, 1)[:, None]
  mean = feats.sum(axis=1) / count
  var = np.where(valid[..., None], (feats - mean[:, None, :]) ** 2,
                 0.0).sum(axis=1) / count
  return (feats / np.sqrt(var + 1e-3)[:, None, :]).astype(np.float32)


def log_mel(waveforms: Sequence[np.ndarray], sample_rate: int, *,
            backend: str = "jax", num_bins: int = NUM_BINS,
            num_frames: int = NUM_FRAMES, batch_size: int = 512,
            cmn: bool = False, cvn: bool = False,
            warp: float = 1.0) -> np.ndarray:
  """Centred log-mel features of many utterances -> float32 [N, frames, bins].

  Args:
    waveforms: mono float waveforms in [-1, 1], all at `sample_rate`.
    sample_rate: Hz.
    backend: "jax" (Kaldi-exact, packed and jitted) or
      "python_speech_features" (a per-utterance loop).
    num_bins: mel bins.
    num_frames: frames per utterance after centring (see `centre_frames`).
    batch_size: most utterances per jax call.
    cmn: subtract each utterance's mean feature vector (over its kept frames)
      before zero padding, so padding sits at the mean.
    cvn: divide each utterance's features by their standard deviation per
      bin over its kept frames (after `cmn`, if set).
    warp: VTLN factor of the mel filterbank (`kaldi_mel_banks`); jax backend
      only; 1.0 is Kaldi's plain filterbank.

  Returns:
    float32 [N, num_frames, num_bins]; utterances shorter than one window
    (25 ms) have no frames and come out all zeros.
  """
  if backend not in BACKENDS:
    raise ConfigError(
        f"backend: unknown feature backend {backend!r}; valid: {BACKENDS}")
  _check_num_frames(num_frames)
  if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
    raise ConfigError(f"batch_size: must be a positive int, got {batch_size!r}")
  kaldi_mel_banks(num_bins, sample_rate, warp)  # Validates all three.
  if warp != 1.0 and backend != "jax":
    raise ConfigError(f"warp: VTLN needs the jax feature backend, not "
                      f"{backend!r}")
  waves = [_as_waveform(w, i) for i, w in enumerate(waveforms)]
  if backend == "jax":
    feats = _log_mel_jax_packed(waves, sample_rate, num_bins, num_frames,
                                batch_size, float(warp))
  else:
    feats = np.zeros((len(waves), num_frames, num_bins), np.float32)
    for i, wave in enumerate(waves):
      feats[i] = centre_frames(
          log_mel_psf(wave, sample_rate, num_bins=num_bins), num_frames)
  frames = np.array([num_kaldi_frames(len(w), sample_rate) for w in waves],
                    dtype=np.int64)
  if cmn:
    feats = _subtract_means(feats, frames, num_frames)
  if cvn:
    feats = _divide_stds(feats, frames, num_frames)
  return feats


def speaker_normalise(feats: np.ndarray, speakers: np.ndarray) -> np.ndarray:
  """Per-speaker mean and variance normalisation of centred features.

  Each speaker's statistics come from all of that speaker's frames in
  `feats` (transductive at test time: a new speaker is normalised by its own
  other utterances); zero padding frames are left at zero.
  """
  feats = np.asarray(feats, np.float32)
  speakers = np.asarray(speakers)
  if len(speakers) != len(feats):
    raise DataError(f"speaker_normalise: {len(speakers)} speakers for "
                    f"{len(feats)} utterances")
  out = np.zeros_like(feats)
  frames = np.abs(feats).sum(-1) > 0                    # [N, T]
  for speaker in np.unique(speakers):
    rows = speakers == speaker
    block, valid = feats[rows], frames[rows]
    voiced = block[valid]
    if not len(voiced):
      continue
    mean, std = voiced.mean(0), voiced.std(0) + 1e-3
    out[rows] = np.where(valid[..., None], (block - mean) / std, 0.0)
  return out
