r"""The paper's alignment exactly: hinge with S = max(0, y.x), SGD 1e-5
(50,000 iterations).

  python -m experiments.study --workdir=/tmp/study --data_dir=DATA \
      --only=paper_sgd_clamp
"""

import ml_collections

from experiments.configs.study import base


def get_config() -> ml_collections.ConfigDict:
  c = base.get_config()
  c.name = "paper_sgd_clamp"
  c.title = "two-stage, paper hinge with clamp, SGD 1e-5 (the paper)"
  c.train.trainer = "paper_sgd"
  c.train.loss = "hinge"
  c.train.clamp = True
  c.train.optimizer = "sgd"
  c.train.learning_rate = 1e-5
  c.train.lr_schedule = "constant"
  c.train.steps = 50_000
  c.train.steps_per_chunk = 50_000
  return c
