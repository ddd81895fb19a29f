r"""Unseen voices, ablation:
per-utterance variance normalisation (on top of mean).

The `loso` experiment (every FSDD speaker held out in turn) with one change.

  python -m experiments.study --suite=voices --workdir=/tmp/voices \
      --data_dir=DATA --only=loso,loso_cvn
"""

import ml_collections

from experiments.configs.study import loso


def get_config() -> ml_collections.ConfigDict:
  c = loso.get_config()
  c.name = "loso_cvn"
  c.title = "per-utterance variance normalisation (on top of mean)"
  c.features.cvn = True
  return c
