r"""Children's speech: train on TIDIGITS adults, test on its boys and girls
(runs only when <data_dir>/tidigits holds the children's part).

  python -m experiments.study --workdir=/tmp/study --data_dir=DATA \
      --only=children
"""

import ml_collections

from experiments.configs.study import base


def get_config() -> ml_collections.ConfigDict:
  c = base.get_config()
  c.name = "children"
  c.title = "two-stage, TIDIGITS adults -> children"
  c.data.speech = "tidigits"
  c.data.tidigits_children = True
  c.data.speech_splits = ("children",)
  return c
