r"""Unseen voices, ablation: ensemble of 3 seeds (mean scores and softmaxes).

The `loso` experiment (every FSDD speaker held out in turn), each seed's
run an ensemble of three models (its own seed and two more, see
`model.members` in avdigits/study/pipeline.py).

  python -m experiments.study --suite=voices --workdir=/tmp/voices \
      --data_dir=DATA --only=loso,loso_ensemble
"""

import ml_collections

from experiments.configs.study import loso


def get_config() -> ml_collections.ConfigDict:
  c = loso.get_config()
  c.name = "loso_ensemble"
  c.title = "ensemble of 3 seeds (mean scores and softmaxes)"
  c.model.members = 3
  return c
