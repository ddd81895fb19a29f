r"""The paper's setup, as faithful as the paper states it.

Data: TIDIGITS at 20 kHz. Image convnet: TensorFlow's MNIST
convolutional.py schedule (which the paper's 8,593 iterations identify).
Speech convnets (N=512, 1024): Adam 1e-4, 1,500 iterations, the 3x4 pool
over time. Aligner: every parameter a zero-mean Gaussian, plain SGD,
learning rate 1e-5, 500,000 iterations of one image against one utterance
per speech class, clamped scores S = max(0, y.x). docs/paper.md ("The
paper config") says where each reading comes from.

  python -m experiments.reproduce --workdir=/tmp/paper \
      --config=experiments/configs/paper.py --data_dir=DATA
  # without TIDIGITS:
  python -m experiments.reproduce --workdir=/tmp/paper \
      --config=experiments/configs/paper.py --data_dir=DATA \
      --config.data.speech=fsdd --config.data.sample_rate=8000
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "paper"
  c.seed = 0
  c.seeds = 1
  # Precision of every matrix product and convolution: "highest" (full
  # float32), or the faster "high" / "default" on accelerators (TF32,
  # bfloat16 passes); report.json's platform.matmul_precision records it.
  c.matmul_precision = "highest"
  # Each chunk of classifier steps as one compiled lax.scan: "auto" (on
  # GPU/TPU, where per-step host work dominates), "true" or "false" (steps
  # driven from Python: faster on CPU). Same batches and keys either way.
  c.scan_steps = "auto"
  # Seeds trained together: each classifier stage of all seeds as one
  # vmapped program (each seed with its own batches and keys, results equal
  # to its own run to float tolerance): "auto" (on GPU/TPU), "true", "false".
  c.parallel_seeds = "auto"

  c.data = ml_collections.ConfigDict()
  c.data.images = "auto"          # auto | mnist | tfds | synthetic
  # The paper's corpus at its recorded rate (Kaldi's TIDIGITS recipe also
  # extracts at 20 kHz). Without TIDIGITS: --config.data.speech=fsdd
  # --config.data.sample_rate=8000 (FSDD's rate).
  c.data.speech = "tidigits"      # auto | fsdd | tidigits | audiomnist | tfds
  #                                 | synthetic
  c.data.image_split = "auto"     # auto | official | stratified | all
  c.data.speech_split = "upstream"  # upstream | stratified | all |
  #                                   speakers:a,b | loso:name | loso
  #                                   (every speaker held out in turn)
  c.data.test_fraction = 0.2
  # With the full official MNIST training set, its first 5,000 images are
  # held out as validation (TensorFlow's convolutional.py: 55,000 train).
  c.data.image_validation = 5000
  c.data.sample_rate = 20000
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
  # TensorFlow's models/image/mnist/convolutional.py, which the paper's
  # 8,593 iterations (10 x 55,000 // 64) identify: momentum 0.9, learning
  # rate 0.01 decayed by 0.95 per epoch (staircase), L2 5e-4 on the dense
  # layers' weights and biases, dropout 0.5, 10 epochs of batch 64.
  c.image.batch_size = 64
  c.image.epochs = 10
  c.image.optimizer = "momentum"
  c.image.learning_rate = 0.01
  c.image.lr_schedule = "epoch_staircase"
  c.image.lr_decay = 0.95
  c.image.l2_dense = 5e-4
  c.image.conv_impl = "auto"
  c.image.weight_decay = 0.0      # decoupled decay (adamw only)
  c.image.dropout = 0.5
  c.image.augment = "none"        # none | shift | shift_mask
  c.image.max_shift = 0

  c.speech = ml_collections.ConfigDict()
  c.speech.hidden_sizes = (512, 1024)
  c.speech.features = 64          # convolution maps (the paper's 64)
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
  c.speech.mixup = 0.0  # mixup's Beta(a, a) parameter a; 0 = off
  # The 3x4 pool: over time only, keeping the 64 maps ("time": any 2-D
  # convnet's pool on the 1-wide map the 5x23 filter leaves), or over 3
  # frames x 4 maps ("time_channel"); see models.SpeechNet.
  c.speech.pool = "time"
  # Training-set additions for unseen voices (avdigits/inputs/speech_data.py):
  # speed-perturbed copies (e.g. (0.9, 1.1)), VTLP copies (mel filterbank
  # warped, e.g. (0.9, 1.1)), copies through random microphones and rooms,
  # eSpeak NG voices per class, or those voices alone.
  c.speech.speed_factors = ()
  c.speech.vtlp_factors = ()
  c.speech.channel_copies = 0
  c.speech.synthetic_voices = 0
  c.speech.synthetic_only = False
  # With several corpora: repeat the smaller corpora's utterances to the
  # largest one's count (avdigits/inputs/speech_data.py).
  c.speech.balance_corpora = False

  c.align = ml_collections.ConfigDict()
  c.align.speech_hidden = 1024
  c.align.steps = 500_000
  c.align.steps_per_chunk = 50_000
  c.align.optimizer = "sgd"
  c.align.learning_rate = 1e-5
  c.align.lr_schedule = "constant"
  c.align.embed_dim = 512
  c.align.init_std = 0.01
  # Every parameter, biases included, a zero-mean Gaussian (the paper);
  # "gaussian_mirrored" takes the mirror of a draw whose mean matching-pair
  # score is negative (an equally likely draw); "zero_bias" starts the
  # biases at zero.
  c.align.init = "gaussian"
  c.align.clamp = True
  c.align.margin = 1.0
  c.align.impl = "auto"           # auto | plain | fast (same SGD, faster)

  c.eval = ml_collections.ConfigDict()
  c.eval.trials = 100
  return c
