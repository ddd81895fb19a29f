r"""Speaker-independent evaluation on AudioMNIST: five speaker-disjoint folds
(runs only when <data_dir>/audiomnist is there; resampled to 8 kHz).

  python -m experiments.study --workdir=/tmp/study --data_dir=DATA \
      --only=audiomnist_folds
"""

import ml_collections

from experiments.configs.study import base


def get_config() -> ml_collections.ConfigDict:
  c = base.get_config()
  c.name = "audiomnist_folds"
  c.title = "two-stage, AudioMNIST 5 speaker folds"
  c.data.speech = "audiomnist"
  c.data.speech_splits = ("folds:5",)
  return c
