r"""The paper's optimiser without the clamp: plain SGD 1e-5, one image against
one utterance of every class per iteration (50,000 iterations, a tenth of
the paper's 500,000, to fit the study's time budget).

  python -m experiments.study --workdir=/tmp/study --data_dir=DATA \
      --only=paper_sgd
"""

import ml_collections

from experiments.configs.study import base


def get_config() -> ml_collections.ConfigDict:
  c = base.get_config()
  c.name = "paper_sgd"
  c.title = "two-stage, paper hinge (no clamp), SGD 1e-5"
  c.train.trainer = "paper_sgd"
  c.train.loss = "hinge"
  c.train.optimizer = "sgd"
  c.train.learning_rate = 1e-5
  c.train.lr_schedule = "constant"
  c.train.steps = 50_000
  c.train.steps_per_chunk = 50_000
  return c
