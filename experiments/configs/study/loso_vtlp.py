r"""Unseen voices, ablation: VTLP, mel filterbank warped by 0.9 / 1.1.

The `loso` experiment (every FSDD speaker held out in turn) with one change.

  python -m experiments.study --suite=voices --workdir=/tmp/voices \
      --data_dir=DATA --only=loso,loso_vtlp
"""

import ml_collections

from experiments.configs.study import loso


def get_config() -> ml_collections.ConfigDict:
  c = loso.get_config()
  c.name = "loso_vtlp"
  c.title = "VTLP, mel filterbank warped by 0.9 / 1.1"
  c.speech.vtlp_factors = (0.9, 1.1)
  return c
