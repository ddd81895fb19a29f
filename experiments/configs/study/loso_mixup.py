r"""Unseen voices, ablation: speech convnet trained with mixup (alpha 0.2).

The `loso` experiment (every FSDD speaker held out in turn) with one change.

  python -m experiments.study --suite=voices --workdir=/tmp/voices \
      --data_dir=DATA --only=loso,loso_mixup
"""

import ml_collections

from experiments.configs.study import loso


def get_config() -> ml_collections.ConfigDict:
  c = loso.get_config()
  c.name = "loso_mixup"
  c.title = "speech convnet trained with mixup (alpha 0.2)"
  # 0.2: the usual value for speech (not tuned here).
  c.speech.mixup = 0.2
  return c
