"""On-device training augmentation: pure functions of (key, batch).

Images [B, H, W]: random translation by up to `max_shift` pixels (zero fill,
like MNIST's background). Spectrograms [B, T, F]: random circular time shift
by up to `max_shift` frames of the centred (zero-padded) utterance, plus one
time mask and one frequency mask per example (SpecAugment-style);
"shift_masks" takes two of each (SpecAugment's LibriSpeech policy counts);
"roll" is the time shift alone. "warp" adds, before the shift and masks, a
random stretch of the frequency axis (vocal tract length perturbation) and
of the time axis (speaking rate), each by up to +-15%. "shift_noise"
(images) adds to the translation Gaussian pixel noise and one random
occluding square.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from avdigits.errors import ConfigError

AUGMENTATIONS = ("none", "shift", "roll", "shift_mask", "shift_masks", "warp",
                 "shift_noise")
MAX_WARP = 0.15


def _translate(key: jax.Array, x: jax.Array, max_shift: int) -> jax.Array:
  """Shifts each [H, W] map by a random (dy, dx) in [-s, s], zero fill."""
  b, h, w = x.shape
  padded = jnp.pad(x, ((0, 0), (max_shift, max_shift),
                       (max_shift, max_shift)))
  offsets = jax.random.randint(key, (b, 2), 0, 2 * max_shift + 1)
  return jax.vmap(lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1]),
                                                       (h, w)))(padded,
                                                                offsets)


def _mask(key: jax.Array, x: jax.Array, axis: int, width: int) -> jax.Array:
  """Zeroes one random band of up to `width` rows along `axis` (1 or 2)."""
  b, size = x.shape[0], x.shape[axis]
  k1, k2 = jax.random.split(key)
  widths = jax.random.randint(k1, (b, 1), 0, width + 1)
  starts = jax.random.randint(k2, (b, 1), 0, size)
  pos = jnp.arange(size)[None, :]
  keep = ~((pos >= starts) & (pos < starts + widths))        # [B, size]
  shape = (b, size, 1) if axis == 1 else (b, 1, size)
  return x * keep.reshape(shape)


def _stretch(key: jax.Array, x: jax.Array, axis: int,
             max_factor: float) -> jax.Array:
  """Stretches each example along `axis` (1 or 2) by a random factor in
  [1 - m, 1 + m] about the axis' centre (frequency: about bin 0), with
  linear interpolation and zero fill."""
  size = x.shape[axis]
  factors = jax.random.uniform(key, (x.shape[0], 1), minval=1 - max_factor,
                               maxval=1 + max_factor)
  centre = (size - 1) / 2 if axis == 1 else 0.0
  src = centre + (jnp.arange(size)[None, :] - centre) / factors  # [B, size]
  lo = jnp.floor(src).astype(jnp.int32)
  frac = src - lo
  moved = jnp.moveaxis(x, axis, 1)                              # [B, size, .]

  def take(idx):
    valid = (idx >= 0) & (idx < size)
    got = jnp.take_along_axis(moved, jnp.clip(idx, 0, size - 1)[..., None],
                              axis=1)
    return got * valid[..., None]

  out = (take(lo) * (1 - frac)[..., None] + take(lo + 1) * frac[..., None])
  return jnp.moveaxis(out, 1, axis)


def _noise_and_occlude(key: jax.Array, x: jax.Array) -> jax.Array:
  """Gaussian noise (std up to 0.5) and one blanked square (side up to 12)."""
  b, h, w = x.shape
  k_std, k_noise, k_size, k_pos = jax.random.split(key, 4)
  std = jax.random.uniform(k_std, (b, 1, 1), maxval=0.5)
  x = jnp.clip(x + std * jax.random.normal(k_noise, x.shape), -0.5, 0.5)
  size = jax.random.randint(k_size, (b, 1, 1), 0, 13)
  top, left = jnp.split(jax.random.randint(k_pos, (b, 2, 1, 1), 0, h - 12),
                        2, axis=1)
  rows = jnp.arange(h)[None, :, None]
  cols = jnp.arange(w)[None, None, :]
  inside = ((rows >= top[:, 0]) & (rows < top[:, 0] + size)
            & (cols >= left[:, 0]) & (cols < left[:, 0] + size))
  return jnp.where(inside, -0.5, x)


def augment(kind: str, key: jax.Array, x: jax.Array, *,
            max_shift: int) -> jax.Array:
  """Applies augmentation `kind` (see AUGMENTATIONS) to a batch."""
  if kind == "none":
    return x
  squeeze = x.ndim == 4
  if squeeze:
    x = x[..., 0]
  k_shift, k_time, k_freq = jax.random.split(key, 3)
  k_warp = jax.random.fold_in(key, 3)
  if kind in ("shift", "shift_noise"):
    x = _translate(k_shift, x, max_shift)
  if kind == "shift_noise":
    x = _noise_and_occlude(k_warp, x)
  if kind == "warp":
    k_f, k_t = jax.random.split(k_warp)
    x = _stretch(k_t, _stretch(k_f, x, 2, MAX_WARP), 1, MAX_WARP)
  if kind in ("roll", "shift_mask", "shift_masks", "warp"):
    shifts = jax.random.randint(k_shift, (x.shape[0],), -max_shift,
                                max_shift + 1)
    x = jax.vmap(lambda u, s: jnp.roll(u, s, axis=0))(x, shifts)
  if kind in ("shift_mask", "shift_masks", "warp"):
    x = _mask(k_time, x, 1, max(1, x.shape[1] // 10))
    x = _mask(k_freq, x, 2, max(1, x.shape[2] // 8))
  if kind == "shift_masks":
    k_time, k_freq = jax.random.split(jax.random.fold_in(key, 4))
    x = _mask(k_time, x, 1, max(1, x.shape[1] // 10))
    x = _mask(k_freq, x, 2, max(1, x.shape[2] // 8))
  return x[..., None] if squeeze else x


def validate(kind: str, flag: str) -> None:
  if kind not in AUGMENTATIONS:
    raise ConfigError(f"--config.{flag}.augment={kind!r}: choose one of "
                      f"{', '.join(AUGMENTATIONS)}")
