r"""Unseen voices, ablation:
speech convnet trained on eSpeak NG voices only (300 per class, no real speech);
the aligner still trains on the real training utterances.

The `loso` experiment (every FSDD speaker held out in turn) with one change.

  python -m experiments.study --suite=voices --workdir=/tmp/voices \
      --data_dir=DATA --only=loso,loso_voices_only
"""

import ml_collections

from experiments.configs.study import loso


def get_config() -> ml_collections.ConfigDict:
  c = loso.get_config()
  c.name = "loso_voices_only"
  c.title = ("speech convnet trained on eSpeak NG voices only (300 per "
             "class, no real speech)")
  c.speech.synthetic_voices = 300
  c.speech.synthetic_only = True
  return c
