r"""Speaker-independent evaluation: the two-stage model with every FSDD
speaker held out in turn (train on the other four).

  python -m experiments.study --workdir=/tmp/study --data_dir=DATA \
      --only=loso
"""

import ml_collections

from experiments.configs.study import base


def get_config() -> ml_collections.ConfigDict:
  c = base.get_config()
  c.name = "loso"
  c.title = "two-stage, leave one speaker out"
  c.data.speech_splits = ("loso:*",)
  return c
