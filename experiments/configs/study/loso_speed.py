r"""Unseen voices, ablation: speed perturbation 0.9 / 1.1 (Kaldi).

The `loso` experiment (every FSDD speaker held out in turn) with one change.

  python -m experiments.study --suite=voices --workdir=/tmp/voices \
      --data_dir=DATA --only=loso,loso_speed
"""

import ml_collections

from experiments.configs.study import loso


def get_config() -> ml_collections.ConfigDict:
  c = loso.get_config()
  c.name = "loso_speed"
  c.title = "speed perturbation 0.9 / 1.1 (Kaldi)"
  c.speech.speed_factors = (0.9, 1.1)
  return c
