"""On-device training augmentation: pure functions of (key, batch).

Images [B, H, W]: random translation by up to `max_shift` pixels (zero fill,
like MNIST's background). Spectrograms [B, T, F]: random circular time shift
by up to `max_shift` frames of the centred (zero-padded) utterance, plus one
time mask and one frequency mask per example (SpecAugment-style); "roll"
is the time shift alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from avdigits.errors import ConfigError

AUGMENTATIONS = ("none", "shift", "roll", "shift_mask")


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


def augment(kind: str, key: jax.Array, x: jax.Array, *,
            max_shift: int) -> jax.Array:
  """Applies augmentation `kind` (see AUGMENTATIONS) to a batch."""
  if kind == "none":
    return x
  squeeze = x.ndim == 4
  if squeeze:
    x = x[..., 0]
  k_shift, k_time, k_freq = jax.random.split(key, 3)
  x = _translate(k_shift, x, max_shift) if kind == "shift" else x
  if kind in ("roll", "shift_mask"):
    shifts = jax.random.randint(k_shift, (x.shape[0],), -max_shift,
                                max_shift + 1)
    x = jax.vmap(lambda u, s: jnp.roll(u, s, axis=0))(x, shifts)
  if kind == "shift_mask":
    x = _mask(k_time, x, 1, max(1, x.shape[1] // 10))
    x = _mask(k_freq, x, 2, max(1, x.shape[2] // 8))
  return x[..., None] if squeeze else x


def validate(kind: str, flag: str) -> None:
  if kind not in AUGMENTATIONS:
    raise ConfigError(f"--config.{flag}.augment={kind!r}: choose one of "
                      f"{', '.join(AUGMENTATIONS)}")
