"""avdigits: spoken and handwritten digits learned together in JAX/Flax.

The library (reusable pieces; imports only from each other, never from a
task):
  errors, settings   one-line errors; config sections -> settings dataclasses
  data/              corpora, splits and sources
  features           log-mel features (Kaldi-compatible; JAX and
                     python_speech_features backends)
  inputs/            what the models see: perturbation, augmentation,
                     corruption, speech training sets, prepared arrays
  models/            the paper's convnets and aligner, factories, sequence
                     encoders
  losses, matchmap   pure losses; matchmap pooling and InfoNCE
  evaluate, summary  annotation/retrieval/recall on scores; means and CIs
  training/          the one loop, checkpoints, metrics, devices, optimisers,
                     workdirs, the classifier/aligner/joint trainers
  validation         config checks every task shares

The tasks (each imports the library, never another task):
  digits/            the paper's two-stage model, its report and draws
  strings/           spoken numbers <-> written numbers
  study/             many experiments over the same pieces
"""

__version__ = "0.1.0"
