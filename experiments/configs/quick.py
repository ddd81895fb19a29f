r"""A smoke run that finishes in well under a minute on a 2-core CPU.

  python -m experiments.reproduce --workdir=/tmp/quick \
      --config=experiments/configs/quick.py --data_dir=DATA
"""

import ml_collections

from experiments.configs import default


def get_config() -> ml_collections.ConfigDict:
  c = default.get_config()
  c.name = "quick"
  c.data.synthetic_images_per_class = 30
  c.data.synthetic_speech_per_class = 12
  c.image.epochs = 1
  c.speech.steps = 60
  c.speech.features = 64  # the paper's, for speed
  c.speech.steps_per_chunk = 20
  c.align.steps = 20_000
  c.align.steps_per_chunk = 5_000
  c.align.learning_rate = 1e-4
  c.eval.trials = 20
  return c
