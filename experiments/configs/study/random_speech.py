r"""Ablation: only the image convnet trained; the speech convnet keeps its
random initialisation (frozen); the aligner trains on both.

  python -m experiments.study --workdir=/tmp/study --data_dir=DATA \
      --only=random_speech
"""

import ml_collections

from experiments.configs.study import base


def get_config() -> ml_collections.ConfigDict:
  c = base.get_config()
  c.name = "random_speech"
  c.title = "image convnet trained, speech convnet random (frozen)"
  c.model.speech = "random_frozen"
  return c
