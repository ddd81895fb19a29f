r"""Offline, no data at all: the default model on synthetic digits, sized to
train in about a minute on a 2-core CPU (fewer steps, the paper's 64 speech
convolution maps; font-rendered images, eSpeak NG speech; every report
labels them synthetic).

  python -m experiments.reproduce --workdir=/tmp/offline \
      --config=experiments/configs/offline.py
"""

import ml_collections

from experiments.configs import default


def get_config() -> ml_collections.ConfigDict:
  c = default.get_config()
  c.name = "offline"
  c.data.images = "synthetic"
  c.data.speech = "synthetic"
  c.data.speech_split = "stratified"
  c.data.synthetic_images_per_class = 150
  c.data.synthetic_speech_per_class = 30
  c.image.epochs = 6
  c.speech.steps = 300
  c.speech.features = 64
  c.speech.steps_per_chunk = 100
  c.align.steps = 40_000
  c.align.steps_per_chunk = 10_000
  c.align.learning_rate = 1e-4
  c.eval.trials = 50
  return c
