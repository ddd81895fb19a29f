r"""Shared settings of the study's experiments (not an experiment itself).

The study trains many models per seed, so its convnets are a lighter
version of the paper's (image conv widths 16/32 instead of 32/64, speech
embedding 512 instead of 1024; same layer types and kernels): that is what
lets five seeds of every experiment finish on a 2-core CPU in minutes.
Classifier pretraining is shared by every experiment that asks for the same
settings (keyed by a hash of them under <workdir>/pretrained/).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "base"
  c.title = "base settings"
  c.seeds = 5
  # Precision of every matrix product and convolution: "highest" (full
  # float32), or the faster "high" / "default" on accelerators (TF32,
  # bfloat16 passes); report.json's platform.matmul_precision records it.
  c.matmul_precision = "highest"
  # Each chunk of classifier steps as one compiled lax.scan: "auto" (on
  # GPU/TPU, where per-step host work dominates), "true" or "false" (steps
  # driven from Python: faster on CPU). Same batches and keys either way.
  c.scan_steps = "auto"

  c.data = ml_collections.ConfigDict()
  c.data.images = "auto"          # auto | mnist | tfds | synthetic
  c.data.speech = "auto"          # auto | fsdd | tidigits | audiomnist | ...
  c.data.image_split = "auto"
  c.data.test_fraction = 0.2
  c.data.sample_rate = 8000
  c.data.tidigits_children = False
  c.data.synthetic_images_per_class = 200
  c.data.synthetic_speech_per_class = 40
  c.data.cache_dir = ""           # synthetic voices cache ("": default)
  # Speech splits, each run separately: any --config.data.speech_split spec,
  # "loso:*" (every speaker in turn), "folds:K" (K speaker-disjoint folds)
  # or "children" (TIDIGITS: train on adults, test on boys and girls).
  c.data.speech_splits = ("upstream",)

  c.features = ml_collections.ConfigDict()
  c.features.num_frames = 100
  c.features.num_bins = 23
  c.features.cmn = True
  c.features.cvn = False          # per-utterance variance normalisation
  c.features.trim = False         # cut leading/trailing silence
  c.features.speaker_norm = False  # per-speaker CMVN (transductive on test)

  # Classifier pretraining (used by "pretrained_*" parts).
  c.image = ml_collections.ConfigDict()
  c.image.widths = (16, 32)
  c.image.kernel_size = 5
  c.image.hidden = 512
  c.image.batch_size = 64
  c.image.epochs = 5
  c.image.optimizer = "adam"
  c.image.learning_rate = 1e-3
  c.image.lr_schedule = "cosine"
  c.image.augment = "shift"
  c.image.max_shift = 2

  c.speech = ml_collections.ConfigDict()
  c.speech.hidden = 512
  c.speech.batch_size = 64
  c.speech.steps = 800
  c.speech.optimizer = "adam"
  c.speech.learning_rate = 1e-3
  c.speech.lr_schedule = "cosine"
  c.speech.augment = "shift_mask"
  c.speech.max_shift = 10
  # Extra noisy copies of the training utterances (white and babble noise at
  # random SNRs in [0, 20] dB) added to the speech training set.
  c.speech.noise_copies = 0
  c.speech.dropout = 0.0
  # Training-set additions for unseen voices (avdigits/inputs/speech_data.py).
  c.speech.speed_factors = ()
  c.speech.vtlp_factors = ()
  c.speech.channel_copies = 0
  c.speech.synthetic_voices = 0
  c.speech.synthetic_only = False
  # With several corpora: repeat the smaller corpora's utterances to the
  # largest one's count (avdigits/inputs/speech_data.py).
  c.speech.balance_corpora = False

  # Each convnet: pretrained_frozen | random_frozen (inputs are its fixed
  # activations) | pretrained_tuned | random_tuned (trained end to end).
  c.model = ml_collections.ConfigDict()
  c.model.image = "pretrained_frozen"
  c.model.speech = "pretrained_frozen"
  c.model.embed_dim = 512
  c.model.init_std = 0.01

  # Cross-modal training: "groups" (joint.train_joint, any optax optimiser)
  # or "paper_sgd" (align.train_alignment, one image per iteration; both
  # convnets frozen).
  c.train = ml_collections.ConfigDict()
  c.train.trainer = "groups"
  c.train.steps = 1000
  c.train.steps_per_chunk = 250
  c.train.groups = 6
  c.train.optimizer = "adam"
  c.train.learning_rate = 1e-3
  c.train.lr_schedule = "cosine"
  c.train.loss = "info_nce"       # hinge | symmetric_hinge | info_nce
  c.train.clamp = False
  c.train.margin = 1.0
  c.train.temperature = 0.1
  c.train.image_augment = "shift"
  c.train.image_max_shift = 2
  c.train.speech_augment = "shift_mask"
  c.train.speech_max_shift = 10

  c.eval = ml_collections.ConfigDict()
  c.eval.trials = 100
  c.eval.robustness = False
  c.eval.image_noise = (0.0, 0.25, 0.5, 0.75, 1.0)
  c.eval.occlusion = (0, 6, 10, 14)
  c.eval.snr_db = (40.0, 20.0, 10.0, 5.0, 0.0)
  return c
