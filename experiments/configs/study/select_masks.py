r"""Nested selection candidate: SpecAugment with two time and two frequency
masks per spectrogram.

The incumbent (`select`) with one change; see select.py.

  python -m experiments.study --suite=select --workdir=/tmp/select \
      --data_dir=DATA --seeds=1 --only=select,select_masks
"""

import ml_collections

from experiments.configs.study import select


def get_config() -> ml_collections.ConfigDict:
  c = select.get_config()
  c.name = "select_masks"
  c.title = "two time and two frequency masks"
  c.speech.augment = "shift_masks"
  return c
