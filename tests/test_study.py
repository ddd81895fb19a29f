"""The study: split expansion, summaries, and `experiments.study` end to end
on synthetic data (no ../shared needed)."""

import dataclasses
import json
import pathlib
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

from avdigits.data import splits
from avdigits.data.types import SpeechSet
from avdigits.errors import ConfigError
from avdigits.models import nets
from avdigits.study import pipeline as study
from avdigits.study import report as study_report
from avdigits.study import validation
from avdigits.training import joint, stages
from avdigits.training.predict import make_predict_fn
from experiments.configs.study import base
from tests.conftest import entry_point, snapshot, subprocess_env

REPO = pathlib.Path(__file__).resolve().parents[1]


def _speech(speakers, subsets=None):
  n = len(speakers)
  return SpeechSet(
      waveforms=[np.zeros(800, np.float32)] * n, sample_rate=8000,
      labels=np.arange(n, dtype=np.int32) % 10,
      speakers=np.asarray(speakers),
      subset=np.asarray(subsets or ["train"] * n),
      utterance_ids=np.asarray([f"u{i}" for i in range(n)]), num_classes=10,
      source="toy")


def test_loso_star_holds_out_every_speaker_in_turn():
  speech = _speech(["a", "b", "c"] * 10)
  out = study.expand_splits(speech, "loso:*")
  assert [s.name for s in out] == ["a", "b", "c"]
  for s in out:
    assert set(speech.speakers[s.test]) == {s.name}
    assert s.name not in set(speech.speakers[s.train])


def test_loso_val_validates_on_the_next_speaker_never_the_test_one():
  speech = _speech(["a", "b", "c", "d"] * 10)
  out = study.expand_splits(speech, "loso_val:*")
  assert [s.name for s in out] == ["a-val-b", "b-val-c", "c-val-d", "d-val-a"]
  for s, (test, val) in zip(out, ("ab", "bc", "cd", "da"), strict=True):
    assert set(speech.speakers[s.test]) == {val}
    assert set(speech.speakers[s.train]) == set("abcd") - {test, val}
  # Not nested (as the docs say): every test speaker validates another
  # split, so a choice averaged over the splits has seen each of them.
  assert {v for s in out for v in speech.speakers[s.test]} == set("abcd")
  with pytest.raises(ConfigError, match="3 speakers"):
    study.expand_splits(_speech(["a", "b"] * 10), "loso_val:*")


def test_folds_are_speaker_disjoint_and_cover_everyone():
  speech = _speech([f"s{i}" for i in range(5)] * 10)
  out = study.expand_splits(speech, "folds:2")
  held = [set(speech.speakers[s.test]) for s in out]
  assert held[0].isdisjoint(held[1])
  assert held[0] | held[1] == {f"s{i}" for i in range(5)}
  with pytest.raises(ConfigError, match="folds:9"):
    study.expand_splits(speech, "folds:9")


def _two_corpora():
  """Five FSDD-like speakers (10 utterances each) and 40 people of a second
  corpus (2 each)."""
  first = _speech([f"f{i}" for i in range(5)] * 10)
  second = _speech([f"p{i:02d}" for i in range(40)] * 2)
  return dataclasses.replace(
      first, waveforms=first.waveforms + second.waveforms,
      labels=np.concatenate([first.labels, second.labels]),
      speakers=np.concatenate([first.speakers, second.speakers]),
      subset=np.concatenate([first.subset, second.subset]),
      utterance_ids=np.asarray([f"u{i}" for i in range(130)]),
      corpus=np.asarray(["fsdd"] * 50 + ["sc"] * 80))


def test_loso_star_with_several_corpora_holds_out_the_first_corpus_only():
  speech = _two_corpora()
  out = study.expand_splits(speech, "loso:*")
  assert [s.name for s in out] == [f"f{i}" for i in range(5)]
  for s in out:
    assert set(speech.speakers[s.test]) == {s.name}
    assert set(speech.corpus[s.train]) == {"fsdd", "sc"}
    assert len(s.train) + len(s.test) == len(speech)


def test_folds_with_several_corpora_are_the_run_level_hash_folds():
  speech = _two_corpora()
  out = study.expand_splits(speech, "folds:5")
  for i, s in enumerate(out):
    train, test = splits.speech_split(speech, mode="fold",
                                      held_out=(f"{i}of5",))
    np.testing.assert_array_equal(s.test, test)
    np.testing.assert_array_equal(s.train, train)
    assert set(speech.corpus[s.test]) == {"sc"}


@pytest.mark.parametrize("outer_spec", ["loso:*", "folds:5"])
def test_nested_splits_validate_on_training_people_and_images_only(
    outer_spec):
  speech = _two_corpora()
  labels = np.arange(100) % 10
  image_train = np.arange(80)                    # 80..99: test images
  outer = study.expand_splits(speech, outer_spec)
  nested = study.expand_splits(speech, "nested:" + outer_spec, image_train,
                               labels)
  assert [s.outer for s in nested] == [s.name for s in outer]
  assert [s.name for s in nested] == [f"{s.name}-val" for s in outer]
  for i, (o, n) in enumerate(zip(outer, nested, strict=True)):
    # Both parts lie inside the outer training part, disjoint, covering it.
    np.testing.assert_array_equal(np.union1d(n.train, n.test), o.train)
    assert not set(n.train) & set(n.test)
    # Whole people: nobody validates and trains.
    assert not set(speech.speakers[n.train]) & set(speech.speakers[n.test])
    # One first-corpus speaker of the training part (the i-th left) and
    # the second corpus's people of hash fold (i + 1) mod 5.
    left = sorted(set(speech.speakers[o.train][
        speech.corpus[o.train] == "fsdd"]))
    val_people = set(speech.speakers[n.test])
    assert val_people & set(left) == {left[i % len(left)]}
    others = val_people - set(left)
    assert others and all(splits.speaker_fold(p, 5) == (i + 1) % 5
                          for p in others)
    # Images: 20% of the training images per class; no test image.
    assert set(n.image_test) | set(n.image_train) == set(image_train)
    assert not set(n.image_test) & set(n.image_train)
    assert np.bincount(labels[n.image_test]).tolist() == [2] * 10
  with pytest.raises(ConfigError, match="training images"):
    study.expand_splits(speech, "nested:loso:*")


def test_corpus_recall_is_r1_speech_to_image_per_corpus():
  # 3 images (digits 0, 1, 2) x 4 utterances; the best image of each
  # utterance: 0, 2, 2, 1.
  scores = np.array([[5, 0, 0, 9],
                     [0, 1, 0, 3],
                     [1, 4, 7, 2]], np.float32)
  out = study.corpus_recall(scores, np.array([0, 1, 2]),
                            np.array([0, 1, 2, 3]),
                            np.array(["a", "a", "b", "b"]))
  assert out == {"a": {"utterances": 2, "r1_speech_to_image": 0.5},
                 "b": {"utterances": 2, "r1_speech_to_image": 0.5}}


def _nested_run(outer, seed, a, b, annotation=0.5):
  return {"split": f"{outer}-val", "outer": outer, "seed": seed,
          "annotation": annotation, "retrieval": 0.5,
          "recall": {"image_to_speech": {"R@1": 0.5},
                     "speech_to_image": {"R@1": 0.5}},
          "speech_classifier_accuracy": 0.7,
          "by_corpus": {"fsdd": {"r1_speech_to_image": a},
                        "sc": {"r1_speech_to_image": b}}}


def test_selection_chooses_per_outer_split_on_the_corpus_mean():
  runs = {
      # x: (0.9 + 0.5) / 2 = 0.70 on o1; 0.60 on o2 (mean of 2 seeds).
      "x": [_nested_run("o1", 0, 0.9, 0.5), _nested_run("o2", 0, 0.6, 0.6),
            _nested_run("o2", 1, 0.6, 0.6)],
      # y: 0.65 on o1 (a higher annotation does not count), 0.70 on o2.
      "y": [_nested_run("o1", 0, 0.5, 0.8, annotation=0.9),
            _nested_run("o2", 0, 0.7, 0.7), _nested_run("o2", 1, 0.7, 0.7)],
      # z ties x on o1: the first listed wins.
      "z": [_nested_run("o1", 0, 0.7, 0.7), _nested_run("o2", 0, 0, 0),
            _nested_run("o2", 1, 0, 0)],
      # Runs of an outer test split are never read.
      "w": [dict(_nested_run("o1", 0, 1, 1), outer=None, split="o1")]}
  chosen = study_report.selection(runs)
  assert chosen["outer"] == ["o1", "o2"]
  assert chosen["choice"] == {"o1": "x", "o2": "y"}
  assert chosen["scores"]["x"] == pytest.approx({"o1": 0.7, "o2": 0.6})
  assert chosen["scores"]["w"] == {"o1": None, "o2": None}
  table = study_report.selection_markdown(
      [{"name": n, "title": n.upper()} for n in runs], chosen, "CMD", "DATA")
  assert "| X (`x`) | **70.00% (50.0%)** | 60.00% (50.0%) |" in table
  assert "o1: `x`, o2: `y`" in table
  with pytest.raises(ConfigError, match="nested"):
    study_report.selection({"w": runs["w"]})


def test_children_split_trains_on_adults_and_tests_on_children():
  speakers = ["man/a", "woman/b", "boy/c", "girl/d"] * 5
  subsets = (["train"] * 4 + ["test"] * 4) * 2 + ["train"] * 4
  speech = _speech(speakers, subsets)
  (split,) = study.expand_splits(speech, "children")
  assert all(s.split("/")[0] in ("man", "woman")
             for s in speech.speakers[split.train])
  assert all(s.split("/")[0] in ("boy", "girl")
             for s in speech.speakers[split.test])
  assert set(speech.subset[split.test]) == {"test"}
  with pytest.raises(ConfigError, match="children"):
    study.expand_splits(_speech(["a"] * 10), "children")


def test_validate_names_the_bad_field():
  cfg = base.get_config()
  cfg.model.image = "frozen"
  with pytest.raises(ConfigError, match="model.image"):
    validation.validate_study(cfg)
  cfg = base.get_config()
  cfg.train.trainer = "paper_sgd"
  cfg.model.speech = "random_tuned"
  with pytest.raises(ConfigError, match="paper_sgd"):
    validation.validate_study(cfg)


def _run(seed, split, annotation, robust=True):
  run = {"seed": seed, "split": split, "annotation": annotation,
         "retrieval": annotation - 0.1, "train_seconds": 1.0,
         "recall": {"image_to_speech": {"R@1": 0.5},
                    "speech_to_image": {"R@1": 0.4}},
         "image_classifier_accuracy": 0.9, "speech_classifier_accuracy": None}
  if robust:
    run["robustness"] = {
        kind: [{"strength": s, "annotation": annotation / (1 + s),
                "retrieval": annotation / (2 + s)} for s in (0.0, 1.0)]
        for kind, _ in study_report.CORRUPTIONS}
  return run


def test_summary_averages_splits_per_seed(tmp_path):
  runs = [_run(seed, split, a) for seed, split, a in
          ((0, "x", 0.8), (0, "y", 0.6), (1, "x", 0.9), (1, "y", 0.7))]
  s = study_report.summarise({"name": "e", "title": "t", "runs": runs,
                              "seconds": 12.0})
  assert s["splits"]["x"]["annotation"]["values"] == [0.8, 0.9]
  np.testing.assert_allclose(s["average"]["annotation"]["values"], [0.7, 0.8])
  assert s["average"]["speech_classifier"] is None
  text = study_report.markdown([s], {"other": "no corpus"}, "cmd", "data")
  assert "75.00% ±" in text and "Per split" in text and "`other`" in text
  paths = study_report.figures([s], tmp_path)
  assert [p.name for p in paths] == ["robustness_image.png",
                                     "robustness_audio.png"]
  assert all(p.stat().st_size > 5000 for p in paths)


def test_gains_are_paired_by_split_and_seed():
  base = [_run(seed, split, a) for seed, split, a in
          ((0, "x", 0.8), (0, "y", 0.6), (1, "x", 0.9), (1, "y", 0.7))]
  better = [_run(seed, split, a) for seed, split, a in
            ((0, "x", 0.9), (0, "y", 0.6), (1, "x", 0.9), (1, "y", 0.9))]
  for run, accuracy in zip(better, (0.5, 0.6, 0.7, 0.8), strict=True):
    run["speech_classifier_accuracy"] = accuracy
  gain = study_report.gains(better, base)
  np.testing.assert_allclose(gain["annotation"]["values"],
                             [0.1, 0.0, 0.0, 0.2], atol=1e-12)
  assert gain["annotation"]["mean"] == pytest.approx(0.075)
  # t(0.975, 3) * sd / sqrt(4), sd of [0.1, 0, 0, 0.2] = 0.0957
  assert gain["annotation"]["ci95"] == pytest.approx(
      3.182446 * 0.0957427 / 2, rel=1e-4)
  assert gain["speech_classifier"] is None      # no baseline figure
  summaries = [study_report.summarise({"name": n, "title": n, "runs": r})
               for n, r in (("base", base), ("better", better))]
  text = study_report.gains_markdown(
      summaries, {"base": base, "better": better}, "base", "cmd", "data")
  rows = [line for line in text.splitlines() if line.startswith("| ")]
  assert "(baseline)" in rows[2] and "+7.50 ± 15.23" in rows[3]
  assert "y 65.00%" in rows[2] and "y 75.00%" in rows[3]


TINY = [
    "--set=data.images='synthetic'", "--set=data.speech='synthetic'",
    "--set=data.speech_splits=('stratified',)",
    "--set=data.synthetic_images_per_class=40",
    "--set=data.synthetic_speech_per_class=8",
    "--set=image.widths=(4,8)", "--set=image.hidden=32",
    "--set=image.batch_size=16", "--set=image.epochs=2",
    "--set=speech.hidden=32", "--set=speech.batch_size=16",
    "--set=speech.steps=30", "--set=train.steps=30",
    "--set=train.steps_per_chunk=10", "--set=train.groups=2",
    "--set=model.embed_dim=16", "--set=eval.trials=10",
    "--set=eval.image_noise=(0.0,0.5)", "--set=eval.occlusion=(0,10)",
    "--set=eval.snr_db=(20.0,0.0)", "--seeds=2",
    "--only=two_stage,joint_random,paper_sgd_clamp",
]
SETS = [item[len("--set="):] for item in TINY if item.startswith("--set=")]
EXPERIMENTS = ["two_stage", "joint_random", "paper_sgd_clamp"]


def _study(workdir, *extra):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.study", f"--workdir={workdir}",
       *TINY, *extra], cwd=REPO, env=subprocess_env(), capture_output=True,
      text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads((pathlib.Path(workdir) / "study.json").read_text())


def _numbers(summaries):
  return [(s["name"], s["average"]["annotation"]["values"],
           s["average"]["retrieval"]["values"]) for s in summaries]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("study")
  page = workdir / "page.md"  # a docs page (not the study's own study.md)
  page.write_text("# x\n<!-- study:begin -->\nold\n<!-- study:end -->\n"
                  "tail\n")
  return workdir, _study(workdir, f"--readme={page}")


@pytest.fixture(scope="module")
def study_cli():
  """experiments.study, imported in-process (its flags left unparsed)."""
  with entry_point("experiments.study") as module:
    yield module


def _load_config(study_cli, monkeypatch, name, sets=(), seeds=None):
  """`--only=name --set=...` as experiments.study resolves it."""
  monkeypatch.setattr(study_cli, "_SEEDS", types.SimpleNamespace(value=seeds))
  return study_cli.load_config(name, list(sets))


@pytest.fixture(scope="module")
def tiny_data():
  """The TINY study's data (every experiment here shares its data key)."""
  cfg = _tiny_config()
  return study.data_key(cfg), study.load_data(cfg, None)


def test_study_writes_tables_figures_and_its_docs_page(reference):
  workdir, result = reference
  names = [s["name"] for s in result["summaries"]]
  assert names == EXPERIMENTS
  for s in result["summaries"]:
    assert s["seeds"] == 2 and len(s["average"]["annotation"]["values"]) == 2
  assert "robustness" in result["summaries"][0]
  page = (workdir / "page.md").read_text()
  assert "old" not in page and page.endswith("tail\n")
  assert "| two-stage, InfoNCE, Adam (`two_stage`) |" in page
  assert "![robustness_image](figures/robustness_image.png)" in page
  assert (workdir / "figures" / "robustness_audio.png").stat().st_size > 5000


def test_rerun_skips_finished_runs_and_repeats_the_numbers(
    reference, study_cli, tiny_data, monkeypatch):
  workdir, result = reference
  before = snapshot(workdir)

  def no_training(*args, **kwargs):
    raise AssertionError("a finished run was trained again")

  monkeypatch.setattr(study, "train_alignment", no_training)
  monkeypatch.setattr(joint, "train_joint", no_training)
  monkeypatch.setattr(stages, "train_classifier", no_training)
  summaries = []
  for name in EXPERIMENTS:
    cfg = _load_config(study_cli, monkeypatch, name, SETS, seeds=2)
    assert study.data_key(cfg) == tiny_data[0]
    summaries.append(study_report.summarise(
        study.run_experiment(cfg, tiny_data[1], workdir)))
  assert _numbers(summaries) == _numbers(result["summaries"])
  # Checkpoints, parameters and results: not one byte rewritten.
  assert snapshot(workdir) == before


def test_same_seeds_give_the_same_numbers(reference, study_cli, tiny_data,
                                          monkeypatch, tmp_path):
  # joint_random alone, in a fresh workdir (in the reference it ran after
  # two_stage): the same numbers.
  cfg = _load_config(study_cli, monkeypatch, "joint_random", SETS, seeds=2)
  fresh = study_report.summarise(study.run_experiment(cfg, tiny_data[1],
                                                      tmp_path))
  assert _numbers([fresh]) == _numbers(reference[1]["summaries"])[1:2]


def test_bad_override_and_unknown_experiment_are_config_errors(
    study_cli, monkeypatch):
  for name, sets, message in (
      ("two_stage", ["train.nope=1"], "--set='train.nope=1': two_stage has "
       "no setting 'train.nope'"),
      ("bogus", [], "--only: unknown experiment 'bogus'"),
      ("two_stage", ["model.image='half'"],
       "--config.model.image='half': choose one of"),
      ("two_stage", ["train.steps"], "--set='train.steps': expected "
       "KEY=VALUE")):
    with pytest.raises(ConfigError) as error:
      _load_config(study_cli, monkeypatch, name, sets)
    assert message in str(error.value) and "\n" not in str(error.value)


def _tiny_config(**changes):
  cfg = base.get_config()
  for item in SETS:
    key, _, value = item.partition("=")
    section, _, name = key.partition(".")
    cfg[section][name] = eval(value)  # noqa: S307 (test literals)
  cfg.name = "tiny"
  cfg.seeds = 1
  for key, value in changes.items():
    section, _, name = key.partition(".")
    cfg[section][name] = value
  return cfg


def test_seed_ensemble_averages_its_members(tiny_data, tmp_path):
  cfg = _tiny_config(**{"model.members": 2})
  validation.validate_study(cfg)
  key, data = tiny_data
  assert study.data_key(cfg) == key
  (split,) = study.expand_splits(data.speech, "stratified")
  result = study.run_seed(cfg, data, split, 0, tmp_path)
  assert result["members"] == 2
  # Oracle: the members' speech classifiers (seeds 0 and 0 + seeds = 1,
  # restored from the pretraining cache), their softmaxes averaged by hand.
  feats, labels = data.feats[split.test], data.speech.labels[split.test]
  # The members' logits are the pipeline's own (a near-tie of the averaged
  # softmaxes must not be decided by another rounding), checked against a
  # direct apply to float32 tolerance.
  probs = []
  for seed in (0, 1):
    _, params = study.pretrain_speech(cfg, data, split, seed, tmp_path)
    net = nets.speech_net(cfg.speech, data.speech.num_classes)
    logits = make_predict_fn(net)(params, feats)
    np.testing.assert_allclose(logits, net.apply({"params": params}, feats),
                               rtol=1e-5, atol=1e-5)
    probs.append(np.asarray(jax.nn.softmax(logits)))
  expected = float((np.mean(probs, 0).argmax(-1) == labels).mean())
  assert result["speech_classifier_accuracy"] == expected
  single = study.run_seed(_tiny_config(), data, split, 0, tmp_path / "one")
  assert single["members"] == 1
  assert (single["speech_classifier_accuracy"] !=
          result["speech_classifier_accuracy"]
          or single["annotation"] != result["annotation"])
  with pytest.raises(ConfigError, match="model.members"):
    validation.validate_study(_tiny_config(**{"model.members": 0}))


def test_every_suite_names_loadable_experiments(study_cli, monkeypatch):
  names = [n for names, _ in study_cli.SUITES.values() for n in names]
  configs = [_load_config(study_cli, monkeypatch, n) for n in names]
  assert len(configs) >= 30
  assert len({c.name for c in configs}) == len(set(names))


def test_pretrained_speech_is_keyed_by_the_corpora_loaded(tiny_data, tmp_path):
  """"auto" may load other corpora from another data directory: the
  pretrained speech classifier is not reused across them."""
  cfg = _tiny_config()
  _, data = tiny_data
  (split,) = study.expand_splits(data.speech, "stratified")
  cfg.speech.steps = 1
  study.pretrain_speech(cfg, data, split, 0, tmp_path)
  other = dataclasses.replace(data, speech=dataclasses.replace(
      data.speech, source=data.speech.source + "+speech_commands:/x"))
  study.pretrain_speech(cfg, other, split, 0, tmp_path)
  assert len(list((tmp_path / "pretrained").glob("speech-*"))) == 2


def test_select_suite_chooses_per_outer_split_from_validation_runs(
    tmp_path, tiny_data):
  """`--suite=select` on nested splits: one validation run per (candidate,
  outer split), each scored on exactly the validation utterances
  `nested_splits` names, and a choice per outer split from those runs."""
  result = _study(tmp_path, "--suite=select", "--only=select,select_masks",
                  "--set=data.speech_splits=('nested:folds:2',)",
                  "--set=speech.augment='shift_mask'", "--seeds=1")
  _, data = tiny_data
  nested = study.expand_splits(data.speech, "nested:folds:2",
                               data.image_train, data.image_labels)
  chosen = result["selection"]
  assert chosen["outer"] == [s.outer for s in nested]
  assert set(chosen["choice"].values()) <= {"select", "select_masks"}
  for name in ("select", "select_masks"):
    for split in nested:
      run = json.loads((tmp_path / name / split.name / "seed_0"
                        / "result.json").read_text())
      assert run["outer"] == split.outer
      (corpus,) = run["by_corpus"].values()
      assert corpus["utterances"] == len(split.test)
      assert chosen["scores"][name][split.outer] == pytest.approx(
          corpus["r1_speech_to_image"])
  table = (tmp_path / "study.md").read_text()
  assert "| Candidate |" in table and "Choice per outer split" in table
