r"""Training with augmentation for robustness: pixel noise and occluding
squares on training images, speed/pitch warping and two noisy copies (white
and babble noise at random SNRs) of every training utterance; then the
two-stage model. Evaluated under every corruption.

  python -m experiments.study --workdir=/tmp/study --data_dir=DATA \
      --only=robust
"""

import ml_collections

from experiments.configs.study import base


def get_config() -> ml_collections.ConfigDict:
  c = base.get_config()
  c.name = "robust"
  c.title = "two-stage, noise-augmented training"
  c.image.augment = "shift_noise"
  c.speech.augment = "warp"
  c.speech.noise_copies = 2
  c.train.image_augment = "shift_noise"
  c.train.speech_augment = "warp"
  c.eval.robustness = True
  return c
