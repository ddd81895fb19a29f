r"""Nested selection of the default's speech recipe: the incumbent.

The default's speech convnet recipe (dropout 0.5, about twice the steps) on
the study's lighter two-stage model, on nested splits of both
speaker-independent protocols: for each FSDD speaker held out (`loso:*`)
and each fifth of the other corpora's people held out (`folds:5`), a
validation split of that outer split's own training people and training
images (`avdigits/study/pipeline.py::nested_splits`). Each `select_*`
config changes one thing; the selection table picks per outer split.

  python -m experiments.study --suite=select --workdir=/tmp/select \
      --data_dir=DATA --seeds=1 --readme=docs/voices.md
"""

import ml_collections

from experiments.configs.study import base


def get_config() -> ml_collections.ConfigDict:
  c = base.get_config()
  c.name = "select"
  c.title = "incumbent: speech dropout 0.5, 1,600 steps"
  c.data.speech_splits = ("nested:loso:*", "nested:folds:5")
  c.speech.dropout = 0.5
  c.speech.steps = 1600
  return c
