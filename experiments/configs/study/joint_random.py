r"""Joint end-to-end training from random initialisation, supervised by
pairs alone: both convnets and the aligner trained together on the
cross-modal InfoNCE loss, no classification heads.

  python -m experiments.study --workdir=/tmp/study --data_dir=DATA \
      --only=joint_random
"""

import ml_collections

from experiments.configs.study import base


def get_config() -> ml_collections.ConfigDict:
  c = base.get_config()
  c.name = "joint_random"
  c.title = "joint, from random init (pairs only)"
  c.model.image = "random_tuned"
  c.model.speech = "random_tuned"
  c.train.steps = 3000
  c.eval.robustness = True
  return c
