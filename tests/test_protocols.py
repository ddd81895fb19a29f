"""Speaker-independent protocols over several corpora: Speech Commands
speaker folds ("folds:K" / "fold:IofK"), per-corpus figures and the worst
held-out split in the report."""

import hashlib

import ml_collections
import numpy as np
import pytest

from avdigits import evaluate
from avdigits.data import splits
from avdigits.data.types import SpeechSet, concatenate_speech
from avdigits.digits import report
from avdigits.errors import ConfigError, DataError
from avdigits.inputs import prepare
from avdigits.training import predict


def _corpus(name, speakers, labels):
  n = len(labels)
  return SpeechSet(
      waveforms=[np.zeros(4, np.float32)] * n, sample_rate=8000,
      labels=np.asarray(labels, np.int32), speakers=np.array(speakers),
      subset=np.full(n, ""), utterance_ids=np.array(
          [f"{name}{i}" for i in range(n)]),
      num_classes=10, source=name, corpus=np.full(n, name))


def _two_corpora():
  fsdd = _corpus("fsdd", ["amy"] * 10 + ["bob"] * 10, list(range(10)) * 2)
  people = [f"{i:08x}" for i in range(40)]
  sc = _corpus("speech_commands", people, [i % 10 for i in range(40)])
  return concatenate_speech([fsdd, sc])


def test_fold_of_a_speaker_is_its_sha1_modulo_k():
  for speaker in ("0a1b2c3d", "george"):
    expected = int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % 5
    assert splits.speaker_fold(speaker, 5) == expected


def test_folds_hold_out_the_other_corpus_people_once_each():
  speech = _two_corpora()
  tested = []
  for i in range(4):
    train, test = splits.speech_split(speech, mode="fold",
                                      held_out=(f"{i}of4",))
    assert set(speech.corpus[test].tolist()) == {"speech_commands"}
    # Speaker-disjoint, and FSDD always trains.
    assert not set(speech.speakers[test]) & set(speech.speakers[train])
    assert {"amy", "bob"} <= set(speech.speakers[train].tolist())
    assert all(splits.speaker_fold(s, 4) == i
               for s in speech.speakers[test].tolist())
    tested += speech.speakers[test].tolist()
  assert sorted(tested) == sorted(speech.speakers[speech.corpus
                                                  == "speech_commands"])


def test_one_corpus_folds_over_all_its_speakers():
  speech = _corpus("x", [f"p{i % 15}" for i in range(30)],
                   [i % 10 for i in range(30)])
  assert {splits.speaker_fold(f"p{i}", 3) for i in range(15)} == {0, 1, 2}
  seen = np.concatenate([splits.speech_split(
      speech, mode="fold", held_out=(f"{i}of3",))[1] for i in range(3)])
  np.testing.assert_array_equal(np.sort(seen), np.arange(30))


@pytest.mark.parametrize("spec", ["fold:5of5", "fold:0of1", "fold:a", "fold"])
def test_bad_fold_specs_are_one_line(spec):
  with pytest.raises(ConfigError, match="not a speech split"):
    splits.parse_speech_split(spec)


@pytest.mark.parametrize("spec", ["folds:1", "folds:x", "folds:"])
def test_bad_fold_counts_are_one_line(spec):
  with pytest.raises(ConfigError, match="K >= 2"):
    splits.check_run_split(spec)


def test_an_empty_fold_is_one_line():
  speech = _corpus("x", ["p"] * 10 + ["q"] * 10, list(range(10)) * 2)
  empty = next(i for i in range(50)
               if i not in {splits.speaker_fold(s, 50) for s in "pq"})
  with pytest.raises(DataError, match=f"fold:{empty}of50"):
    splits.speech_split(speech, mode="fold", held_out=(f"{empty}of50",))


def test_folds_expand_into_one_split_each_and_back():
  cfg = ml_collections.ConfigDict({"data": {"speech_split": "folds:3"}})
  corpora = prepare.Corpora(images=None, speech=_two_corpora(), timings={},
                            audio_checks={})
  specs = prepare.speech_split_names(cfg, corpora)
  assert specs == ["fold:0of3", "fold:1of3", "fold:2of3"]
  names = splits.held_out_in_turn("folds:3", specs)["speakers"][
      "held_out_in_turn"]
  assert splits.in_turn_specs("folds:3", names) == specs
  assert splits.in_turn_specs("loso", ["amy"]) == ["loso:amy"]


def test_corpus_figures_are_the_protocols_on_its_columns():
  rng = np.random.default_rng(0)
  speech_labels = np.array(list(range(10)) * 2 + [1, 2, 3])
  corpus = np.array(["a"] * 20 + ["b"] * 3)
  image_labels = np.repeat(np.arange(10), 3)
  scores = rng.normal(size=(30, 23)).astype(np.float32)
  logits = rng.normal(size=(23, 10)).astype(np.float32)
  data = prepare.Prepared(
      train_images=None, train_image_labels=None, test_images=None,
      test_image_labels=image_labels, train_speech=None,
      train_speech_labels=None, test_speech=None,
      test_speech_labels=speech_labels, num_speech_classes=10, summary={},
      test_speech_corpus=corpus)
  outputs = {"scores": scores, "speech_logits": logits}
  known = np.ones(23, bool)
  a = predict._corpus_figures(outputs, data, corpus == "a", known,
                              trials=20, seed=3)
  expected = evaluate.evaluate_scores(scores[:, :20], image_labels,
                                      speech_labels[:20], 10, trials=20,
                                      seed=3)
  assert a["annotation"] == expected["annotation"]["accuracy"]
  assert a["retrieval"] == expected["retrieval"]["accuracy"]
  assert a["speech_test_accuracy"] == np.mean(
      logits[:20].argmax(-1) == speech_labels[:20])
  b = predict._corpus_figures(outputs, data, corpus == "b", known,
                              trials=20, seed=3)
  assert b["annotation"] is None and b["retrieval"] is None
  assert b["missing_classes"] == [0, 4, 5, 6, 7, 8, 9]
  assert b["test_utterances"] == 3


def _run(seed, annotation, by_corpus=None):
  figures = {"accuracy": annotation, "per_class": [annotation] * 10,
             "confusion": [[0] * 10] * 10}
  out = {"seed": seed, "image_test_accuracy": 0.99,
         "speech_test_accuracy": 0.9, "annotation": figures,
         "retrieval": figures,
         "recall": {"image_to_speech": {"R@1": 0.5}}}
  if by_corpus is not None:
    out["by_corpus"] = by_corpus
  return out


def test_report_has_per_corpus_means_and_the_worst_split():
  corpus = lambda a: {"fsdd": {"test_utterances": 5,  # noqa: E731
                               "speech_test_accuracy": a, "annotation": a,
                               "retrieval": a},
                      "sc": {"test_utterances": 2,
                             "speech_test_accuracy": 0.5, "annotation": None,
                             "retrieval": None, "missing_classes": [3]}}
  by_split = {"amy": [_run(0, 0.8, corpus(0.8)), _run(1, 0.9, corpus(0.6))],
              "bob": [_run(0, 0.7, corpus(0.7)), _run(1, 0.6, corpus(0.7))]}
  runs = [r for rs in by_split.values() for r in rs]
  out = report.aggregate(runs, data={}, config={"align": {
      "speech_hidden": 8}}, seed=0, timings={}, splits=by_split)
  assert out["worst_split"]["name"] == "bob"
  assert out["worst_split"]["annotation"] == pytest.approx(0.65)
  fsdd = out["by_corpus"]["fsdd"]["annotation"]
  assert fsdd["mean"] == pytest.approx(0.7)
  assert fsdd["values"] == [0.8, 0.6, 0.7, 0.7]
  assert out["by_corpus"]["sc"]["annotation"] is None
  assert out["by_corpus"]["sc"]["missing_classes"] == [3]
