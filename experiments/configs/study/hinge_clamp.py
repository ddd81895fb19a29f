r"""Loss ablation: the paper's hinge with S = max(0, y.x), Adam.

  python -m experiments.study --workdir=/tmp/study --data_dir=DATA \
      --only=hinge_clamp
"""

import ml_collections

from experiments.configs.study import base


def get_config() -> ml_collections.ConfigDict:
  c = base.get_config()
  c.name = "hinge_clamp"
  c.title = "two-stage, paper hinge with clamp, Adam"
  c.train.loss = "hinge"
  c.train.clamp = True
  return c
