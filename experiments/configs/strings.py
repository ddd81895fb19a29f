r"""Digit strings: match a spoken number to an image of a handwritten one,
read it and find each digit's word, learned from pairs alone.

Spoken strings are 2-7 utterances of one speaker joined with pauses of
0-250 ms; number images are as many MNIST digits side by side
(`avdigits.strings.data`). A speech encoder and an image encoder keep a
sequence (one step per 40 ms, one per 4 columns); their matchmap, pooled
along the best left-to-right alignments of speech steps to image columns
and of columns to steps ("ordered_both"), scores a pair, and a symmetric
InfoNCE loss over each batch of fresh training pairs (half of them a
one-digit change of the other half) trains both from random
initialisation. Training mixes lengths 1-4 (the single digits make the
start easy); evaluation covers lengths 2-7 on 1,000 fixed test strings
each, drawn with the data seed, so every training seed meets the same ones
(`avdigits.strings.evaluate`). docs/strings.md gives a seed's measured
time on a 2-core CPU (about 30 minutes while other runs shared it).

How the settings were chosen, exactly: the pooling ("ordered_both" over
"ordered" and the order-free ones) was first compared with a development
script that is not part of the project, on the upstream split's 4-digit
TEST strings (figures in the comment on `pooling`). Both the pooling and
the step count were then chosen again on development strings of the
training part only (`strings.dev`; docs/strings.md), by mean R@1 both ways
at 4 digits: "ordered_both" still leads (87.7% against 82.4% for "ordered",
85.6% for "ordered" scored with "ordered_both"; "ordered" reads better), and
5,000 steps (92.1%) beat 3,500 (87.7%) and 2,000 (84.8%), so the config
trains 5,000 (was 3,500). 5,000 is the largest count tried, and the dev
figure was still rising there: training time grows with the count, and a
seed is meant to finish within 15 minutes on a 2-core CPU. The reader's
settings (`reader_*`) are chosen per run, in the pipeline, on dev strings
built from training utterances and images only, and recorded in
report.json.

  python -m experiments.reproduce --workdir=/tmp/strings \
      --config=experiments/configs/strings.py --data_dir=DATA
  # every speaker held out in turn:
  python -m experiments.reproduce --workdir=/tmp/strings_loso \
      --config=experiments/configs/strings.py --data_dir=DATA \
      --config.data.speech_split=loso
"""

import ml_collections

from experiments.configs import default


def get_config() -> ml_collections.ConfigDict:
  base = default.get_config()
  c = ml_collections.ConfigDict()
  c.name = "strings"
  c.task = "strings"
  c.seed = 0
  c.seeds = 1
  c.matmul_precision = "highest"
  c.data = base.data
  # One speaker says every digit of a string: Speech Commands' people have
  # one or two clips each, so the default's "auto" (every corpus present)
  # would fail; FSDD's speakers have 50 per digit. Another corpus with
  # whole speakers: --config.data.speech=tidigits (or audiomnist).
  c.data.speech = "fsdd"
  c.features = base.features
  # Each utterance's leading and trailing silence is cut before it joins a
  # string; the string's own pauses come from the builder.
  c.features.trim = True

  c.strings = ml_collections.ConfigDict()
  # Model: 1-D convolutions over frames (two of stride 2), 3x3
  # convolutions over the image (two 2x2 pools), `dim`-d unit steps.
  c.strings.speech_widths = (64, 128, 128)
  c.strings.image_widths = (16, 32, 64)
  c.strings.kernel_size = 5
  c.strings.dim = 128
  c.strings.norm = False           # layer normalisation after each conv
  # Each string spoken by one speaker (false: words from any speakers, for
  # sources whose every utterance has its own voice, e.g. synthetic).
  c.strings.one_speaker = True
  # Training: fresh pairs each step, lengths drawn from train_lengths.
  c.strings.train_lengths = (1, 2, 3, 4)
  c.strings.batch_size = 32
  c.strings.steps = 5000           # chosen on dev strings (docstring)
  c.strings.steps_per_chunk = 250
  c.strings.optimizer = "adam"
  c.strings.learning_rate = 2e-3
  c.strings.lr_schedule = "cosine"
  # Half of each batch repeats the other half's digit strings with one
  # digit changed (new utterances and images): every digit must count.
  c.strings.siblings = True
  # "ordered": speech steps matched to image columns left to right (the
  # order-free ones cannot tell 12 from 21: with a development script that
  # is not part of the project, 1,500 steps, upstream split, 4-digit TEST
  # strings, i.e. chosen on test data, speech->image R@1 was 19.0% with
  # "misa" and 84.8% with
  # "ordered"; the same model scored with "ordered_both" instead of
  # "ordered" at test time went from 89.9% / 74.2% to 87.7% / 87.0%
  # speech->image / image->speech); "ordered_both" averages it
  # with the image side's twin, so that image->speech retrieval is not at
  # the mercy of each utterance's length and pauses.
  c.strings.pooling = "ordered_both"  # ordered_both | ordered | misa |
  #                                     sima | both | sisa
  # The pooling that scores test pairs for retrieval; "" = `pooling`. A
  # model trained with "ordered" can be scored with "ordered_both".
  c.strings.eval_pooling = ""
  c.strings.temperature = 0.1
  # Evaluation. test_speech: "built" (strings joined from the test
  # utterances) or "connected" (TIDIGITS' connected-digit recordings of the
  # test speakers; no word boundaries, so no localisation).
  c.strings.test_speech = "built"
  # true: train on 80% of the split's training part and score the strings
  # of the other 20% (a development split: training images per class, and
  # utterances per speaker and class, or whole training speakers when the
  # split holds its test speakers out), to choose settings; the split's
  # test part is never read. report.json's data says "development": true.
  c.strings.dev = False
  c.strings.test_lengths = (2, 3, 4, 5, 6, 7)
  c.strings.test_strings = 1000
  # Reading: each speech step scored against the ten digits and the blank
  # (mean over reader_images canvases of training images), then aligned
  # left to right to blank and word segments; a word of d steps is paid
  # word_bonus + duration_weight * log p(d), p the training utterances'
  # lengths (words longer than the longest, or shorter than min_steps,
  # are not read). The setting with the best string accuracy on
  # reader_dev_strings strings per test length, built from training
  # utterances and images only, is chosen per run and recorded in
  # report.json ("reader", with every setting's dev figures).
  c.strings.reader_images = 5
  c.strings.reader_min_steps = (1, 3)
  c.strings.reader_duration_weight = (0.0, 0.25, 0.5, 1.0, 2.0)
  c.strings.reader_word_bonus = (-3.0, -2.0, -1.0, -0.5, 0.0, 1.0)
  c.strings.reader_dev_strings = 100
  return c
