r"""Unseen voices, ablation: real + eSpeak NG voices (100 per class).

The `loso` experiment (every FSDD speaker held out in turn) with one change.

  python -m experiments.study --suite=voices --workdir=/tmp/voices \
      --data_dir=DATA --only=loso,loso_voices
"""

import ml_collections

from experiments.configs.study import loso


def get_config() -> ml_collections.ConfigDict:
  c = loso.get_config()
  c.name = "loso_voices"
  c.title = "real + eSpeak NG voices (100 per class)"
  c.speech.synthetic_voices = 100
  return c
