"""Tests for avdigits.data.splits: index arithmetic and its error cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avdigits.data import splits
from avdigits.data.types import ImageSet, SpeechSet
from avdigits.errors import ConfigError, DataError


def image_set(labels, subset=None, source="imgs"):
  labels = np.asarray(labels, np.int32)
  subset = np.full(len(labels), "") if subset is None else np.array(subset)
  return ImageSet(images=np.zeros((len(labels), 28, 28), np.uint8),
                  labels=labels, subset=subset, source=source)


def speech_set(labels, speakers, subset=None, source="fsdd:/x"):
  labels = np.asarray(labels, np.int32)
  subset = np.full(len(labels), "") if subset is None else np.array(subset)
  n = len(labels)
  return SpeechSet(waveforms=[np.zeros(4, np.float32)] * n, sample_rate=8000,
                   labels=labels, speakers=np.array(speakers), subset=subset,
                   utterance_ids=np.array([f"u{i}" for i in range(n)]),
                   num_classes=10, source=source)


def assert_partition(train, test, n):
  for idx in (train, test):
    assert idx.dtype.kind == "i"
    assert np.all(np.diff(idx) > 0)  # Sorted, no repeats.
  assert np.intersect1d(train, test).size == 0
  np.testing.assert_array_equal(np.union1d(train, test), np.arange(n))


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(st.integers(0, 5), min_size=0, max_size=200),
       fraction=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_stratified_split_properties(labels, fraction, seed):
  labels = np.array(labels, np.int32)
  train, test = splits.stratified_split(labels, test_fraction=fraction,
                                        seed=seed)
  assert_partition(train, test, len(labels))
  for c in np.unique(labels):
    n_c = int(np.sum(labels == c))
    assert np.sum(labels[test] == c) == int(np.floor(fraction * n_c + 0.5))
  again = splits.stratified_split(labels, test_fraction=fraction, seed=seed)
  np.testing.assert_array_equal(again[0], train)
  np.testing.assert_array_equal(again[1], test)


def test_stratified_split_exact_counts_and_seeds():
  labels = np.repeat(np.arange(10), [10, 20, 30, 40, 50, 5, 3, 1, 2, 15])
  train, test = splits.stratified_split(labels, test_fraction=0.2, seed=0)
  np.testing.assert_array_equal(np.bincount(labels[test], minlength=10),
                                [2, 4, 6, 8, 10, 1, 1, 0, 0, 3])
  assert len(train) + len(test) == len(labels)
  tests = {tuple(splits.stratified_split(labels, seed=s)[1]) for s in range(5)}
  assert len(tests) == 5  # Different seeds, different splits.


def test_stratified_split_rejects_bad_fraction():
  with pytest.raises(ConfigError, match="test_fraction=1.5"):
    splits.stratified_split([0, 1], test_fraction=1.5)


def test_image_split_auto_uses_official_subsets():
  subset = ["train", "test", "train", "test", "train"]
  images = image_set([0, 1, 2, 3, 4], subset)
  for mode in ("auto", "official"):
    train, test = splits.image_split(images, mode=mode)
    np.testing.assert_array_equal(train, [0, 2, 4])
    np.testing.assert_array_equal(test, [1, 3])


def test_image_split_auto_falls_back_to_stratified():
  labels = np.repeat(np.arange(10), 10)
  for subset in (None, ["train"] * 100, ["train"] * 50 + [""] * 50):
    images = image_set(labels, subset)
    train, test = splits.image_split(images, mode="auto", test_fraction=0.3,
                                     seed=4)
    assert_partition(train, test, 100)
    np.testing.assert_array_equal(np.bincount(labels[test]), [3] * 10)
    expected = splits.stratified_split(labels, test_fraction=0.3, seed=4)
    np.testing.assert_array_equal(test, expected[1])


def test_image_split_stratified_ignores_subsets():
  labels = np.repeat(np.arange(10), 10)
  images = image_set(labels, ["train", "test"] * 50)
  train, test = splits.image_split(images, mode="stratified",
                                   test_fraction=0.5, seed=1)
  assert_partition(train, test, 100)
  assert not np.array_equal(test, np.arange(1, 100, 2))


def test_image_split_all():
  train, test = splits.image_split(image_set([3, 1, 2]), mode="all")
  assert train.size == 0
  np.testing.assert_array_equal(test, [0, 1, 2])


def test_image_split_official_needs_subsets():
  images = image_set([0, 1, 2], ["train", "train", ""], source="mnist-idx:/d")
  with pytest.raises(DataError, match="mnist-idx:/d.*'', 'train'"):
    splits.image_split(images, mode="official")


def test_image_split_unknown_mode():
  with pytest.raises(ConfigError, match="'official2'.*auto, official"):
    splits.image_split(image_set([0]), mode="official2")


SPEAKERS = ["george", "theo", "jackson"]


def fsdd_like():
  """3 speakers x 10 digits x 6 takes; takes 0-1 are "test"."""
  rows = [(d, s, "test" if t < 2 else "train")
          for s in SPEAKERS for d in range(10) for t in range(6)]
  labels, speakers, subset = zip(*rows, strict=True)
  return speech_set(labels, speakers, subset)


def test_speech_split_upstream():
  speech = fsdd_like()
  train, test = splits.speech_split(speech, mode="upstream")
  assert_partition(train, test, len(speech))
  assert set(speech.subset[test]) == {"test"} and len(test) == 60


def test_speech_split_upstream_needs_subsets():
  speech = speech_set([0, 1], ["a", "b"], source="audiomnist:/data")
  with pytest.raises(DataError, match="audiomnist:/data.*'upstream'"):
    splits.speech_split(speech, mode="upstream")


def test_speech_split_speakers_and_loso():
  speech = fsdd_like()
  train, test = splits.speech_split(speech, mode="speakers",
                                    held_out=("george", "theo"))
  assert_partition(train, test, len(speech))
  assert set(speech.speakers[test]) == {"george", "theo"}
  assert set(speech.speakers[train]) == {"jackson"}
  train, test = splits.speech_split(speech, mode="loso", held_out=["theo"])
  assert_partition(train, test, len(speech))
  assert set(speech.speakers[test]) == {"theo"} and len(test) == 60


@pytest.mark.parametrize("mode, held_out, pattern", [
    ("speakers", ("george", "nobody"),
     "unknown speaker.*nobody.*available: george, jackson, theo"),
    ("speakers", (), "needs speaker names.*available: george"),
    ("speakers", tuple(SPEAKERS), "holds out every speaker"),
    ("loso", ("george", "theo"), "exactly one speaker, got 2"),
    ("loso", (), "exactly one speaker, got 0"),
    ("stratified", ("george",), "takes no speakers"),
    ("kfold", (), "'kfold'.*upstream, speakers, loso"),
])
def test_speech_split_config_errors(mode, held_out, pattern):
  with pytest.raises(ConfigError, match=pattern) as err:
    splits.speech_split(fsdd_like(), mode=mode, held_out=held_out)
  assert "\n" not in str(err.value)


def test_speech_split_stratified_and_all():
  speech = fsdd_like()
  train, test = splits.speech_split(speech, mode="stratified",
                                    test_fraction=0.25, seed=3)
  assert_partition(train, test, len(speech))
  # 18 per class: 0.25 * 18 = 4.5 rounds half up to 5.
  np.testing.assert_array_equal(np.bincount(speech.labels[test]), [5] * 10)
  other = splits.speech_split(speech, mode="stratified", test_fraction=0.25,
                              seed=4)
  assert not np.array_equal(other[1], test)
  train, test = splits.speech_split(speech, mode="all")
  assert train.size == 0 and len(test) == len(speech)


@pytest.mark.parametrize("spec, expected", [
    ("upstream", ("upstream", ())),
    ("all", ("all", ())),
    (" stratified ", ("stratified", ())),
    ("speakers:george,theo", ("speakers", ("george", "theo"))),
    ("speakers: george , theo", ("speakers", ("george", "theo"))),
    ("loso:george", ("loso", ("george",))),
])
def test_parse_speech_split(spec, expected):
  assert splits.parse_speech_split(spec) == expected


@pytest.mark.parametrize("spec", [
    "", "official", "upstream:x", "speakers", "speakers:", "speakers:a,,b",
    "loso", "loso:a,b", "loso:", "LOSO:a"])
def test_parse_speech_split_rejects(spec):
  with pytest.raises(ConfigError) as err:
    splits.parse_speech_split(spec)
  message = str(err.value)
  assert repr(spec) in message
  assert "speech_split" in message
  assert "speakers:NAME[,NAME...]" in message and "loso:NAME" in message


def test_check_classes_passes_when_complete():
  splits.check_classes(np.arange(10).repeat(2), "test split of X", 10,
                       "speech")
  splits.check_classes(np.arange(11), "test split of X", 11, "speech")


def test_check_classes_names_missing_class_and_split():
  labels = np.array([0, 1, 2, 4, 5, 6, 7, 8, 9])
  with pytest.raises(DataError) as err:
    splits.check_classes(labels, "test split of FSDD", 10, "speech")
  assert str(err.value) == "test split of FSDD lacks speech class 3 (three)"
  with pytest.raises(DataError, match=r"lacks image classes 0 \(zero\), "
                     r"9 \(nine\)"):
    splits.check_classes(np.arange(1, 9), "train split of M", 10, "image")
  with pytest.raises(DataError, match=r"lacks speech class 10 \(oh\)"):
    splits.check_classes(np.arange(10), "train split of T", 11, "speech")


def test_check_classes_with_class_names():
  names = [str(d) for d in range(10)]
  with pytest.raises(DataError) as err:
    splits.check_classes(np.arange(9), "test split of M", 10, names)
  assert str(err.value) == "test split of M lacks class 9"
  with pytest.raises(DataError, match=r"class 2 \(two\)$"):
    splits.check_classes(np.array([0, 1]), "s", 3, ["zero", "one", "two"])


def test_check_classes_rejects_out_of_range():
  with pytest.raises(DataError, match="outside 0..9: 10, 12"):
    splits.check_classes(np.array([*range(10), 10, 12]), "test split", 10)
  with pytest.raises(DataError, match="lacks speech classes"):
    splits.check_classes(np.array([], np.int32), "test split", 10)


def test_development_split_of_a_same_speaker_split_is_per_class():
  # Two speakers x 2 classes x 10 utterances; the test part (indices 0-7)
  # has the same speakers, so dev takes 20% of each class.
  labels = np.tile(np.repeat([0, 1], 10), 2)
  speakers = np.repeat(["a", "b"], 20)
  speech = speech_set(labels, speakers)
  test = np.array([0, 1, 10, 11, 20, 21, 30, 31])
  train = np.setdiff1d(np.arange(40), test)
  fit, dev = splits.development_split(speech, train, test, seed=3)
  np.testing.assert_array_equal(np.union1d(fit, dev), train)
  assert not set(fit) & set(dev)
  assert np.bincount(labels[dev]).tolist() == [3, 3]      # 16 * 0.2
  again = splits.development_split(speech, train, test, seed=3)
  np.testing.assert_array_equal(again[1], dev)


def test_development_split_of_a_speaker_independent_split_holds_speakers():
  speakers = np.repeat(["a", "b", "c", "d", "e", "f"], 5)
  speech = speech_set(np.arange(30) % 5, speakers)
  test = np.flatnonzero(speakers == "f")
  train = np.flatnonzero(speakers != "f")
  fit, dev = splits.development_split(speech, train, test)
  assert set(speakers[dev]) == {"a"}          # every 5th of a..e
  assert set(speakers[fit]) == {"b", "c", "d", "e"}
  with pytest.raises(DataError, match="2 or more"):
    splits.development_split(speech, np.flatnonzero(speakers == "a"), test)
