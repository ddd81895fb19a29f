"""The study: many experiments, each one config, every one over >= 5 seeds.

An experiment config (see experiments/configs/study/base.py) says how each
convnet enters the model (pretrained or random; frozen or trained end to
end), how the cross-modal model trains, on which speech splits, and whether
to measure robustness. `run_experiment` trains and evaluates every
(split, seed) as a resumable stage under <workdir>/<name>/, sharing
classifier pretraining between experiments through
<workdir>/pretrained/<part>-<hash of its settings>/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from avdigits import evaluate, features
from avdigits.data import splits
from avdigits.data.types import SpeechSet, speech_class_to_digit
from avdigits.errors import ConfigError
from avdigits.inputs import corrupt, prepare, speech_data
from avdigits.models import nets
from avdigits.study import validation
from avdigits.training import devices, joint, loop
from avdigits.training.align import train_alignment
from avdigits.training.classifier import ClassifierSchedule
from avdigits.training.predict import make_predict_fn
from avdigits.training.stages import classifier_stage
from avdigits.training.workdir import Stage


@dataclasses.dataclass
class StudyData:
  """Both corpora, featurised once, with the image split."""
  images: np.ndarray             # float32 [N, 28, 28] in [-0.5, 0.5]
  image_labels: np.ndarray
  image_train: np.ndarray        # indices
  image_test: np.ndarray
  speech: SpeechSet
  feats: np.ndarray              # float32 [M, frames, bins], clean
  noisy_cache: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SpeechSplit:
  """Utterances (and, where a split says, images) to train on and score.

  `image_train` / `image_test` default to the data's own image split; a
  nested split scores on a validation part of the training images instead.
  `outer` names the outer split whose training part a nested split divides.
  """
  name: str
  train: np.ndarray
  test: np.ndarray
  image_train: np.ndarray | None = None
  image_test: np.ndarray | None = None
  outer: str | None = None

  def images(self, data: StudyData) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) image indices of this split."""
    if self.image_train is None:
      return data.image_train, data.image_test
    return self.image_train, self.image_test


def data_key(cfg: ml_collections.ConfigDict) -> tuple:
  """What identifies the loaded data (experiments sharing it share loads)."""
  d, f = cfg.data, cfg.features
  return (d.images, d.speech, d.image_split, d.test_fraction, d.sample_rate,
          d.tidigits_children, d.synthetic_images_per_class,
          d.synthetic_speech_per_class, f.num_frames, f.num_bins,
          f.cmn) + tuple(name for name in ("trim", "speaker_norm", "cvn")
                         if f.get(name, False))


def log_mel(cfg, waveforms, sample_rate: int) -> np.ndarray:
  return speech_data.log_mel(cfg.features, waveforms, sample_rate)


def load_data(cfg: ml_collections.ConfigDict,
              data_dir: pathlib.Path | None) -> StudyData:
  """Loads (`prepare.load_corpora`, seed 0) and featurises the images and
  speech an experiment names."""
  corpora = prepare.load_corpora(cfg, data_dir, seed=0)
  images, speech = corpora.images, corpora.speech
  d = cfg.data
  train_i, test_i = splits.image_split(images, mode=d.image_split,
                                       test_fraction=d.test_fraction, seed=0)
  feats = log_mel(cfg, speech.waveforms, speech.sample_rate)
  if cfg.features.get("speaker_norm", False):
    feats = features.speaker_normalise(feats, speech.speakers)
  return StudyData(
      images=np.asarray(features.scale_images(images.images)),
      image_labels=images.labels, image_train=train_i, image_test=test_i,
      speech=speech, feats=feats)


# Inner validation folds of a nested split's other corpora (people hashed
# into this many folds, as `splits.speaker_fold`).
NESTED_FOLDS = 5


def _outer_splits(speech: SpeechSet, spec: str) -> list[SpeechSplit]:
  """"loso:*": each speaker of the first corpus in turn (every other
  corpus always trains, as `reproduce`'s loso); "folds:K": with several
  corpora, `splits` fold:IofK (the other corpora's people, hashed), with one
  corpus, its sorted speakers dealt round-robin into K folds."""
  in_first = splits.first_corpus(speech)
  first = sorted(set(speech.speakers[in_first].tolist()))
  if spec == "loso:*":
    return _from_specs(speech, [(name, f"loso:{name}") for name in first])
  k = _fold_k(spec, speech)
  if not in_first.all():
    return _from_specs(speech, [(f"fold{i}", f"fold:{i}of{k}")
                                for i in range(k)])
  return _from_specs(speech, [(f"fold{i}", "speakers:" + ",".join(first[i::k]))
                              for i in range(k)])


def _fold_k(spec: str, speech: SpeechSet) -> int:
  k = splits.fold_count(spec, flag="--config.data.speech_splits")
  count = len(set(speech.speakers[splits.fold_pool(speech)].tolist()))
  if not 2 <= k <= count:
    raise ConfigError(f"--config.data.speech_splits: {spec!r} needs "
                      f"2 <= K <= {count} speakers")
  return k


def _from_specs(speech: SpeechSet, specs: list[tuple[str, str]]
                ) -> list[SpeechSplit]:
  out = []
  for name, one in specs:
    mode, held_out = splits.parse_speech_split(
        one, flag="--config.data.speech_splits")
    train, test = splits.speech_split(speech, mode=mode, held_out=held_out,
                                      seed=0)
    out.append(SpeechSplit(name, train, test))
  return out


def nested_splits(speech: SpeechSet, outer: list[SpeechSplit],
                  image_train: np.ndarray, image_labels: np.ndarray
                  ) -> list[SpeechSplit]:
  """One validation split inside each outer split's training part.

  Outer split i validates on training people only: the (i mod n)-th of
  the first corpus's speakers left in its training part and, with several
  corpora, the other corpora's people of hash fold (i + 1) mod
  NESTED_FOLDS (`splits.speaker_fold`; never the outer fold i of a
  "folds:5" split); the rest of its training part trains. Images: a seeded
  stratified 20% of the training images validates, the rest trains. No
  outer test utterance or test image enters either part, so a choice made
  per outer split on its validation scores is nested.
  """
  first = splits.first_corpus(speech)
  folds = np.array([splits.speaker_fold(s, NESTED_FOLDS)
                    for s in speech.speakers.tolist()])
  fit, val = splits.stratified_split(image_labels[image_train],
                                     test_fraction=0.2, seed=0)
  out = []
  for i, split in enumerate(outer):
    pool = np.zeros(len(speech), bool)
    pool[split.train] = True
    candidates = sorted(set(speech.speakers[pool & first].tolist()))
    if len(candidates) < 2:
      raise ConfigError(f"--config.data.speech_splits: nested split of "
                        f"{split.name} needs 2 training speakers of "
                        f"{speech.source}'s first corpus")
    held = pool & (speech.speakers == candidates[i % len(candidates)])
    if not first.all():
      held |= pool & ~first & (folds == (i + 1) % NESTED_FOLDS)
    out.append(SpeechSplit(
        f"{split.name}-val", np.flatnonzero(pool & ~held),
        np.flatnonzero(held), image_train=image_train[fit],
        image_test=image_train[val], outer=split.name))
  return out


def expand_splits(speech: SpeechSet, spec: str,
                  image_train: np.ndarray | None = None,
                  image_labels: np.ndarray | None = None
                  ) -> list[SpeechSplit]:
  """One spec -> its splits: "loso:*", "folds:K", "nested:loso:*",
  "nested:folds:K", "loso_val:*", "children" or any
  splits.parse_speech_split form.

  "nested:S" is, for each split of S, its validation split
  (`nested_splits`; needs the training images' indices and all labels).

  "loso_val:*" is the earlier validation protocol, kept for its documented
  figures: for each test speaker S (sorted), the next speaker V is the
  validation speaker and the rest train; split "S-val-V" trains without S
  and V and scores on V. It is not nested selection: V is another split's
  test speaker, so a choice averaged over these splits has seen every test
  speaker; and it scores V against the data's image test part.
  """
  if spec.startswith("nested:"):
    if image_train is None or image_labels is None:
      raise ConfigError(f"--config.data.speech_splits: {spec!r} needs the "
                        "training images")
    return nested_splits(speech, _outer_splits(speech, spec[len("nested:"):]),
                         image_train, image_labels)
  speakers = sorted(set(speech.speakers.tolist()))
  if spec == "loso_val:*":
    if len(speakers) < 3:
      raise ConfigError(f"--config.data.speech_splits: 'loso_val:*' needs "
                        f"3 speakers or more; {speech.source} has "
                        f"{len(speakers)}")
    out = []
    for i, test_speaker in enumerate(speakers):
      val = speakers[(i + 1) % len(speakers)]
      keep = ~np.isin(speech.speakers, [test_speaker, val])
      out.append(SpeechSplit(f"{test_speaker}-val-{val}", np.flatnonzero(keep),
                             np.flatnonzero(speech.speakers == val)))
    return out
  if spec == "loso:*" or spec.startswith("folds:"):
    return _outer_splits(speech, spec)
  if spec == "children":
    child = np.char.startswith(speech.speakers.astype(str), ("boy/")) | (
        np.char.startswith(speech.speakers.astype(str), "girl/"))
    if not child.any():
      raise ConfigError(f"split 'children': {speech.source} has no boy/ or "
                        "girl/ speakers (set data.tidigits_children)")
    train = np.flatnonzero(~child & (speech.subset != "test"))
    test = np.flatnonzero(child & (speech.subset == "test"))
    return [SpeechSplit("children", train, test)]
  return _from_specs(speech, [(spec, spec)])


def _hash(settings: dict) -> str:
  text = json.dumps(settings, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:10]


def noisy_copies(waveforms: list, copies: int, seed: int) -> list:
  """`copies` noisy versions of every waveform: white and babble noise (from
  the other utterances) alternately, at SNRs drawn from [0, 20] dB."""
  rng = np.random.default_rng(seed)
  out = []
  for copy in range(copies):
    kind = corrupt.AUDIO_NOISES[copy % 2]
    for i, wave in enumerate(waveforms):
      snr = float(rng.uniform(0.0, 20.0))
      out += corrupt.add_noise([wave], kind, snr,
                               seed=int(rng.integers(2**31)),
                               pool=waveforms[:i] + waveforms[i + 1:]
                               if kind == "babble" else ())
  return out


def pretrain_image(cfg, data: StudyData, split: SpeechSplit, seed: int,
                   workdir: pathlib.Path) -> tuple[dict, Any]:
  """The image classifier of `seed` on the split's training images
  (trained once per settings)."""
  train_i, test_i = split.images(data)
  train_x = data.images[train_i]
  schedule = ClassifierSchedule.from_config(cfg.image, len(train_x))
  model = nets.image_net(cfg.image)
  key = {"data": list(data_key(cfg)), "model": repr(model),
         "schedule": dataclasses.asdict(schedule)}
  if split.image_train is not None:
    key["images"] = hashlib.sha256(train_i.tobytes()).hexdigest()[:10]
  return classifier_stage(
      f"seed_{seed}", model, schedule, train_x,
      data.image_labels[train_i], data.images[test_i],
      data.image_labels[test_i], seed=seed,
      workdir=workdir / "pretrained" / f"image-{_hash(key)}",
      data_key=key, flag="image", show_progress=False,
      scan=cfg.get("scan_steps", "auto"))


def pretrain_speech(cfg, data: StudyData, split: SpeechSplit, seed: int,
                    workdir: pathlib.Path) -> tuple[dict, Any]:
  """The speech classifier of `seed` on `split` (trained once)."""
  speech = data.speech
  expansion = speech_data.Expansion.from_config(cfg.speech)
  train_x, train_y = data.feats[split.train], speech.labels[split.train]
  if not expansion.empty:
    train_x, train_y = speech_data.training_set(cfg, speech, split.train,
                                                seed=seed)
  if cfg.speech.noise_copies:
    waves = [speech.waveforms[i] for i in split.train]
    noisy = noisy_copies(waves, cfg.speech.noise_copies, seed=1000 + seed)
    train_x = np.concatenate([train_x, log_mel(cfg, noisy,
                                               speech.sample_rate)])
    train_y = np.tile(train_y, cfg.speech.noise_copies + 1)
  schedule = ClassifierSchedule.from_config(cfg.speech, len(train_y))
  model = nets.speech_net(cfg.speech, speech.num_classes)
  # The loaded corpora themselves, not only the config's name for them
  # ("auto" takes whatever the data directory holds).
  key = {"data": list(data_key(cfg)), "speech_source": speech.source,
         "split": split.name, "model": repr(model),
         "schedule": dataclasses.asdict(schedule),
         "noise_copies": cfg.speech.noise_copies}
  if not expansion.empty:
    key["expansion"] = expansion.key()
  return classifier_stage(
      f"seed_{seed}", model, schedule, train_x, train_y,
      data.feats[split.test], speech.labels[split.test], seed=seed,
      workdir=workdir / "pretrained" / f"speech-{_hash(key)}",
      data_key=key, flag="speech", show_progress=False,
      scan=cfg.get("scan_steps", "auto"))


@dataclasses.dataclass
class _Part:
  """How one modality enters the joint model for one seed."""
  net: Any                     # the convnet inside the model, or None
  pretrained: Any              # its classifier params to start from, or None
  inputs: Any                  # raw inputs -> model inputs
  classifier_accuracy: float | None
  classifier: tuple[Any, Any] | None  # (net, params) when pretrained


def _part(kind: str, net, train_raw: np.ndarray, seed: int,
          pretrain) -> _Part:
  classifier = None
  if kind.startswith("pretrained"):
    result, params = pretrain()
    accuracy = result["test_accuracy"]
    classifier = (net, params)
  else:
    params = nets.init_params(net, train_raw, seed=seed + 7919)
    accuracy = None
  if kind.endswith("tuned"):
    return _Part(net, params if kind.startswith("pretrained") else None,
                 lambda raw: raw, accuracy, classifier)
  embed = make_predict_fn(net, method="embed")
  return _Part(None, None, lambda raw: embed(params, raw), accuracy,
               classifier)


def noisy_test_features(cfg, data: StudyData, split: SpeechSplit, kind: str,
                        snr_db: float) -> np.ndarray:
  """Features of the split's test utterances under noise (cached)."""
  key = (split.name, kind, snr_db)
  if key not in data.noisy_cache:
    waves = [data.speech.waveforms[i] for i in split.test]
    pool = [data.speech.waveforms[i] for i in split.train]
    noisy = corrupt.add_noise(waves, kind, snr_db,
                              seed=int(round(snr_db * 10)) % 100_003,
                              pool=pool)
    data.noisy_cache[key] = log_mel(cfg, noisy, data.speech.sample_rate)
  return data.noisy_cache[key]


def _scores_eval(cfg, scores, image_labels, speech_labels, num_classes,
                 seed) -> dict[str, Any]:
  out = evaluate.evaluate_scores(scores, image_labels, speech_labels,
                                 num_classes, trials=cfg.eval.trials,
                                 seed=seed)
  return {"annotation": out["annotation"]["accuracy"],
          "retrieval": out["retrieval"]["accuracy"],
          "annotation_confusion": out["annotation"]["confusion"],
          "recall": out["recall"]}


def robustness(cfg, data: StudyData, split: SpeechSplit, score,
               seed: int) -> dict[str, list]:
  """Annotation and retrieval under each corruption and strength."""
  image_test = split.images(data)[1]
  test_images = data.images[image_test]
  image_labels = data.image_labels[image_test]
  clean_speech = data.feats[split.test]
  speech_labels = data.speech.labels[split.test]
  n = data.speech.num_classes
  curves = {}
  for kind, strengths in (("noise", cfg.eval.image_noise),
                          ("occlusion", cfg.eval.occlusion)):
    curves[f"image_{kind}"] = []
    for s in strengths:
      images = corrupt.corrupt_images(test_images, kind, s, seed=17)
      r = _scores_eval(cfg, score(images, clean_speech), image_labels,
                       speech_labels, n, seed)
      curves[f"image_{kind}"].append(
          {"strength": s, "annotation": r["annotation"],
           "retrieval": r["retrieval"]})
  for kind in corrupt.AUDIO_NOISES:
    curves[f"audio_{kind}"] = []
    for snr in cfg.eval.snr_db:
      speech = noisy_test_features(cfg, data, split, kind, float(snr))
      r = _scores_eval(cfg, score(test_images, speech), image_labels,
                       speech_labels, n, seed)
      curves[f"audio_{kind}"].append(
          {"strength": snr, "annotation": r["annotation"],
           "retrieval": r["retrieval"]})
  return curves


def _experiment_settings(cfg) -> dict[str, Any]:
  return {k: cfg[k].to_dict() for k in ("data", "features", "image", "speech",
                                         "model", "train")}


@dataclasses.dataclass
class _Member:
  """One trained model of a (split, seed) run."""
  score: Any                   # (images, spectrograms) -> score matrix
  image: _Part
  speech: _Part
  out: dict[str, Any]          # the cross-modal trainer's result


def _train_member(cfg, data: StudyData, split: SpeechSplit, seed: int,
                  workdir: pathlib.Path, stage: Stage) -> _Member:
  """Pretrains (cached), then trains or resumes one model in `stage`."""
  speech = data.speech
  num_classes = speech.num_classes
  image_train = split.images(data)[0]
  train_images = data.images[image_train]
  train_feats = data.feats[split.train]
  image = _part(cfg.model.image, nets.image_net(cfg.image), train_images,
                seed, lambda: pretrain_image(cfg, data, split, seed, workdir))
  sp = _part(cfg.model.speech, nets.speech_net(cfg.speech, num_classes),
             train_feats,
             seed, lambda: pretrain_speech(cfg, data, split, seed, workdir))
  model = joint.JointModel(aligner=nets.aligner(cfg.model),
                           image_net=image.net, speech_net=sp.net)
  image_in = image.inputs(train_images)
  speech_in = sp.inputs(train_feats)
  image_digits = data.image_labels[image_train]
  speech_labels = speech.labels[split.train]
  t = cfg.train
  if t.trainer == "paper_sgd":
    schedule = validation.study_align_schedule(cfg)
    out = train_alignment(image_in, image_digits, speech_in, speech_labels,
                          num_classes, schedule, seed=seed, stage=stage,
                          flag="train", show_progress=False)
    out["params"] = {"aligner": out["params"]}
  else:
    pretrained = {name: part.pretrained for name, part in
                  (("image_net", image), ("speech_net", sp))
                  if part.pretrained is not None}
    out = joint.train_joint(model, image_in, image_digits, speech_in,
                            speech_labels, num_classes,
                            joint.JointSchedule.from_config(t),
                            seed=seed, stage=stage, flag="train",
                            pretrained=pretrained)
  params = out["params"]

  def score(images: np.ndarray, feats: np.ndarray) -> np.ndarray:
    return joint.score_matrix(model, params, image.inputs(images),
                              sp.inputs(feats))

  return _Member(score, image, sp, out)


def _ensemble_speech_accuracy(members: list[_Member], feats: np.ndarray,
                              labels: np.ndarray) -> float | None:
  """Accuracy of the members' speech classifiers' mean softmax."""
  if any(m.speech.classifier is None for m in members):
    return None
  probs = np.mean([jax.nn.softmax(make_predict_fn(net)(params, feats))
                   for net, params in (m.speech.classifier for m in members)],
                  axis=0)
  return float((probs.argmax(-1) == labels).mean())


def corpus_recall(scores: np.ndarray, image_digits: np.ndarray,
                  speech_classes: np.ndarray, corpora: np.ndarray
                  ) -> dict[str, dict[str, float]]:
  """Per corpus of the scored utterances: how many, and the fraction whose
  best-scoring image shows their digit (R@1 speech -> image; defined for
  any subset of classes, unlike annotation)."""
  digits = speech_class_to_digit(speech_classes)
  out = {}
  for name in sorted(set(corpora.tolist())):
    cols = corpora == name
    out[name] = {"utterances": int(cols.sum()), "r1_speech_to_image":
                 evaluate.recall_at_k(scores[:, cols].T, digits[cols],
                                      image_digits)["R@1"]}
  return out


def run_seed(cfg, data: StudyData, split: SpeechSplit, seed: int,
             workdir: pathlib.Path) -> dict[str, Any]:
  """Trains and evaluates one (split, seed) of an experiment (resumable).

  With `model.members` = k > 1 the run is a seed ensemble: members with
  seeds seed, seed + seeds, ..., seed + (k-1) seeds (member 0 is the
  single-model run of the same seed), scored by the mean of their score
  matrices, the speech classifier by the mean of their softmaxes.
  """
  speech = data.speech
  stage = Stage(workdir / cfg.name / split.name, f"seed_{seed}",
                {"experiment": _experiment_settings(cfg), "seed": seed,
                 "split": split.name,
                 "eval": cfg.eval.to_dict()})

  def train() -> tuple[dict[str, Any], Any]:
    start = time.perf_counter()
    members = [_train_member(cfg, data, split, seed, workdir, stage)]
    for m in range(1, cfg.model.get("members", 1)):
      member_seed = seed + m * cfg.seeds
      member_stage = Stage(workdir / cfg.name / split.name,
                           f"seed_{seed}_member_{m}",
                           {"experiment": _experiment_settings(cfg),
                            "seed": member_seed, "split": split.name})
      members.append(_train_member(cfg, data, split, member_seed, workdir,
                                   member_stage))
    first = members[0]

    def score(images: np.ndarray, feats: np.ndarray) -> np.ndarray:
      return np.mean([m.score(images, feats) for m in members], axis=0)

    image_test = split.images(data)[1]
    test_feats, test_labels = data.feats[split.test], speech.labels[split.test]
    scores = score(data.images[image_test], test_feats)
    if split.outer is not None and len(set(test_labels.tolist())) < (
        speech.num_classes):
      # A validation part may lack classes (annotation needs every one);
      # recall is defined for any.
      result = {"annotation": None, "retrieval": None,
                "recall": evaluate.recall_both_ways(
                    scores, data.image_labels[image_test],
                    speech_class_to_digit(test_labels))}
    else:
      result = _scores_eval(cfg, scores, data.image_labels[image_test],
                            test_labels, speech.num_classes, seed)
    if split.outer is not None:
      result["by_corpus"] = corpus_recall(
          scores, data.image_labels[image_test], test_labels,
          speech.corpus[split.test] if speech.corpus is not None
          else np.full(len(split.test), speech.source))
    speech_accuracy = first.speech.classifier_accuracy
    if len(members) > 1:
      speech_accuracy = _ensemble_speech_accuracy(members, test_feats,
                                                  test_labels)
    result.update({
        "seed": seed, "split": split.name, "outer": split.outer,
        "image_classifier_accuracy": first.image.classifier_accuracy,
        "speech_classifier_accuracy": speech_accuracy,
        "history": first.out["history"],
        "members": len(members),
        "train_seconds": sum(m.out["train_seconds"] for m in members)})
    if cfg.eval.robustness:
      result["robustness"] = robustness(cfg, data, split, score, seed)
    result["seconds"] = time.perf_counter() - start
    return result, jax.tree.map(np.asarray, first.out["params"])

  return loop.run_stage(stage, train)[0]


def run_experiment(cfg: ml_collections.ConfigDict, data: StudyData,
                   workdir: pathlib.Path) -> dict[str, Any]:
  """Every split and seed of one experiment; returns the per-run results."""
  validation.validate_study(cfg)
  devices.set_precision(cfg.get("matmul_precision", "highest"))
  runs = []
  for spec in cfg.data.speech_splits:
    for split in expand_splits(data.speech, spec, data.image_train,
                               data.image_labels):
      for seed in range(cfg.seeds):
        logging.info("study %s: split %s seed %d", cfg.name, split.name,
                     seed)
        runs.append(run_seed(cfg, data, split, seed, workdir))
  return {"name": cfg.name, "title": cfg.title, "runs": runs}

