r"""Loss ablation: the paper's hinge without the clamp, Adam.

  python -m experiments.study --workdir=/tmp/study --data_dir=DATA \
      --only=hinge
"""

import ml_collections

from experiments.configs.study import base


def get_config() -> ml_collections.ConfigDict:
  c = base.get_config()
  c.name = "hinge"
  c.title = "two-stage, paper hinge (no clamp), Adam"
  c.train.loss = "hinge"
  return c
