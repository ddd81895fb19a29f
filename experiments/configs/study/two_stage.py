r"""Two-stage model: pretrained classifiers frozen, aligner trained with a
contrastive (InfoNCE) loss over groups, Adam with cosine decay.

  python -m experiments.study --workdir=/tmp/study --data_dir=DATA \
      --only=two_stage
"""

import ml_collections

from experiments.configs.study import base


def get_config() -> ml_collections.ConfigDict:
  c = base.get_config()
  c.name = "two_stage"
  c.title = "two-stage, InfoNCE, Adam"
  c.eval.robustness = True
  return c
