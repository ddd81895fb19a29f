r"""Loss ablation: the hinge from both sides (images rank utterances and
utterances rank images), Adam.

  python -m experiments.study --workdir=/tmp/study --data_dir=DATA \
      --only=symmetric_hinge
"""

import ml_collections

from experiments.configs.study import base


def get_config() -> ml_collections.ConfigDict:
  c = base.get_config()
  c.name = "symmetric_hinge"
  c.title = "two-stage, symmetric hinge, Adam"
  c.train.loss = "symmetric_hinge"
  return c
