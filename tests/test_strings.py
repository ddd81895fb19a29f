"""Digit strings: building them, the matchmap and its loss against loop
references, reading and localisation on hand-made matchmaps, the TIDIGITS
connected-digit loader, config checks and an end-to-end run."""

import itertools
import json
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from avdigits import features, matchmap
from avdigits.data import spoken
from avdigits.data.types import ImageSet, SpeechSet
from avdigits.errors import ConfigError, DataError
from avdigits.inputs import prepare
from avdigits.strings import data as S
from avdigits.strings import evaluate as strings_eval
from avdigits.strings import features as strings_features
from avdigits.strings import pipeline as strings_pipeline
from avdigits.strings import validation
from experiments.configs import strings as strings_config
from tests.conftest import entry_point, requires_real_data
from tests.test_spoken import _sphere, _wav

RATE = 8000


def _speech(speakers=("ann", "bob"), per_digit=3, skip=()):
  """Utterances whose samples tag them: utterance i is a constant i + 1
  (scaled) of a length that varies, so pieces can be found again."""
  waves, labels, who, ids = [], [], [], []
  for speaker in speakers:
    for digit in range(10):
      if (speaker, digit) in skip:
        continue
      for _ in range(per_digit):
        i = len(waves)
        waves.append(np.full(800 + 40 * (i % 7), (i + 1) / 1000,
                             np.float32))
        labels.append(digit)
        who.append(speaker)
        ids.append(f"{speaker}_{digit}_{i}")
  return SpeechSet(waves, RATE, np.array(labels, np.int32), np.array(who),
                   np.full(len(labels), ""), np.array(ids), 10, "test-speech")


def _images(per_digit=2, skip=()):
  rng = np.random.default_rng(0)
  images, labels = [], []
  for digit in range(10):
    if digit in skip:
      continue
    for _ in range(per_digit):
      image = np.zeros((28, 28), np.uint8)
      width = int(rng.integers(6, 16))
      left = int(rng.integers(2, 28 - width - 2))
      image[6:22, left:left + width] = 50 + 20 * digit
      images.append(image)
      labels.append(digit)
  return ImageSet(np.stack(images), np.array(labels, np.int32),
                  np.full(len(labels), ""), "test-images")


def _pools(length=4, **kwargs):
  speech, images = _speech(**kwargs), _images()
  return S.Pools.build(speech, np.arange(len(speech)), images,
                       np.arange(len(images)), length=length, what="test")


# ------------------------------------------------------------ building


def test_join_words_keeps_each_word_and_bounded_pauses():
  rng = np.random.default_rng(1)
  words = [np.full(n, v, np.float32) for n, v in ((800, .3), (500, .5),
                                                  (640, .7))]
  wave, spans = S.join_words(words, RATE, rng)
  assert spans.shape == (3, 2)
  for word, (start, stop) in zip(words, spans, strict=True):
    np.testing.assert_array_equal(wave[start:stop], word)
  pauses = spans[1:, 0] - spans[:-1, 1]
  assert (pauses >= 0).all() and (pauses <= 0.25 * RATE).all()
  assert spans[0, 0] == 0 and spans[-1, 1] == len(wave)
  # Pauses hold the recordings' own noise floor, not digital silence.
  gap = wave[spans[0, 1]:spans[1, 0]]
  assert len(gap) > 500 and np.std(gap) == pytest.approx(0.3, rel=0.15)


def test_noise_floor_is_the_quietest_20_ms():
  wave = np.concatenate([np.full(160, 0.5), np.full(160, 0.01),
                         np.full(160, 0.2)]).astype(np.float32)
  assert S.noise_floor([wave], RATE) == pytest.approx(0.01)


def test_compose_number_boxes_hold_each_digit():
  images = _images()
  rng = np.random.default_rng(3)
  picks = [0, 5, 9, 13]
  canvas, boxes = S.compose_number([images.images[i] for i in picks], rng)
  assert canvas.shape[0] == 28 and canvas.dtype == np.uint8
  assert (boxes[:, 1] > boxes[:, 0]).all()
  assert (boxes[1:, 0] > boxes[:-1, 0]).all()          # left to right
  assert (boxes[1:, 0] - boxes[:-1, 1] >= S.GAP_RANGE[0]).all()
  assert boxes[0, 0] >= S.MARGIN_RANGE[0]
  assert canvas.shape[1] - boxes[-1, 1] >= S.MARGIN_RANGE[0]
  for i, (left, right) in zip(picks, boxes, strict=True):
    ink_left, ink_right = S.ink_columns(images.images[i])
    assert right - left == ink_right - ink_left
    # The digit's brightness is in its box (overlaps keep the brighter).
    assert canvas[:, left:right].max() >= images.images[i].max()
  assert not canvas[:, :boxes[0, 0]].any()
  assert not canvas[:, boxes[-1, 1]:].any()


def test_compose_number_with_a_fixed_gap_leaves_digits_in_place():
  images = _images()
  picks = [images.images[i] for i in (0, 2, 4)]
  canvas, boxes = S.compose_number(picks, np.random.default_rng(0), gap=6)
  np.testing.assert_array_equal(boxes[1:, 0] - boxes[:-1, 1], [6, 6])
  for image, (left, right) in zip(picks, boxes, strict=True):
    ink_left, ink_right = S.ink_columns(image)
    np.testing.assert_array_equal(canvas[:, left:right],
                                  image[:, ink_left:ink_right])


@pytest.mark.parametrize("length", [1, 2, 4, 7])
def test_draw_strings_spell_their_digits_in_one_voice(length):
  pools = _pools(length=max(length, 1), per_digit=3)
  speech = pools.speech
  out = S.draw_strings(pools, length, 25, np.random.default_rng(5))
  assert len(out) == 25 and out.digits.shape == (25, length)
  assert out.digits.min() >= 0 and out.digits.max() <= 9
  for k in range(len(out)):
    ids = out.utterance_ids[k]
    spoken_ids, image_ids = ids[:length], ids[length:]
    utterances = [int(np.flatnonzero(speech.utterance_ids == u)[0])
                  for u in spoken_ids]
    # Each word is the utterance of its digit, by the string's speaker.
    assert [int(speech.labels[u]) for u in utterances] == out.digits[
        k].tolist()
    assert {str(speech.speakers[u]) for u in utterances} == {
        str(out.speakers[k])}
    for u, (start, stop) in zip(utterances, out.words[k], strict=True):
      np.testing.assert_array_equal(out.waveforms[k][start:stop],
                                    speech.waveforms[u])
    assert len(set(utterances)) == length  # distinct where there are enough
    digits = [int(pools.images.labels[int(i.split(":")[1])])
              for i in image_ids]
    assert digits == out.digits[k].tolist()
    assert out.boxes[k].shape == (length, 2)


def test_draw_strings_is_deterministic():
  pools = _pools()
  a = S.draw_strings(pools, 4, 10, np.random.default_rng(7))
  b = S.draw_strings(pools, 4, 10, np.random.default_rng(7))
  c = S.draw_strings(pools, 4, 10, np.random.default_rng(8))
  np.testing.assert_array_equal(a.digits, b.digits)
  for x, y in zip(a.waveforms + a.images, b.waveforms + b.images,
                  strict=True):
    np.testing.assert_array_equal(x, y)
  assert a.utterance_ids == b.utterance_ids
  assert a.utterance_ids != c.utterance_ids


def test_training_batches_are_a_function_of_seed_and_step():
  pools = _pools()
  a = S.training_batch(pools, (2, 3), 6, seed=1, step=4)
  b = S.training_batch(pools, (2, 3), 6, seed=1, step=4)
  assert a.utterance_ids == b.utterance_ids
  assert a.utterance_ids != S.training_batch(pools, (2, 3), 6, seed=1,
                                             step=5).utterance_ids
  lengths = {S.training_batch(pools, (2, 3), 2, 0, s).digits.shape[1]
             for s in range(20)}
  assert lengths == {2, 3}


def test_a_missing_class_or_too_few_utterances_is_a_clear_error():
  speech, images = _speech(skip={("bob", 7)}), _images()
  with pytest.raises(DataError, match="speaker bob has no utterance of "
                     "seven"):
    S.Pools.build(speech, np.arange(len(speech)), images,
                  np.arange(len(images)), length=2, what="test")
  # Without one speaker per string, bob's missing seven is ann's to give.
  S.Pools.build(speech, np.arange(len(speech)), images,
                np.arange(len(images)), length=2, what="test",
                one_speaker=False)
  speech = _speech(per_digit=1)
  few = np.flatnonzero((speech.speakers == "ann") | (speech.labels < 2))
  with pytest.raises(DataError, match="speaker bob has 2 utterance"):
    S.Pools.build(speech, few, images, np.arange(len(images)), length=4,
                  what="test")
  images = _images(skip={3})
  with pytest.raises(DataError, match=r"no image of digit\(s\) 3"):
    S.Pools.build(_speech(), np.arange(60), images, np.arange(len(images)),
                  length=2, what="test")
  with pytest.raises(DataError, match="string length"):
    S.check_length(13)


# ------------------------------------------------------------ features


def test_word_and_box_steps_cover_their_words_and_digits():
  pools = _pools()
  strings = S.draw_strings(pools, 4, 6, np.random.default_rng(2))
  cfg = ml_collections.ConfigDict(dict(num_bins=23, cmn=True))
  arrays = strings_features.to_arrays(strings, cfg)
  n, t, _ = arrays.speech.shape
  assert t % strings_features.FRAME_MULTIPLE == 0
  assert arrays.images.shape[2] % strings_features.COLUMN_MULTIPLE == 0
  shift, window = RATE // 100, RATE * 25 // 1000
  for k in range(n):
    valid = np.flatnonzero(arrays.speech_mask[k])
    assert valid[0] == arrays.frame_offset[k]
    assert len(valid) == features.num_kaldi_frames(
        len(strings.waveforms[k]), RATE)
    for (s0, s1), (w0, w1) in zip(arrays.word_steps[k], strings.words[k],
                                  strict=True):
      for step in range(t // 4):
        centre = ((step * 4 + 1.5 - arrays.frame_offset[k]) * shift
                  + window / 2)
        assert (s0 <= step < s1) == (w0 <= centre < w1)
    for (b0, b1), (c0, c1) in zip(arrays.box_steps[k], strings.boxes[k],
                                  strict=True):
      assert b0 * 4 <= c0 < b0 * 4 + 4 and (b1 - 1) * 4 < c1 <= b1 * 4
    assert arrays.image_mask[k].sum() == strings.images[k].shape[1]


# ------------------------------------------------------------ matchmaps


def _loop_scores(speech, speech_mask, images, image_mask, pooling):
  """The pooled scores one pair and one step at a time."""
  out = []
  for b in range(speech.shape[0]):
    row = []
    for c in range(images.shape[0]):
      ts = [t for t in range(speech.shape[1]) if speech_mask[b, t]]
      ws = [w for w in range(images.shape[1]) if image_mask[c, w]]
      m = {(t, w): jnp.dot(speech[b, t], images[c, w]) for t in ts
           for w in ws}
      misa = sum(max(m[t, w] for w in ws) for t in ts) / len(ts)
      sima = sum(max(m[t, w] for t in ts) for w in ws) / len(ws)
      sisa = sum(m.values()) / len(m)
      # Every left-to-right choice of one column per step.
      ordered = max(sum(m[t, w] for t, w in zip(ts, path, strict=True))
                    for path in itertools.combinations_with_replacement(
                        ws, len(ts))) / len(ts)
      image_side = max(sum(m[t, w] for t, w in zip(path, ws, strict=True))
                       for path in itertools.combinations_with_replacement(
                           ts, len(ws))) / len(ws)
      row.append({"misa": misa, "sima": sima, "both": (misa + sima) / 2,
                  "sisa": sisa, "ordered": ordered,
                  "ordered_both": (ordered + image_side) / 2}[pooling])
    out.append(jnp.stack(row))
  return jnp.stack(out)


def _random_pairs(seed=0, b=3, t=5, w=4, d=3):
  rng = np.random.default_rng(seed)
  speech = rng.normal(size=(b, t, d)).astype(np.float32)
  images = rng.normal(size=(b, w, d)).astype(np.float32)
  speech_mask = np.arange(t)[None] < rng.integers(2, t + 1, b)[:, None]
  image_mask = np.arange(w)[None] < rng.integers(1, w + 1, b)[:, None]
  return speech, speech_mask, images, image_mask


@pytest.mark.parametrize("pooling", matchmap.POOLINGS)
def test_pooled_scores_and_gradients_equal_a_loop(pooling):
  speech, speech_mask, images, image_mask = _random_pairs()
  got = matchmap.scores(speech, speech_mask, images, image_mask, pooling)
  want = _loop_scores(speech, speech_mask, images, image_mask, pooling)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  weights = np.random.default_rng(1).normal(size=got.shape)

  def total(fn):
    return lambda s, i: jnp.sum(weights * fn(s, speech_mask, i, image_mask,
                                             pooling))

  grads = jax.grad(total(matchmap.scores), argnums=(0, 1))(speech, images)
  want = jax.grad(total(_loop_scores), argnums=(0, 1))(speech, images)
  for g, w in zip(grads, want, strict=True):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
  # Padded steps get no gradient.
  assert not np.asarray(grads[0])[~speech_mask].any()
  assert not np.asarray(grads[1])[~image_mask].any()


def _loop_loss(speech, speech_mask, images, image_mask, digits, pooling,
               temperature):
  scores = _loop_scores(speech, speech_mask, images, image_mask, pooling)
  n = len(digits)
  out = []
  for b in range(n):
    cost = 0.0
    for matrix in (scores, scores.T):
      logits = matrix[b] / temperature
      positive = [c for c in range(n) if (digits[b] == digits[c]).all()]
      cost += (jnp.log(sum(jnp.exp(x) for x in logits))
               - jnp.log(sum(jnp.exp(logits[c]) for c in positive)))
    out.append(cost / 2)
  return jnp.stack(out)


def test_contrastive_loss_and_gradients_equal_a_loop():
  speech, speech_mask, images, image_mask = _random_pairs(seed=3, b=4)
  digits = np.array([[1, 2], [3, 4], [1, 2], [5, 6]])  # rows 0, 2 agree

  def loss(fn):
    return lambda s, i: fn(s, speech_mask, i, image_mask, digits, **{
        "pooling": "both", "temperature": 0.5}).sum()

  got = matchmap.contrastive_loss(speech, speech_mask, images, image_mask,
                                  digits, pooling="both", temperature=0.5)
  want = _loop_loss(speech, speech_mask, images, image_mask, digits, "both",
                    0.5)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  for g, w in zip(jax.grad(loss(matchmap.contrastive_loss), (0, 1))(
      speech, images), jax.grad(loss(_loop_loss), (0, 1))(speech, images),
                  strict=True):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


def test_ordered_pooling_tells_a_string_from_its_reversal():
  one_hot = np.eye(3, dtype=np.float32)
  speech = one_hot[[0, 0, 2, 1, 1]][None]          # says 0, (pause), 1
  images = np.stack([one_hot[[0, 2, 1]], one_hot[[1, 2, 0]]])  # 01 and 10
  masks = np.ones((1, 5), bool), np.ones((2, 3), bool)
  ordered = matchmap.scores(speech, masks[0], images, masks[1], "ordered")
  misa = matchmap.scores(speech, masks[0], images, masks[1], "misa")
  np.testing.assert_allclose(ordered, [[1.0, 0.4]])  # two of five steps
  np.testing.assert_allclose(misa, [[1.0, 1.0]])


@pytest.mark.parametrize("pooling", ["ordered_both", "ordered", "misa"])
def test_blocked_exact_scores_equal_per_pair_scores(pooling):
  # 7 spoken strings x 8 images in 3 x 3 blocks (padding on both sides).
  rng = np.random.default_rng(4)
  speech = rng.normal(size=(7, 9, 5)).astype(np.float32)
  images = rng.normal(size=(8, 6, 5)).astype(np.float32)
  speech_mask = np.arange(9)[None] < rng.integers(2, 10, 7)[:, None]
  image_mask = np.arange(6)[None] < rng.integers(1, 7, 8)[:, None]
  got = matchmap.all_scores(speech, speech_mask, images, image_mask,
                            pooling, block=3)
  want = np.array([[float(matchmap.scores(
      speech[i:i + 1], speech_mask[i:i + 1], images[j:j + 1],
      image_mask[j:j + 1], pooling)[0, 0]) for j in range(8)]
                   for i in range(7)])
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  oracle = _loop_scores(speech[:3], speech_mask[:3], images[:3],
                        image_mask[:3], pooling)
  np.testing.assert_allclose(got[:3, :3], oracle, rtol=1e-5, atol=1e-6)
  # Exact recall is the same from both (square: pair i is row i, column i).
  digits = rng.integers(0, 3, (7, 2))
  square = np.ix_(range(7), range(7))
  assert strings_eval.recall(got[square], digits) == strings_eval.recall(
      want[square], digits)


def test_same_strings_marks_equal_digit_strings():
  digits = np.array([[1, 2], [2, 1], [1, 2]])
  np.testing.assert_array_equal(matchmap.same_strings(digits, digits), [
      [True, False, True], [False, True, False], [True, False, True]])


def test_an_unknown_pooling_is_a_config_error():
  with pytest.raises(ConfigError, match="strings.pooling"):
    matchmap.scores(*_random_pairs(), "mean")


# ------------------------------------------------ reading, localisation


def test_class_scores_take_each_box_and_the_blank_columns():
  maps = np.array([[1., 5., 2., 0., 9., 3.]])   # one step, six columns
  boxes = np.array([[1, 3], [4, 5]])            # digits over 1-2 and 4
  mask = np.array([True] * 5 + [False])         # column 5 is padding
  np.testing.assert_array_equal(matchmap.class_scores(maps, boxes, mask),
                                [[5., 9., 1.]])  # blank: columns 0, 3


# A hand-built reader: speech steps are one-hot in 11 dimensions (digit d
# or 10, the blank); two reading canvases of 21 columns hold digit d at
# column 2d + 1 (e_d, at half strength on the second canvas) and the blank
# (e_10) at even columns. A step saying d scores 0.75 for d (the canvases'
# mean) and 0 for the rest; a pause step scores 1 for the blank.
def _reader_prototypes():
  canvas = np.zeros((21, 11), np.float32)
  canvas[0::2, 10] = 1.0
  canvas[np.arange(10) * 2 + 1, np.arange(10)] = 1.0
  weaker = canvas.copy()
  weaker[np.arange(10) * 2 + 1] *= 0.5
  boxes = np.stack([np.arange(10) * 2 + 1, np.arange(10) * 2 + 2], -1)
  return strings_eval.Prototypes(np.stack([canvas, weaker]),
                                 np.ones((2, 21), bool),
                                 np.stack([boxes, boxes]))


def _said(*runs, pad=3):
  """Speech [1, T, 11] and mask of runs (label, steps), padded both ends
  with masked steps that say 3."""
  labels = [3] * pad + [d for d, n in runs for _ in range(n)] + [3] * pad
  speech = np.eye(11, dtype=np.float32)[labels][None]
  mask = np.zeros((1, len(labels)), bool)
  mask[0, pad:len(labels) - pad] = True
  return speech, mask


def _read(runs, prior):
  speech, mask = _said(*runs)
  scores = strings_eval.step_class_scores(speech, _reader_prototypes())
  return matchmap.read_segments(scores, mask, np.asarray(prior))[0]


B, P = 10, 1          # blank; a flat prior of -0.5 over words of 1..20 steps
FLAT = [-0.5] * 20


@pytest.mark.parametrize("runs, prior, want", [
    # "1100": the ones said without a pause (16 steps), longer than a word
    # may be (10), so two words; the zeros with a pause between.
    ([(B, 2), (1, 8), (1, 8), (B, 3), (0, 6), (B, 2), (0, 6), (B, 2)],
     [-np.inf] * 2 + [-0.5] * 8, [1, 1, 0, 0]),
    # The same 16 steps with words up to 20 long and a flat prior: one word;
    # a prior peaked at 8 steps: two.
    ([(1, 16)], FLAT, [1]),
    ([(1, 16)], [-5.0] * 7 + [0.0] + [-5.0] * 12, [1, 1]),
    # Insertions: a one-step blip of 5 in a pause is a word when words of
    # one step are allowed, not when they must be two long.
    ([(B, 3), (5, 1), (B, 3), (7, 6), (B, 2)], FLAT, [5, 7]),
    ([(B, 3), (5, 1), (B, 3), (7, 6), (B, 2)], [-np.inf] + FLAT[1:], [7]),
    # Deletions: a word whose middle step looks like a pause stays one word
    # under a strong per-word cost, and is split under a weak one.
    ([(4, 4), (B, 1), (4, 3)], [-2.0] * 20, [4]),
    ([(4, 4), (B, 1), (4, 3)], [-0.1] * 20, [4, 4]),
    ([(B, 5)], FLAT, []),
])
def test_reader_decodes_hand_built_embeddings(runs, prior, want):
  assert _read(runs, prior) == want


def test_reader_reads_a_batch_with_different_lengths_and_padding():
  first, mask_a = _said((2, 5), (B, 2), (9, 5), pad=2)
  second, mask_b = _said((6, 4), pad=6)
  speech = np.concatenate([first, second])
  mask = np.concatenate([mask_a, mask_b])
  scores = strings_eval.step_class_scores(speech, _reader_prototypes())
  np.testing.assert_allclose(scores[0, 2], [0, 0, .75] + [0] * 8)
  np.testing.assert_allclose(scores[0, 7], [0] * 10 + [1])
  assert matchmap.read_segments(scores, mask, FLAT) == [[2, 9], [6]]


def test_reader_settings_are_chosen_on_dev_strings():
  # Words last 8 steps; "11" is said without a pause and "7" follows a
  # one-step blip of 5: only the duration prior reads both right.
  log_durations = np.full(20, -10.0)
  log_durations[7] = 0.0
  dev = []
  for runs, digits in (([(1, 8), (1, 8)], [1, 1]),
                       ([(B, 2), (5, 1), (B, 2), (7, 8)], [7])):
    speech, mask = _said(*runs)
    dev.append((strings_eval.step_class_scores(speech, _reader_prototypes()),
                mask, np.array([digits])))
  settings = strings_eval.EvalSettings(
      reader_min_steps=(1,), reader_duration_weight=(0.0, 1.0),
      reader_word_bonus=(-0.5,))
  choice = strings_eval.choose_reading(dev, log_durations, settings)
  assert (choice["min_steps"], choice["duration_weight"],
          choice["word_bonus"]) == (1, 1.0, -0.5)
  assert [row["string_accuracy"] for row in choice["dev"]] == [0.0, 1.0]
  # Without the prior: "11" read as "1" (1 of 2 digits), "7" as "57" (1 of
  # 1); the mean over the two dev sets.
  assert choice["dev"][0]["digit_error_rate"] == pytest.approx(0.75)


def test_word_durations_are_the_training_utterances_lengths():
  pools = _pools()     # utterances of 800-1040 samples at 8 kHz: 3-4 steps
  log_p = strings_eval.word_durations(pools)
  lengths = [len(pools.speech.waveforms[i]) for by in
             pools.by_speaker.values() for d in by for i in d]
  steps = np.ceil(np.array(lengths) / RATE / 0.04).astype(int)
  assert len(log_p) == steps.max() == 4
  want = np.bincount(steps, minlength=5)[1:] + 1.0
  np.testing.assert_allclose(np.exp(log_p), want / want.sum())
  prior = strings_eval.word_prior(log_p, 2, 0.5, 1.0)
  assert prior[0] == -np.inf
  np.testing.assert_allclose(prior[1:], 1.0 + 0.5 * log_p[1:])


def test_chance_recall_counts_repeated_strings():
  digits = np.array([[1, 2], [1, 2], [3, 4], [1, 2], [5, 6]])
  # Three queries whose string three items spell, two with one each.
  want = (3 * 3 / 5 + 2 * 1 / 5) / 5
  assert strings_eval.chance_recall_at_1(digits) == pytest.approx(want)
  assert strings_eval.chance_recall_at_1(np.arange(8)[:, None]) == 1 / 8
  # Random scores agree.
  rng = np.random.default_rng(0)
  hits = [strings_eval.recall(rng.random((5, 5)), digits)[
      "speech_to_image"]["R@1"] for _ in range(4000)]
  assert np.mean(hits) == pytest.approx(want, abs=0.01)


def test_edit_distance():
  assert matchmap.edit_distance([1, 2, 3], [1, 2, 3]) == 0
  assert matchmap.edit_distance([1, 2, 3], [1, 3]) == 1
  assert matchmap.edit_distance([], [4, 5]) == 2
  assert matchmap.edit_distance([1, 2, 3, 4], [2, 1, 3, 5]) == 3
  for a, b in itertools.product([[0], [0, 1], [1, 0, 1]], repeat=2):
    assert matchmap.edit_distance(a, b) == matchmap.edit_distance(b, a)


def test_localised_on_a_hand_made_matchmap():
  maps = np.zeros((10, 6))
  maps[2, 0:2] = 1.0     # digit 0 (columns 0-1) best at step 2: its word
  maps[8, 3:5] = 1.0     # digit 1 (columns 3-4) best at step 8: not its word
  maps[9, 3:5] = 2.0     # ... but step 9 is padding
  boxes = np.array([[0, 2], [3, 5]])
  words = np.array([[1, 4], [5, 8]])
  mask = np.arange(10) < 9
  np.testing.assert_array_equal(
      matchmap.localised(maps, boxes, words, mask), [True, False])
  maps[6, 3] = 1.5
  np.testing.assert_array_equal(
      matchmap.localised(maps, boxes, words, mask), [True, True])


def test_ordered_path_is_the_best_left_to_right_alignment():
  rng = np.random.default_rng(0)
  for _ in range(100):
    t, w = rng.integers(1, 6), rng.integers(1, 5)
    maps = rng.normal(size=(t, w))
    speech_mask = rng.random(t) < 0.8
    image_mask = np.arange(w) < rng.integers(1, w + 1)
    if not speech_mask.any():
      continue
    path = matchmap.ordered_path(maps, speech_mask, image_mask)
    steps, columns = np.flatnonzero(speech_mask), np.flatnonzero(image_mask)
    best = max(sum(maps[s, c] for s, c in zip(steps, p, strict=True))
               for p in itertools.combinations_with_replacement(
                   columns, len(steps)))
    assert (np.diff(path[steps]) >= 0).all()
    assert (path[~speech_mask] == -1).all() and image_mask[path[steps]].all()
    assert sum(maps[s, path[s]] for s in steps) == pytest.approx(best)
    # The pooled score is that path's mean (speech steps dotted with one-hot
    # columns give the matchmap back).
    score = matchmap.scores(maps[None].astype(np.float32), speech_mask[None],
                            np.eye(w, dtype=np.float32)[None],
                            image_mask[None], "ordered")
    assert float(score[0, 0]) == pytest.approx(best / len(steps), rel=1e-5)


def test_localised_on_path():
  maps = np.zeros((6, 4))
  maps[1, 0], maps[4, 2] = 1.0, 1.0
  path = np.array([0, 0, 1, 2, 2, -1])
  boxes = np.array([[0, 1], [2, 3], [3, 4]])
  words = np.array([[0, 2], [2, 4], [4, 6]])
  # Digit 0 gets steps 0-1 (best 1: its word); digit 1 gets 3-4 (best 4:
  # not its word); digit 2 gets none.
  np.testing.assert_array_equal(
      matchmap.localised_on_path(maps, path, boxes, words),
      [True, False, False])


# ------------------------------------------------------------ TIDIGITS


def test_tidigits_connected_digits_load_as_strings(tmp_path):
  for subset in ("train", "test"):
    folder = tmp_path / subset.upper() / "MAN" / "AE"
    _sphere(folder / "1A.WAV")                    # isolated: skipped
    _sphere(folder / "O4Z3A.WAV", value=1)
    _sphere(folder / "12B.WAV", value=2)
    _wav(folder / "77A.WAV", value=3)
    _sphere(tmp_path / subset.upper() / "woman" / "bf" / "9oa.wav", value=4)
  out = spoken.load_tidigits_strings(tmp_path)
  assert sorted(out) == [2, 4]
  speech, digits = out[4]
  np.testing.assert_array_equal(digits, [[0, 4, 0, 3]] * 2)
  assert set(speech.subset) == {"train", "test"}
  speech, digits = out[2]
  assert sorted(map(tuple, digits.tolist())) == sorted(
      [(1, 2), (7, 7), (9, 0)] * 2)
  assert set(speech.speakers) == {"man/ae", "woman/bf"}
  assert speech.sample_rate == 8000
  with pytest.raises(DataError, match="no connected-digit"):
    spoken.load_tidigits_strings(tmp_path / "TRAIN" / "MAN")


# ------------------------------------------------------------ configs


def test_strings_config_is_valid_and_bad_settings_are_one_line():
  cfg = strings_config.get_config()
  validation.validate_strings(cfg)
  for key, value, message in (
      ("batch_size", 1, "batch_size must be >= 2"),
      ("train_lengths", (1, 20), "train_lengths"),
      ("test_lengths", (0,), "test_lengths"),
      ("pooling", "avg", "strings.pooling"),
      ("eval_pooling", "avg", "strings.eval_pooling"),
      ("temperature", 0.0, "temperature"),
      ("learning_rate", -1.0, "learning_rate"),
      ("test_strings", 0, "test_strings"),
      ("reader_min_steps", (0, 2), "reader_min_steps"),
      ("reader_word_bonus", (), "reader_word_bonus"),
      ("reader_images", 0, "reader_images")):
    bad = strings_config.get_config()
    bad.strings[key] = value
    with pytest.raises((ConfigError, DataError), match=message):
      validation.validate_strings(bad)


def test_retrieval_is_scored_with_eval_pooling_when_set():
  cfg = strings_config.get_config()
  cfg.strings.pooling = "ordered"
  assert strings_pipeline.eval_settings(cfg).pooling == "ordered"
  cfg.strings.eval_pooling = "ordered_both"
  assert strings_pipeline.eval_settings(cfg).pooling == "ordered_both"
  # Training is unchanged by it.
  assert strings_pipeline.StringSchedule.from_config(
      cfg.strings).pooling == "ordered"


def test_strings_refuse_settings_they_ignore_and_several_processes(
    monkeypatch):
  for key in ("scan_steps", "parallel_seeds"):
    bad = strings_config.get_config()
    bad[key] = "true"
    with pytest.raises(ConfigError, match=f"^--config.{key}: the strings "
                       "task does not read it"):
      validation.validate_strings(bad)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  with pytest.raises(ConfigError) as error:
    validation.validate_strings(strings_config.get_config())
  assert str(error.value) == (
      "--num_processes=2: the strings task runs as one process (its state "
      "lives on one local device); run it without --num_processes")


# ------------------------------------------------------------ end to end


def tiny_config() -> ml_collections.ConfigDict:
  cfg = strings_config.get_config()
  cfg.data.images = "synthetic"
  cfg.data.speech = "synthetic"
  cfg.data.speech_split = "stratified"
  cfg.data.synthetic_images_per_class = 20
  cfg.data.synthetic_speech_per_class = 8
  cfg.strings.one_speaker = False
  cfg.strings.speech_widths = (8, 16, 16)
  cfg.strings.image_widths = (4, 8, 8)
  cfg.strings.dim = 16
  cfg.strings.train_lengths = (1, 2)
  cfg.strings.batch_size = 8
  cfg.strings.steps = 6
  cfg.strings.steps_per_chunk = 3
  cfg.strings.test_lengths = (2, 3)
  cfg.strings.test_strings = 30
  cfg.strings.reader_images = 2
  cfg.strings.reader_dev_strings = 8
  cfg.strings.reader_min_steps = (1, 2)
  cfg.strings.reader_duration_weight = (0.0, 1.0)
  cfg.strings.reader_word_bonus = (0.0,)
  return cfg


def _set_flags(monkeypatch, command, **values):
  for holder, value in values.items():
    monkeypatch.setattr(command, holder, types.SimpleNamespace(value=value))


def test_reproduce_and_evaluate_strings_end_to_end(tmp_path, monkeypatch):
  monkeypatch.delenv("AVDIGITS_DATA_DIR", raising=False)
  workdir = tmp_path / "run"
  with entry_point("experiments.reproduce") as command:
    _set_flags(monkeypatch, command, _CONFIG=tiny_config(), _SEEDS=2,
               _WORKDIR=str(workdir), _DATA_DIR=None, _PROGRESS=False)
    command.main(["reproduce"])
    report = json.loads((workdir / "report.json").read_text())
    # A rerun restores the finished stage and repeats every figure.
    monkeypatch.setattr(strings_pipeline, "train_strings", _no_training)
    command.main(["reproduce"])
  again = json.loads((workdir / "report.json").read_text())
  assert again["strings"] == report["strings"]
  assert report["data"]["synthetic"] and report["seeds"] == [0, 1]
  assert sorted(report["strings"]) == ["2", "3"]
  # Both seeds met the same test strings (drawn with the data seed).
  assert [len(report["test_sets"]["stratified"][k]) for k in ("2", "3")
          ] == [1, 1]
  # Each run's reader was chosen on training strings, with its dev table.
  assert [r["seed"] for r in report["reader"]] == [0, 1]
  for reader in report["reader"]:
    assert reader["prototypes"] == "training images"
    assert len(reader["dev"]) == 4 and reader["dev_lengths"] == [2, 3]
    assert max(row["string_accuracy"] for row in reader["dev"]) == next(
        row["string_accuracy"] for row in reader["dev"]
        if row["min_steps"] == reader["min_steps"]
        and row["duration_weight"] == reader["duration_weight"])
  for entry in report["strings"].values():
    for direction in ("speech_to_image", "image_to_speech"):
      values = [entry["recall"][direction][k] for k in ("R@1", "R@5",
                                                        "R@10")]
      assert all(0 <= v <= 1 for v in values) and values == sorted(values)
    assert 0 <= entry["reading"]["string_accuracy"] <= 1
    assert entry["reading"]["digit_error_rate"] >= 0
    assert 0 <= entry["localisation"] <= 1
    assert 0 <= entry["localisation_aligned"] <= 1
    assert entry["chance_R@1"] >= 1 / 30
  assert [r["step"] for r in report["train"]["history"]] == [3, 6]
  assert (workdir / "matchmaps.png").stat().st_size > 0
  assert "| 2 |" in (workdir / "report.md").read_text()

  output = tmp_path / "other.json"
  with entry_point("experiments.evaluate") as command:
    _set_flags(monkeypatch, command, _WORKDIR=str(workdir), _DATA_DIR=None,
               _SPLIT="all", _OUTPUT=str(output), _IMAGES=None, _SPEECH=None)
    # The same synthetic corpora: 'all' holds the training examples.
    with pytest.raises(ConfigError, match="^--split=all: .* trained the "
                       "model of split stratified"):
      command.main(["evaluate"])
    _set_flags(monkeypatch, command, _SPLIT="stratified")
    command.main(["evaluate"])
  other = json.loads(output.read_text())
  counts = other["data"]["counts"]
  assert counts["test_utterances"] == report["data"]["counts"][
      "test_utterances"]
  assert sorted(other["strings"]) == ["2", "3"]
  assert other["trained_on"]["speech_split"] == "stratified"


def _no_training(*args, **kwargs):
  raise AssertionError("a finished stage was trained again")


@requires_real_data
def test_every_fsdd_speaker_can_speak_strings(real_data_dir):
  from avdigits.data import sources, splits
  speech = sources.load_speech("fsdd", real_data_dir, seed=0,
                               sample_rate=RATE, synthetic_per_class=0)
  _, test = splits.speech_split(speech, mode="upstream", held_out=(),
                                test_fraction=0.2, seed=0)
  images = _images()
  pools = S.Pools.build(speech, test, images, np.arange(len(images)),
                        length=7, what="upstream test split")
  assert len(pools.by_speaker) == len(set(speech.speakers))
  assert all(len(p) == 5 for by in pools.by_speaker.values() for p in by)


def test_sibling_batches_differ_from_their_twins_in_one_digit():
  pools = _pools()
  batch = S.training_batch(pools, (4,), 10, seed=0, step=3, siblings=True)
  first, second = batch.digits[:5], batch.digits[5:]
  np.testing.assert_array_equal((first != second).sum(1), [1] * 5)
  odd = S.training_batch(pools, (3,), 7, seed=0, step=3, siblings=True)
  assert odd.digits.shape == (7, 3)


def test_connected_recordings_become_test_strings(tmp_path):
  for speaker, names in (("ae", ("O4Z3A.WAV", "12B.WAV", "77A.WAV")),
                         ("bf", ("9OA.WAV", "3A.WAV"))):
    for name in names:
      _sphere(tmp_path / "tidigits" / "TEST" / "MAN" / speaker.upper() / name,
              n=4000, value=len(name))
  cfg = strings_config.get_config()
  cfg.data.speech = "tidigits"
  cfg.strings.test_speech = "connected"
  validation.validate_strings(cfg)
  recorded = strings_pipeline.connected_test_speech(cfg, tmp_path,
                                                    {"man/ae"})
  assert sorted(recorded) == [2, 4]
  speech, digits = recorded[2]
  assert set(speech.speakers) == {"man/ae"}            # bf is not a test one
  assert sorted(digits.tolist()) == [[1, 2], [7, 7]]
  pools = _pools()
  strings = strings_eval.test_strings(pools, 2, 10, seed=0,
                                      recorded=recorded)
  assert strings.words is None and len(strings) == 2
  for k in range(2):
    assert [int(pools.images.labels[int(i.split(":")[1])])
            for i in strings.utterance_ids[k][1:]] == strings.digits[
                k].tolist()
    assert strings.boxes[k].shape == (2, 2)
  assert strings_eval.test_strings(pools, 3, 10, 0, recorded) is None
  cfg.data.speech = "fsdd"
  with pytest.raises(ConfigError, match="needs TIDIGITS"):
    strings_pipeline.connected_test_speech(cfg, tmp_path, {"man/ae"})


def test_development_strings_come_from_the_training_part_only():
  """With `strings.dev`, training and scored strings are drawn from the
  split's training part alone (`splits.development_split` and 20% of the
  training images per class); the split's test part is never in a pool."""
  cfg = tiny_config()
  corpora = prepare.load_corpora(cfg, None, fixed_window=False)
  plain = strings_pipeline.string_data(cfg, corpora)
  cfg.strings.dev = True
  dev = strings_pipeline.string_data(cfg, corpora)

  def utterances(pools):
    return set(np.concatenate([i for per_digit in pools.by_speaker.values()
                               for i in per_digit]).tolist())

  def images(pools):
    return set(np.concatenate(pools.by_digit).tolist())

  outer_train = utterances(plain.train)
  assert utterances(dev.train) | utterances(dev.test) == outer_train
  assert not utterances(dev.train) & utterances(dev.test)
  assert images(dev.train) | images(dev.test) == images(plain.train)
  assert not images(dev.test) & images(plain.test)
  assert dev.summary["development"] and not plain.summary["development"]
  assert dev.summary["counts"]["test_utterances"] == len(utterances(dev.test))
  cfg.strings.test_speech = "connected"
  with pytest.raises(ConfigError, match="strings.dev"):
    validation.validate_strings(cfg)
