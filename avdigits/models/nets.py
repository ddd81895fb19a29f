"""The convnets and the aligner a config section describes: the one set of
model factories every experiment uses."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from avdigits import settings
from avdigits.models import convnets


def image_net(section: Any) -> convnets.ImageNet:
  """The image convnet of an image section (widths, kernel_size, hidden,
  dropout, conv_impl where given; "auto" is XLA's convolution)."""
  impl = section.get("conv_impl", "auto")
  return settings.from_section(
      convnets.ImageNet, section, num_classes=10,
      conv_impl=convnets.ImageNet.conv_impl if impl == "auto" else impl)


def speech_net(section: Any, num_classes: int,
               hidden: int | None = None) -> convnets.SpeechNet:
  """The speech convnet of a speech section, with `hidden` units (default
  the section's `hidden`)."""
  derived = {"num_classes": num_classes}
  if hidden is not None:
    derived["hidden"] = hidden
  return settings.from_section(convnets.SpeechNet, section, **derived)


def aligner(section: Any) -> convnets.Aligner:
  """The aligner of a section with embed_dim and init_std."""
  return convnets.Aligner(embed_dim=section.embed_dim,
                        init_std=section.init_std)


def init_params(model: Any, *example: np.ndarray, seed: int = 0) -> Any:
  """`model`'s parameters for inputs shaped like `example` (one row of
  each is used)."""
  return model.init(jax.random.key(seed),
                    *(jnp.asarray(e[:1]) for e in example))["params"]
