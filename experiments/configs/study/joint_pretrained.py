r"""Joint end-to-end fine-tuning from the pretrained classifiers on the
cross-modal InfoNCE loss alone.

  python -m experiments.study --workdir=/tmp/study --data_dir=DATA \
      --only=joint_pretrained
"""

import ml_collections

from experiments.configs.study import base


def get_config() -> ml_collections.ConfigDict:
  c = base.get_config()
  c.name = "joint_pretrained"
  c.title = "joint, from pretrained classifiers"
  c.model.image = "pretrained_tuned"
  c.model.speech = "pretrained_tuned"
  c.train.steps = 500
  c.train.learning_rate = 3e-4
  return c
