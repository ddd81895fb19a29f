r"""Unseen voices, ablation:
per-speaker mean/variance normalisation (transductive).

The `loso` experiment (every FSDD speaker held out in turn) with one change.

  python -m experiments.study --suite=voices --workdir=/tmp/voices \
      --data_dir=DATA --only=loso,loso_speaker_norm
"""

import ml_collections

from experiments.configs.study import loso


def get_config() -> ml_collections.ConfigDict:
  c = loso.get_config()
  c.name = "loso_speaker_norm"
  c.title = "per-speaker mean/variance normalisation (transductive)"
  c.features.speaker_norm = True
  return c
