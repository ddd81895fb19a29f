r"""The speech convnet's 3x4 pool read as a pool over time only (3 frames,
all 64 maps kept: the paper config's reading), against `two_stage`, whose
speech convnet pools over 3 frames x 4 maps (see models.SpeechNet).

  python -m experiments.study --suite=pool --workdir=/tmp/pool \
      --data_dir=DATA --readme=docs/paper.md
"""

import ml_collections

from experiments.configs.study import two_stage


def get_config() -> ml_collections.ConfigDict:
  c = two_stage.get_config()
  c.name = "pool_time"
  c.title = "two-stage, speech convnet pooling over time only"
  c.speech.pool = "time"
  c.eval.robustness = False
  return c
