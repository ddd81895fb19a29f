"""Flax linen models: the image convnet, the speech convnet and the aligner.

Each convnet has `__call__` (logits) and `embed` (penultimate activations,
the frozen features the aligner works on), sharing parameters via setup():

  logits = model.apply(variables, x)
  features = model.apply(variables, x, method="embed")
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from avdigits.errors import ConfigError, DataError

CONV_IMPLS = ("xla", "patches")


def conv2d_same(x: jax.Array, kernel: jax.Array,
                impl: str = "xla") -> jax.Array:
  """'SAME' stride-1 convolution (no bias) of NHWC x with an HWIO kernel.

  impl "xla": lax.conv_general_dilated; "patches":
  lax.conv_general_dilated_patches, then one matmul. Both compute the same
  function; "xla" is much the faster on CPU.
  """
  kh, kw, cin, cout = kernel.shape
  if impl == "xla":
    return lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  if impl == "patches":
    patches = lax.conv_general_dilated_patches(
        x, (kh, kw), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    # The patches' features are ordered (c, i, j).
    return patches @ kernel.transpose(2, 0, 1, 3).reshape(cin * kh * kw, cout)
  raise ConfigError(f"conv_impl: unknown {impl!r}, expected one of "
                    f"{CONV_IMPLS}")


def _max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pool, stride 2, of NHWC x with even H and W (a reshape-max)."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class _ConvReluPool(nn.Module):
  """5x5 'SAME' conv + bias, ReLU, 2x2/2 max-pool; nn.Conv's param layout.

  Computed as conv, pool, bias, ReLU: the same numbers as the usual order
  (max commutes with a per-channel bias and with ReLU) on 4x fewer elements.
  """

  features: int
  impl: str = "xla"
  kernel_size: tuple[int, int] = (5, 5)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (*self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    y = _max_pool_2x2(conv2d_same(x, kernel, self.impl))
    return nn.relu(y + bias)


class ImageNet(nn.Module):
  """The TensorFlow-tutorial MNIST convnet.

  conv 5x5x32 'SAME' ReLU, max-pool 2x2/2, conv 5x5x64 'SAME' ReLU,
  max-pool 2x2/2, flatten (7*7*64 for 28x28 input), dense 512 ReLU,
  dense 512 ReLU (the embedding), dense num_classes (the logits).
  1,926,026 parameters for 28x28 input and 10 classes.

  Input: float32 [B, H, W] or [B, H, W, 1] (28x28 MNIST in [-0.5, 0.5]);
  H and W must be multiples of 4.

  Attributes:
    num_classes: number of logits.
    conv_impl: how convolutions are computed, "xla" or "patches" (see
      conv2d_same); both give the same numbers from the same parameters.
    dropout: dropout rate after each dense ReLU when training.
    widths: channels of the two conv layers (the tutorial's 32, 64).
    kernel_size: side of the square conv kernels (the tutorial's 5).
    hidden: width of the two dense layers (the embedding size).
  """

  num_classes: int = 10
  conv_impl: str = "xla"
  dropout: float = 0.0
  widths: tuple[int, int] = (32, 64)
  kernel_size: int = 5
  hidden: int = 512

  def setup(self):
    if self.conv_impl not in CONV_IMPLS:
      raise ConfigError(f"conv_impl: unknown {self.conv_impl!r}, expected "
                        f"one of {CONV_IMPLS}")
    kernel = (self.kernel_size, self.kernel_size)
    self.conv1 = _ConvReluPool(self.widths[0], self.conv_impl, kernel)
    self.conv2 = _ConvReluPool(self.widths[1], self.conv_impl, kernel)
    self.dense1 = nn.Dense(self.hidden)
    self.dense2 = nn.Dense(self.hidden)
    self.logits = nn.Dense(self.num_classes)
    self.drop = nn.Dropout(self.dropout)

  def embed(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Penultimate activations [B, hidden] (after the second dense ReLU).

    With train=True and dropout > 0, dropout follows each dense ReLU (the
    TensorFlow tutorial's regulariser); needs rngs={"dropout": key}.
    """
    if x.ndim == 3:
      x = x[..., None]
    if (x.ndim != 4 or x.shape[-1] != 1 or x.shape[1] % 4
        or x.shape[2] % 4):
      raise DataError("ImageNet input x: expected [B, H, W] or [B, H, W, 1] "
                      f"with H, W multiples of 4, got shape {x.shape}")
    x = self.conv2(self.conv1(x))
    x = x.reshape(x.shape[0], -1)
    x = self.drop(nn.relu(self.dense1(x)), deterministic=not train)
    return self.drop(nn.relu(self.dense2(x)), deterministic=not train)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Logits [B, num_classes]."""
    return self.logits(self.embed(x, train))


SPEECH_POOLS = ("time_channel", "time")


class SpeechNet(nn.Module):
  """The paper's speech convnet over log-mel frames.

  The paper: "convolution with a 5x23 filter, stride 1, one frame of padding
  at each end, 64 channels, ReLU; max-pool 3x4 with strides 1x2", then two
  dense layers. Its 5x23 filter spans 5 frames and all 23 mel bins, so the
  convolution runs along time only: a 1-D convolution over frames with the
  23 bins as input channels (identical to a 2-D 5x23 'VALID'-in-bins conv),
  leaving a [frames, 64] map. What the 3x4 / 1x2 pool spans is open to two
  readings (`pool`):

  - "time": as in any 2-D convnet, the pool runs over the map's two spatial
    axes, time and frequency; the frequency axis is 1 wide after the 5x23
    filter, so (with 'SAME' padding) the pool covers 3 frames at stride 1
    and keeps all 64 maps: [B, 96, 64], flattened to 6,144.
  - "time_channel": the pool runs over the [frames, 64] map itself, 3
    frames by 4 feature maps (maxout-style over channels), the reading
    under which a width-4 window has something 4 wide to span. Shapes for
    100 frames:

    [B, 100, 23] --pad 1 frame each end--> [B, 102, 23]
    --conv 5 frames x 23 bins, 64 maps, + bias--> [B, 98, 64]
    --max-pool 3 frames x 4 maps, strides 1 x 2--> [B, 96, 31], ReLU
    --flatten--> [B, 2976] --dense hidden, ReLU--> --dense hidden, ReLU-->
    [B, hidden] (the embedding) --dense num_classes--> logits.

  The ReLU is applied after the pool (max commutes with ReLU; the bias is
  added before the pool, since the pool may span channels). 4,116,747
  parameters for 100 frames, hidden 1024 and 11 classes ("time_channel");
  7,360,779 ("time").

  Input: float32 [B, T, 23] or [B, T, 23, 1] (T frames, T >= 5).

  Attributes:
    hidden: width of the two dense layers (the embedding size).
    num_classes: number of logits (11: "zero".."nine" and "oh").
    features: feature maps of the convolution (the paper's 64).
    dropout: dropout rate after each dense ReLU when training.
    pool: "time_channel" or "time" (see above).
  """

  hidden: int = 1024
  num_classes: int = 11
  features: int = 64
  dropout: float = 0.0
  pool: str = "time_channel"

  def setup(self):
    if self.pool not in SPEECH_POOLS:
      raise ConfigError(f"--config.speech.pool={self.pool!r}: choose one of "
                        f"{', '.join(SPEECH_POOLS)}")
    self.conv = nn.Conv(self.features, (5,), padding=((1, 1),))
    self.dense1 = nn.Dense(self.hidden)
    self.dense2 = nn.Dense(self.hidden)
    self.logits = nn.Dense(self.num_classes)
    self.drop = nn.Dropout(self.dropout)

  def embed(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Penultimate activations [B, hidden] (after the second dense ReLU).

    With train=True and dropout > 0, dropout follows each dense ReLU.
    """
    if x.ndim == 4 and x.shape[-1] == 1:
      x = x[..., 0]
    if x.ndim != 3 or x.shape[1] < 5:
      raise DataError("SpeechNet input x: expected [B, T, bins] or "
                      f"[B, T, bins, 1] with T >= 5, got shape {x.shape}")
    y = self.conv(x)                                     # [B, T-2, 64]
    y = jnp.maximum(jnp.maximum(y[:, :-2], y[:, 1:-1]), y[:, 2:])  # 3 frames
    if self.pool == "time_channel":
      pairs = jnp.maximum(y[..., 0::2], y[..., 1::2])    # maps (2j, 2j+1)
      y = jnp.maximum(pairs[..., :-1], pairs[..., 1:])   # 4 maps, step 2
    y = nn.relu(y)
    y = y.reshape(y.shape[0], -1)
    y = self.drop(nn.relu(self.dense1(y)), deterministic=not train)
    return self.drop(nn.relu(self.dense2(y)), deterministic=not train)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Logits [B, num_classes]."""
    return self.logits(self.embed(x, train))


def _normal_or_zeros(std: float):
  if std > 0:
    return nn.initializers.normal(std)
  return nn.initializers.zeros_init()


class _SpeechMap(nn.Module):
  """y = v W_m + b_m, and the aligner's scores computed through W_m."""

  features: int
  init_std: float
  bias_std: float = 0.0

  @nn.compact
  def __call__(self, v: jax.Array,
               image_embedding: jax.Array | None = None) -> jax.Array:
    """Returns y [..., features]; or, given x [B, E] and v [B, C, N], [B, C].

    The scores y(v[b, c]) . x[b] are computed as (W_m x[b]) . v[b, c] +
    b_m . x[b]: one mat-vec per image instead of one per utterance, and a
    rank-one W_m gradient per image.
    """
    kernel = self.param("kernel", nn.initializers.normal(self.init_std),
                        (v.shape[-1], self.features))
    bias = self.param("bias", _normal_or_zeros(self.bias_std),
                      (self.features,))
    if image_embedding is None:
      return v @ kernel + bias
    back = jnp.einsum("be,ne->bn", image_embedding, kernel)  # [B, N]
    return (jnp.einsum("bcn,bn->bc", v, back)
            + (image_embedding @ bias)[:, None])


class Aligner(nn.Module):
  """The paper's alignment model over frozen image and speech activations.

  Image map: x = relu(W_d^T w + b_d) (params image_map/kernel = W_d
  [512, embed_dim], image_map/bias = b_d). Speech map: y = W_m^T v + b_m,
  linear (params speech_map/kernel = W_m [N, embed_dim], speech_map/bias =
  b_m). Kernels start as zero-mean Gaussians with std init_std; biases as
  zero-mean Gaussians with std bias_std (the paper: every parameter
  Gaussian), or at zero when bias_std is 0. The score of an image and an
  utterance is y . x, clamped at 0.

  Attributes:
    embed_dim: size of the joint embedding.
    init_std: standard deviation of the kernels' initial values.
    bias_std: standard deviation of the biases' initial values (0: zeros).
  """

  embed_dim: int = 512
  init_std: float = 0.01
  bias_std: float = 0.0

  def setup(self):
    self.image_map = nn.Dense(
        self.embed_dim, kernel_init=nn.initializers.normal(self.init_std),
        bias_init=_normal_or_zeros(self.bias_std))
    self.speech_map = _SpeechMap(self.embed_dim, self.init_std,
                                 self.bias_std)

  def embed_image(self, w: jax.Array) -> jax.Array:
    """x [..., embed_dim] from image activations w [..., 512]."""
    return nn.relu(self.image_map(w))

  def embed_speech(self, v: jax.Array) -> jax.Array:
    """y [..., embed_dim] from speech activations v [..., N]."""
    return self.speech_map(v)

  def __call__(self, w: jax.Array, v: jax.Array,
               clamp: bool = True) -> jax.Array:
    """Scores [B, C] of images w [B, 512] against utterances v [B, C, N].

    scores[b, c] = y(v[b, c]) . x(w[b]), and max(0, .) of that when clamp.
    """
    scores = self.speech_map(v, image_embedding=self.embed_image(w))
    return nn.relu(scores) if clamp else scores

  def score_matrix(self, w: jax.Array, v: jax.Array,
                   clamp: bool = False) -> jax.Array:
    """All-pairs scores [P, Q] of images w [P, 512] and utterances v [Q, N]."""
    scores = self.embed_image(w) @ self.embed_speech(v).T
    return nn.relu(scores) if clamp else scores
