r"""Unseen voices, ablation: speech convnet dropout 0.5, 1,600 steps.

The `loso` experiment (every FSDD speaker held out in turn) with one change.

  python -m experiments.study --suite=voices --workdir=/tmp/voices \
      --data_dir=DATA --only=loso,loso_long
"""

import ml_collections

from experiments.configs.study import loso


def get_config() -> ml_collections.ConfigDict:
  c = loso.get_config()
  c.name = "loso_long"
  c.title = "speech convnet dropout 0.5, 1,600 steps"
  c.speech.dropout = 0.5
  c.speech.steps = 1600
  return c
