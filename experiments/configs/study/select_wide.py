r"""Nested selection candidate: a larger speech encoder: 128 convolution maps,
1,024-unit dense layers.

The incumbent (`select`) with one change; see select.py.

  python -m experiments.study --suite=select --workdir=/tmp/select \
      --data_dir=DATA --seeds=1 --only=select,select_wide
"""

import ml_collections

from experiments.configs.study import select


def get_config() -> ml_collections.ConfigDict:
  c = select.get_config()
  c.name = "select_wide"
  c.title = "larger speech encoder (128 maps, 1,024 units)"
  c.speech.features = 128
  c.speech.hidden = 1024
  return c
