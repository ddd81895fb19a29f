r"""Unseen voices, ablation: joint, from random init (pairs only).

The `loso` experiment (every FSDD speaker held out in turn) with the
model of `joint_random`: both convnets and the aligner trained together
from random initialisation on pairs alone, no classification heads.

  python -m experiments.study --suite=voices --workdir=/tmp/voices \
      --data_dir=DATA --only=loso,loso_joint
"""

import ml_collections

from experiments.configs.study import loso


def get_config() -> ml_collections.ConfigDict:
  c = loso.get_config()
  c.name = "loso_joint"
  c.title = "joint, from random init (pairs only)"
  c.model.image = "random_tuned"
  c.model.speech = "random_tuned"
  c.train.steps = 3000
  return c
