r"""The best speaker-independent configuration found so far (what
`reproduce` runs by default).

Differs from `paper.py` in: Adam 1e-3 with cosine decay for both convnets
(the image convnet without the paper's L2 term and dropout), random +-2
pixel translations of training images, random time shifts (+-10 frames)
and one time and one frequency mask per training spectrogram, per-utterance
mean normalisation of the filterbank, the speech convnet's 3x4 pool over 3
frames x 4 maps, an unclamped alignment score (see the note below) started
with zero biases, and, for unseen voices, dropout 0.5 after the speech
convnet's dense layers with 3,000 training steps instead of 1,500, and
128 convolution maps in the speech convnet instead of 64. Only the
aligner's speech convnet (N=1024) is trained. Everything else (the layer
types, batch 64, 10 image epochs, SGD 1e-5 for 500,000 alignment
iterations) is the paper's.

With several speech corpora (FSDD and Speech Commands), each smaller
corpus's training utterances are repeated until it has as many as the
largest (`speech.balance_corpora`), so the speech convnet and the aligner
meet Speech Commands' many people as often as FSDD's five.

How it was chosen: by nested selection (`python -m experiments.study
--suite=select --workdir=/tmp/select --data_dir=DATA --seeds=1`; table and
caveats in docs/voices.md, "Nested selection"). For each outer split of
both speaker-independent protocols (every FSDD speaker held out, every
fifth of the Speech Commands people held out), candidates were scored on
a validation part of that split's own training people and training images
(R@1 speech -> image, averaged over the two corpora), on the study's
lighter two-stage model (seed 0). Of five candidates, balancing the
corpora together with a larger speech encoder (128 maps, 1,024 units; the
default already had the 1,024) was chosen in 5 of the 10 outer splits, the
larger encoder alone in 3, balancing alone in 2, the previous default
(dropout 0.5 with longer training, below) and two time and two frequency
masks in none. The candidate chosen in the most outer splits is the
default. No test person's figure took part in the choice.

Before Speech Commands, dropout 0.5 and 3,000 steps were chosen on FSDD
alone, not nested: five folds, one per FSDD speaker S; in fold S the
speaker after S validated, three trained and S was not used, and the
choice compared the five-fold mean, so each loso test speaker had been a
validation speaker of that one choice (docs/voices.md). Mean validation
accuracy of the speech convnet (N=512, 1,500 steps unless stated): 76.4%
as before, 78.1% with dropout 0.5, 79.4% with dropout 0.5 and 3,000 steps;
speed perturbation (75.8%), eSpeak voices mixed in (75.1%), per-speaker
(76.1%) or per-utterance variance normalisation (73.0%) and
frequency/time warping of spectrograms (76.0%) did not help there, so they
stay off (each is a switch, measured in docs/voices.md's ablation table).

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
  # Both chosen together by the nested selection (see above).
  c.speech.features = 128
  c.speech.balance_corpora = True
  # The paper's clamp S = max(0, y.x) kills some initial draws outright and
  # one digit's scores in others (docs/paper.md: "the clamp over many draws");
  # without it the hinge trains from every draw.
  c.align.clamp = False
  c.align.init = "zero_bias"
  return c
