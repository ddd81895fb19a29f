r"""The paper's setup, as faithful as the paper states it.

Image convnet: batch 64, 10 epochs, Adam 1e-4 (the TensorFlow tutorial the
paper builds on). Speech convnets: 1,500 iterations. Aligner: plain SGD,
learning rate 1e-5, Gaussian initialisation, 500,000 iterations of one image
against one utterance per speech class, clamped scores S = max(0, y.x).

  python -m experiments.reproduce --workdir=/tmp/paper \
      --config=experiments/configs/paper.py --data_dir=../shared/data
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "paper"
  c.seed = 0
  c.seeds = 1

  c.data = ml_collections.ConfigDict()
  c.data.images = "auto"          # auto | mnist | tfds | synthetic
  c.data.speech = "auto"          # auto | fsdd | tidigits | audiomnist | tfds
  #                                 | synthetic
  c.data.image_split = "auto"     # auto | official | stratified | all
  c.data.speech_split = "upstream"  # upstream | stratified | all |
  #                                   speakers:a,b | loso:name | loso
  #                                   (every speaker held out in turn)
  c.data.test_fraction = 0.2
  c.data.sample_rate = 8000
  c.data.tidigits_children = False
  c.data.synthetic_images_per_class = 200
  c.data.synthetic_speech_per_class = 40
  # Where synthetic training voices are cached ("": $AVDIGITS_CACHE_DIR,
  # else ~/.cache/avdigits).
  c.data.cache_dir = ""

  c.features = ml_collections.ConfigDict()
  c.features.backend = "jax"      # jax | python_speech_features
  c.features.num_frames = 100
  c.features.num_bins = 23
  c.features.cmn = False
  # Cut leading/trailing silence of every utterance before features.
  c.features.cvn = False          # per-utterance variance normalisation
  c.features.trim = False
  # Per-speaker mean/variance normalisation (transductive at test time: a
  # test speaker's statistics come from all of its test utterances).
  c.features.speaker_norm = False

  c.image = ml_collections.ConfigDict()
  c.image.batch_size = 64
  c.image.epochs = 10
  c.image.optimizer = "adam"
  c.image.learning_rate = 1e-4
  c.image.lr_schedule = "constant"
  c.image.conv_impl = "auto"
  c.image.weight_decay = 0.0
  c.image.dropout = 0.0
  c.image.augment = "none"        # none | shift | shift_mask
  c.image.max_shift = 0

  c.speech = ml_collections.ConfigDict()
  c.speech.hidden_sizes = (512, 1024)
  c.speech.batch_size = 64
  c.speech.steps = 1500
  c.speech.steps_per_chunk = 100
  c.speech.optimizer = "adam"
  c.speech.learning_rate = 1e-4
  c.speech.lr_schedule = "constant"
  c.speech.weight_decay = 0.0
  c.speech.dropout = 0.0
  c.speech.augment = "none"
  c.speech.max_shift = 0
  # Training-set additions for unseen voices (avdigits/speech_data.py):
  # speed-perturbed copies (e.g. (0.9, 1.1)), VTLP copies (mel filterbank
  # warped, e.g. (0.9, 1.1)), copies through random microphones and rooms,
  # eSpeak NG voices per class, or those voices alone.
  c.speech.speed_factors = ()
  c.speech.vtlp_factors = ()
  c.speech.channel_copies = 0
  c.speech.synthetic_voices = 0
  c.speech.synthetic_only = False

  c.align = ml_collections.ConfigDict()
  c.align.speech_hidden = 1024
  c.align.iterations = 500_000
  c.align.chunk = 50_000
  c.align.optimizer = "sgd"
  c.align.learning_rate = 1e-5
  c.align.lr_schedule = "constant"
  c.align.embed_dim = 512
  c.align.init_std = 0.01
  c.align.clamp = True
  c.align.margin = 1.0
  c.align.impl = "auto"           # auto | plain | fast (same SGD, faster)

  c.eval = ml_collections.ConfigDict()
  c.eval.trials = 100
  return c
