"""Data preparation for every experiment: load both corpora, split them,
featurise them. Data flows one way: sources -> splits -> features -> the
arrays the models see.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import time
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from avdigits import features
from avdigits.data import audio, sources, splits
from avdigits.data.types import SPEECH_CLASS_NAMES, ImageSet, SpeechSet
from avdigits.errors import ConfigError
from avdigits.inputs import speech_data


@dataclasses.dataclass
class Prepared:
  """Model-ready arrays of one data configuration."""
  train_images: np.ndarray        # float32 [N, 28, 28] in [-0.5, 0.5]
  train_image_labels: np.ndarray
  test_images: np.ndarray
  test_image_labels: np.ndarray
  train_speech: np.ndarray        # float32 [M, frames, bins]
  train_speech_labels: np.ndarray
  test_speech: np.ndarray
  test_speech_labels: np.ndarray
  num_speech_classes: int
  summary: dict[str, Any]
  test_speech_corpus: np.ndarray | None = None  # str [M]: each one's corpus


def _speakers(speech: SpeechSet, index: np.ndarray) -> list[str]:
  return sorted(set(speech.speakers[index].tolist()))


@dataclasses.dataclass
class Corpora:
  """Both corpora as loaded (before any split), with timings."""
  images: ImageSet
  speech: SpeechSet
  timings: dict[str, float]
  audio_checks: dict[str, Any]


def load_corpora(cfg: ml_collections.ConfigDict,
                 data_dir: pathlib.Path | None,
                 seed: int | None = None, *,
                 fixed_window: bool = True) -> Corpora:
  """Loads both modalities (synthetic ones drawn with `seed`, default
  `cfg.seed`); with features.trim, cuts each utterance's leading and
  trailing silence (`perturb.trim_silence`). `fixed_window`: the models
  see `features.num_frames` frames per utterance, so longer ones are
  counted (and warned about) as truncated."""
  seed = cfg.seed if seed is None else seed
  start = time.perf_counter()
  images = sources.load_images(
      cfg.data.images, data_dir, seed=seed,
      synthetic_per_class=cfg.data.synthetic_images_per_class)
  speech = sources.load_speech(
      cfg.data.speech, data_dir, seed=seed,
      sample_rate=cfg.data.sample_rate,
      synthetic_per_class=cfg.data.synthetic_speech_per_class,
      tidigits_children=cfg.data.tidigits_children)
  speech = speech_data.trim(cfg.features, speech)
  return Corpora(images, speech, {"load": time.perf_counter() - start},
                 _audio_checks(speech, cfg.features.num_frames
                               if fixed_window else None))


def speech_split_names(cfg: ml_collections.ConfigDict,
                       corpora: Corpora) -> list[str]:
  """The speech split specs one run covers: "loso" (no name) is every
  speaker of the first speech corpus in turn (every other corpus always
  trains: FSDD's five voices held out one by one, each model also trained
  on every Speech Commands person); "folds:K" is each of K speaker folds of
  the other corpora's people in turn (the first corpus always trains);
  anything else is itself."""
  folds = splits.fold_count(cfg.data.speech_split)
  if folds is not None:
    return [f"fold:{i}of{folds}" for i in range(folds)]
  if cfg.data.speech_split != "loso":
    return [cfg.data.speech_split]
  speech = corpora.speech
  speakers = sorted(set(speech.speakers[splits.first_corpus(speech)].tolist()))
  if len(speakers) < 2:
    raise ConfigError(f"--config.data.speech_split=loso: "
                      f"{corpora.speech.source} has {len(speakers)} "
                      f"speaker(s); leaving one out needs at least 2")
  return [f"loso:{name}" for name in speakers]


def prepare_data(cfg: ml_collections.ConfigDict,
                 data_dir: pathlib.Path | None, *,
                 split_override: str | None = None,
                 corpora: Corpora | None = None) -> Prepared:
  """Loads, splits and featurises both modalities.

  Args:
    cfg: the experiment config.
    data_dir: resolved data directory (or None for TFDS / synthetic).
    split_override: "all" makes every example test data (evaluation on
      another corpus); another speech split spec replaces the config's; None
      uses the config's splits.
    corpora: already loaded data (see `load_corpora`), else loaded here.

  The training utterances are expanded as the config's speech section asks
  (`speech_data.expand`: speed, VTLP, channel copies, synthetic voices).
  """
  corpora = corpora or load_corpora(cfg, data_dir)
  images, speech = corpora.images, corpora.speech
  timings = dict(corpora.timings)
  image_mode = ("all" if split_override == "all"
                else cfg.data.image_split)
  speech_spec = split_override or cfg.data.speech_split
  train_i, test_i = splits.image_split(
      images, mode=image_mode, test_fraction=cfg.data.test_fraction,
      seed=cfg.seed)
  train_i = splits.hold_out_validation(
      images, train_i, cfg.data.get("image_validation", 0))
  mode, held_out = splits.parse_speech_split(speech_spec)
  train_s, test_s = splits.speech_split(
      speech, mode=mode, held_out=held_out,
      test_fraction=cfg.data.test_fraction, seed=cfg.seed)
  digit_names = [str(d) for d in range(10)]
  for name, idx in (("train", train_i), ("test", test_i)):
    if len(idx) or name == "test":
      splits.check_classes(images.labels[idx], f"{name} split of "
                           f"{images.source}", 10, digit_names)
  for name, idx in (("train", train_s), ("test", test_s)):
    if len(idx) or name == "test":
      splits.check_classes(speech.labels[idx], f"{name} split of "
                           f"{speech.source}", speech.num_classes,
                           list(SPEECH_CLASS_NAMES[:speech.num_classes]))
  start = time.perf_counter()
  test_feats = speech_data.log_mel(
      cfg.features, [speech.waveforms[i] for i in test_s], speech.sample_rate)
  if cfg.features.get("speaker_norm", False):
    test_feats = features.speaker_normalise(test_feats,
                                            speech.speakers[test_s])
  train_feats, train_labels = np.zeros((0,) + test_feats.shape[1:],
                                       np.float32), speech.labels[train_s]
  if len(train_s):
    train_feats, train_labels = speech_data.training_set(
        cfg, speech, train_s, seed=cfg.seed)
  timings["features"] = time.perf_counter() - start
  scaled = np.asarray(features.scale_images(images.images))
  summary = _summary(images, speech, train_i, test_i, train_s, test_s,
                     image_mode, speech_spec)
  summary["counts"]["train_utterances_expanded"] = len(train_labels)
  summary["audio_checks"] = corpora.audio_checks
  summary["timings_s"] = timings
  return Prepared(
      train_images=scaled[train_i], train_image_labels=images.labels[train_i],
      test_images=scaled[test_i], test_image_labels=images.labels[test_i],
      train_speech=train_feats, train_speech_labels=train_labels,
      test_speech=test_feats, test_speech_labels=speech.labels[test_s],
      num_speech_classes=speech.num_classes, summary=summary,
      test_speech_corpus=(None if speech.corpus is None
                          else speech.corpus[test_s]))


def _audio_checks(speech: SpeechSet, num_frames: int | None
                  ) -> dict[str, Any]:
  """Counts utterances cut to the window (of `num_frames`, if any) or
  silent, with a warning."""
  longer = []
  if num_frames is not None:
    window = int(round((num_frames * 0.010 + 0.015) * speech.sample_rate))
    longer = [u for u, w in zip(speech.utterance_ids, speech.waveforms,
                                strict=True) if len(w) > window]
  silent = [u for u, w in zip(speech.utterance_ids, speech.waveforms,
                              strict=True) if audio.is_silent(w)]
  if longer:
    logging.warning("%d utterances are longer than the %d-frame window and "
                    "were truncated around their centre (e.g. %s)",
                    len(longer), num_frames, longer[0])
  if silent:
    logging.warning("%d utterances are silent (e.g. %s)", len(silent),
                    silent[0])
  return {"truncated_utterances": len(longer),
          "silent_utterances": len(silent),
          "silent_examples": [str(u) for u in silent[:5]]}


def _summary(images: ImageSet, speech: SpeechSet, train_i, test_i, train_s,
             test_s, image_split: str, speech_split: str) -> dict[str, Any]:
  synthetic = "synthetic" in images.source or "synthetic" in speech.source
  return {
      "image_source": images.source, "speech_source": speech.source,
      "synthetic": synthetic,
      "image_split": image_split, "speech_split": speech_split,
      "counts": {"train_images": len(train_i), "test_images": len(test_i),
                 "train_utterances": len(train_s),
                 "test_utterances": len(test_s)},
      "speakers": {"train": _speakers(speech, train_s),
                   "test": _speakers(speech, test_s)},
      "num_speech_classes": speech.num_classes,
      "sample_rate": speech.sample_rate,
      **({} if speech.corpus is None else {
          "test_speakers_by_corpus": _test_speakers_by_corpus(
              speech, train_s, test_s)}),
  }


def _test_speakers_by_corpus(speech: SpeechSet, train_s: np.ndarray,
                             test_s: np.ndarray) -> dict[str, dict[str, int]]:
  """Per corpus: its test speakers, and how many of them also train (0 for
  a speaker-independent split)."""
  heard = set(speech.speakers[train_s].tolist())
  out = {}
  for name in sorted(set(speech.corpus[test_s].tolist())):
    people = set(speech.speakers[test_s][speech.corpus[test_s] == name]
                 .tolist())
    out[name] = {"test_speakers": len(people),
                 "heard_in_training": len(people & heard)}
  return out


def _digests(arrays: Any) -> set[bytes]:
  """One digest per example (its bytes): an example's identity."""
  return {hashlib.blake2b(np.ascontiguousarray(a).tobytes(),
                          digest_size=16).digest() for a in arrays}


def _splits_of(cfg: ml_collections.ConfigDict, corpora: Corpora,
               speech_spec: str) -> tuple[np.ndarray, np.ndarray,
                                          np.ndarray, np.ndarray]:
  """(train images, test images, train utterances, test utterances) as
  `prepare_data` splits `corpora` for `cfg` and `speech_spec` ("all":
  every example is test data)."""
  everything = speech_spec == "all"
  train_i, test_i = splits.image_split(
      corpora.images, mode="all" if everything else cfg.data.image_split,
      test_fraction=cfg.data.test_fraction, seed=cfg.seed)
  train_i = splits.hold_out_validation(corpora.images, train_i,
                                       cfg.data.get("image_validation", 0))
  mode, held_out = splits.parse_speech_split(speech_spec, flag="--split")
  train_s, test_s = splits.speech_split(
      corpora.speech, mode=mode, held_out=held_out,
      test_fraction=cfg.data.test_fraction, seed=cfg.seed)
  return train_i, test_i, train_s, test_s


def check_unseen(trained_cfg: ml_collections.ConfigDict,
                 trained_data: dict[str, Any], cfg: ml_collections.ConfigDict,
                 corpora: Corpora, split: str) -> None:
  """Refuses evaluation data (`split` of `corpora` under `cfg`) that holds
  an image or utterance some model of a run trained on.

  A run's training examples are known where a corpus is the one it trained
  on (the same source as in its report's `trained_data`): there they are
  split again as the run split them (every held-out speaker's or fold's
  split of a "loso" or "folds:K" run) and compared with the evaluation
  examples by their bytes. A corpus from another source (another data
  directory) holds none of them.
  """
  _, test_i, _, test_s = _splits_of(cfg, corpora, split)
  held_out = trained_data["speakers"].get("held_out_in_turn")
  specs = (splits.in_turn_specs(trained_data["speech_split"], held_out)
           if held_out else [trained_cfg.data.speech_split])
  for spec in specs:
    train_i, _, train_s, _ = _splits_of(trained_cfg, corpora, spec)
    for what, key, source, train, test, examples in (
        ("images", "image_source", corpora.images.source, train_i, test_i,
         corpora.images.images),
        ("utterances", "speech_source", corpora.speech.source, train_s,
         test_s, corpora.speech.waveforms)):
      if source != trained_data[key]:
        continue
      seen = _digests(examples[i] for i in train) & _digests(
          examples[i] for i in test)
      if seen:
        raise ConfigError(
            f"--split={split}: {len(seen)} of its {len(test)} test {what} "
            f"trained the model of split {spec}; choose a split disjoint "
            f"from the training data, or --split=all on another data "
            f"directory")
