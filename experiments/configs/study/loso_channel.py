r"""Unseen voices, ablation: two copies through random microphones and rooms.

The `loso` experiment (every FSDD speaker held out in turn) with one change.

  python -m experiments.study --suite=voices --workdir=/tmp/voices \
      --data_dir=DATA --only=loso,loso_channel
"""

import ml_collections

from experiments.configs.study import loso


def get_config() -> ml_collections.ConfigDict:
  c = loso.get_config()
  c.name = "loso_channel"
  c.title = "two copies through random microphones and rooms"
  c.speech.channel_copies = 2
  return c
