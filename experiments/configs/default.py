r"""The best speaker-independent configuration found so far (what
`reproduce` runs by default).

Differs from `paper.py` in: Adam 1e-3 with cosine decay for both convnets
(the image convnet without the paper's L2 term and dropout), random +-2
pixel translations of training images, random time shifts (+-10 frames)
and one time and one frequency mask per training spectrogram, per-utterance
mean normalisation of the filterbank, the speech convnet's 3x4 pool over 3
frames x 4 maps, an unclamped alignment score (see the note below) started
with zero biases, and, for unseen voices, dropout 0.5 after the speech
convnet's dense layers with 3,000 training steps instead of 1,500. Only the
aligner's speech convnet (N=1024) is trained. Everything else
(architectures, batch 64, 10 image epochs, SGD 1e-5 for 500,000 alignment
iterations) is the paper's.

How the speech changes were chosen (with a development script that is not
part of the project): five folds, one per FSDD speaker S in sorted order;
in fold S the speaker after S served as validation, the remaining three
trained, and S was not used. The choice compared the validation accuracy
averaged over the five folds. Each fold's validation speaker is another
fold's test speaker, so every speaker the leave-one-speaker-out figures
hold out was a validation speaker of this one pooled choice: the selection
is not nested in the outer folds, and the loso figures of the default are
not free of it. Mean validation accuracy of the
speech convnet (N=512, 1,500 steps unless stated) over the five folds:
76.4% as before, 78.1% with dropout 0.5, 79.4% with dropout 0.5 and 3,000
steps; speed perturbation
(75.8%), eSpeak voices mixed in (75.1%), per-speaker (76.1%) or
per-utterance variance normalisation (73.0%) and frequency/time warping of
spectrograms (76.0%) did not help there, so they stay off (each is a switch,
measured in docs/voices.md's ablation table).

  python -m experiments.reproduce --workdir=/tmp/avdigits --data_dir=DATA
"""

import ml_collections

from experiments.configs import paper


def get_config() -> ml_collections.ConfigDict:
  c = paper.get_config()
  c.name = "default"
  c.data.speech = "auto"          # every corpus present (see README)
  c.data.sample_rate = 8000
  c.features.cmn = True
  c.image.optimizer = "adam"
  c.image.learning_rate = 1e-3
  c.image.lr_schedule = "cosine"
  c.image.l2_dense = 0.0
  c.image.dropout = 0.0
  c.speech.learning_rate = 1e-3
  c.speech.lr_schedule = "cosine"
  c.image.augment = "shift"
  c.image.max_shift = 2
  c.speech.augment = "shift_mask"
  c.speech.max_shift = 10
  c.speech.dropout = 0.5
  c.speech.steps = 3000
  c.speech.hidden_sizes = (1024,)
  c.speech.pool = "time_channel"
  # The paper's clamp S = max(0, y.x) kills some initial draws outright and
  # one digit's scores in others (docs/paper.md: "the clamp over many draws");
  # without it the hinge trains from every draw.
  c.align.clamp = False
  c.align.init = "zero_bias"
  return c
