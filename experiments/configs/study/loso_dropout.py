r"""Unseen voices, ablation: speech convnet dropout 0.5.

The `loso` experiment (every FSDD speaker held out in turn) with one change.

  python -m experiments.study --suite=voices --workdir=/tmp/voices \
      --data_dir=DATA --only=loso,loso_dropout
"""

import ml_collections

from experiments.configs.study import loso


def get_config() -> ml_collections.ConfigDict:
  c = loso.get_config()
  c.name = "loso_dropout"
  c.title = "speech convnet dropout 0.5"
  c.speech.dropout = 0.5
  return c
