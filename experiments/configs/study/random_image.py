r"""Ablation: only the speech convnet trained; the image convnet keeps its
random initialisation (frozen); the aligner trains on both.

  python -m experiments.study --workdir=/tmp/study --data_dir=DATA \
      --only=random_image
"""

import ml_collections

from experiments.configs.study import base


def get_config() -> ml_collections.ConfigDict:
  c = base.get_config()
  c.name = "random_image"
  c.title = "speech convnet trained, image convnet random (frozen)"
  c.model.image = "random_frozen"
  return c
