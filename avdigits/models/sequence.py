"""Encoders that keep a sequence, for digit strings: speech frames and image
columns, each mapped to one embedding per (downsampled) step.

  speech [B, T, bins] -> [B, T / 4, dim]   (one step per 40 ms)
  image  [B, 28, W]   -> [B, W / 4, dim]   (one step per 4 columns)

Both downsample by `STRIDE`; padded steps are masked by the caller
(`downsample_mask`).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

STRIDE = 4


def downsample_mask(mask: jax.Array) -> jax.Array:
  """[B, T] validity of input steps -> [B, T / STRIDE]: a step is valid when
  any of its inputs is."""
  b, t = mask.shape
  return mask.reshape(b, t // STRIDE, STRIDE).any(axis=-1)


def _conv_block(x: jax.Array, conv: nn.Module, norm: bool) -> jax.Array:
  x = conv(x)
  return nn.relu(nn.LayerNorm()(x) if norm else x)


class SpeechSequenceNet(nn.Module):
  """1-D convolutions over log-mel frames: the second and third of stride
  2 (one output step per 40 ms), any further ones at that rate with
  dilation 2, each followed by layer normalisation (with `norm`) and ReLU;
  a linear map to `dim`."""

  widths: Sequence[int] = (128, 256, 256)
  kernel_size: int = 5
  dim: int = 128
  norm: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i, width in enumerate(self.widths):
      stride = 2 if i in (1, 2) else 1
      dilation = 2 if i > 2 else 1
      x = _conv_block(x, nn.Conv(width, (self.kernel_size,),
                                 strides=(stride,),
                                 kernel_dilation=(dilation,)), self.norm)
    return nn.Dense(self.dim)(x)


class ImageSequenceNet(nn.Module):
  """3x3 convolutions over a number image, 2x2 max-pools after the first
  two, each followed by layer normalisation (with `norm`) and ReLU; then
  each column (all rows' maps) mapped linearly to `dim`."""

  widths: Sequence[int] = (32, 64, 128)
  dim: int = 128
  norm: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x[..., None]
    for i, width in enumerate(self.widths):
      x = _conv_block(x, nn.Conv(width, (3, 3)), self.norm)
      if i < 2:
        x = nn.max_pool(x, (2, 2), (2, 2))
    b, h, w, c = x.shape
    columns = jnp.transpose(x, (0, 2, 1, 3)).reshape(b, w, h * c)
    return nn.Dense(self.dim)(columns)


class StringModel(nn.Module):
  """Both encoders; `__call__` gives (speech steps, image columns)."""

  speech_widths: Sequence[int] = (64, 128, 128)
  image_widths: Sequence[int] = (16, 32, 64)
  kernel_size: int = 5
  dim: int = 128
  norm: bool = False

  def setup(self):
    self.speech = SpeechSequenceNet(self.speech_widths, self.kernel_size,
                                    self.dim, self.norm)
    self.image = ImageSequenceNet(self.image_widths, self.dim, self.norm)

  def __call__(self, speech: jax.Array, images: jax.Array
               ) -> tuple[jax.Array, jax.Array]:
    return self.embed_speech(speech), self.embed_images(images)

  def embed_speech(self, speech: jax.Array) -> jax.Array:
    return _unit(self.speech(speech))

  def embed_images(self, images: jax.Array) -> jax.Array:
    return _unit(self.image(images))


def _unit(x: jax.Array) -> jax.Array:
  """Each step's embedding scaled to unit length (matchmaps of cosines)."""
  return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + 1e-12)
