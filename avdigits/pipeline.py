"""The whole study as resumable stages: data -> features -> convnets ->
alignment -> evaluation. `experiments/reproduce.py` is a thin flag wrapper.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from avdigits import evaluate, features, models, speech_data
from avdigits.align import AlignSchedule, train_alignment
from avdigits.checkpoint import Checkpointer
from avdigits.data import audio, sources, splits
from avdigits.data.types import SPEECH_CLASS_NAMES, ImageSet, SpeechSet
from avdigits.errors import ConfigError
from avdigits.train import ClassifierSchedule, make_predict_fn, train_classifier
from avdigits.workdir import Stage


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


def _speakers(speech: SpeechSet, index: np.ndarray) -> list[str]:
  return sorted(set(speech.speakers[index].tolist()))


def validate_config(cfg: ml_collections.ConfigDict) -> None:
  """Checks every setting that needs no data, before anything runs."""
  from avdigits import augment
  from avdigits.optim import make_optimizer

  def positive(flag: str, value) -> None:
    if not value > 0:
      raise ConfigError(f"--config.{flag} must be > 0, got {value}")

  for flag in ("seeds", "data.sample_rate", "features.num_frames",
               "features.num_bins", "image.batch_size", "image.epochs",
               "speech.batch_size", "speech.steps", "speech.steps_per_chunk",
               "eval.trials"):
    section, _, name = flag.rpartition(".")
    positive(flag, (cfg[section] if section else cfg)[name])
  if not 0 < cfg.data.test_fraction < 1:
    raise ConfigError(f"--config.data.test_fraction must be in (0, 1), got "
                      f"{cfg.data.test_fraction}")
  if cfg.features.backend not in features.BACKENDS:
    raise ConfigError(f"--config.features.backend={cfg.features.backend!r}: "
                      f"choose one of {', '.join(features.BACKENDS)}")
  for section in ("image", "speech"):
    c = cfg[section]
    make_optimizer(c.optimizer, c.learning_rate, 1, schedule=c.lr_schedule,
                   decay_rate=c.get("lr_decay", 0.95),
                   l2=c.get("l2_dense", 0.0), flag=section)
    augment.validate(c.augment, section)
    if not 0 <= c.dropout < 1:
      raise ConfigError(f"--config.{section}.dropout must be in [0, 1), got "
                        f"{c.dropout}")
  if not cfg.speech.mixup >= 0:
    raise ConfigError(f"--config.speech.mixup must be >= 0, got "
                      f"{cfg.speech.mixup}")
  if cfg.speech.pool not in models.SPEECH_POOLS:
    raise ConfigError(f"--config.speech.pool={cfg.speech.pool!r}: choose one "
                      f"of {', '.join(models.SPEECH_POOLS)}")
  for hidden in cfg.speech.hidden_sizes:
    positive("speech.hidden_sizes", hidden)
  if cfg.align.speech_hidden not in cfg.speech.hidden_sizes:
    raise ConfigError(f"--config.align.speech_hidden="
                      f"{cfg.align.speech_hidden} is not among "
                      f"--config.speech.hidden_sizes="
                      f"{tuple(cfg.speech.hidden_sizes)}")
  speech_data.Expansion.from_config(cfg.speech).validate()
  align_schedule(cfg).validate()
  make_optimizer(cfg.align.optimizer, cfg.align.learning_rate, 1,
                 schedule=cfg.align.lr_schedule, flag="align")
  if cfg.data.speech_split != "loso":
    splits.parse_speech_split(cfg.data.speech_split)
  if cfg.data.images not in sources.IMAGE_SOURCES:
    raise ConfigError(f"--config.data.images={cfg.data.images!r}: choose "
                      f"one of {', '.join(sources.IMAGE_SOURCES)}")
  if cfg.data.speech not in sources.SPEECH_SOURCES:
    raise ConfigError(f"--config.data.speech={cfg.data.speech!r}: choose "
                      f"one of {', '.join(sources.SPEECH_SOURCES)}")


@dataclasses.dataclass
class Corpora:
  """Both corpora as loaded (before any split), with timings."""
  images: ImageSet
  speech: SpeechSet
  timings: dict[str, float]
  audio_checks: dict[str, Any]


def load_corpora(cfg: ml_collections.ConfigDict,
                 data_dir: pathlib.Path | None) -> Corpora:
  """Loads both modalities; with features.trim, cuts each utterance's
  leading and trailing silence (`perturb.trim_silence`)."""
  start = time.perf_counter()
  images = sources.load_images(
      cfg.data.images, data_dir, seed=cfg.seed,
      synthetic_per_class=cfg.data.synthetic_images_per_class)
  speech = sources.load_speech(
      cfg.data.speech, data_dir, seed=cfg.seed,
      sample_rate=cfg.data.sample_rate,
      synthetic_per_class=cfg.data.synthetic_speech_per_class,
      tidigits_children=cfg.data.tidigits_children)
  speech = speech_data.trim(cfg.features, speech)
  return Corpora(images, speech, {"load": time.perf_counter() - start},
                 _audio_checks(speech, cfg.features.num_frames))


def speech_split_names(cfg: ml_collections.ConfigDict,
                       corpora: Corpora) -> list[str]:
  """The speech split specs one run covers: "loso" (no name) is every
  speaker of the corpus in turn, anything else is itself."""
  if cfg.data.speech_split != "loso":
    return [cfg.data.speech_split]
  speakers = sorted(set(corpora.speech.speakers.tolist()))
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
      num_speech_classes=speech.num_classes, summary=summary)


def _audio_checks(speech: SpeechSet, num_frames: int) -> dict[str, Any]:
  """Counts utterances cut to the window or silent, with a warning."""
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
  }


def image_model(cfg: ml_collections.ConfigDict) -> models.ImageNet:
  kwargs = {"dropout": cfg.image.dropout}
  if cfg.image.conv_impl != "auto":
    kwargs["conv_impl"] = cfg.image.conv_impl
  return models.ImageNet(num_classes=10, **kwargs)


def speech_model(cfg: ml_collections.ConfigDict, hidden: int,
                 num_classes: int) -> models.SpeechNet:
  return models.SpeechNet(hidden=hidden, num_classes=num_classes,
                          dropout=cfg.speech.dropout, pool=cfg.speech.pool)


def save_params(stage: Stage, params) -> None:
  """Keeps a stage's final parameters beside its result."""
  checkpointer = Checkpointer(stage.directory / "params", max_to_keep=1)
  checkpointer.save(0, {"params": params})
  checkpointer.close()


def _restore_params(stage: Stage, template):
  """The final parameters of a finished stage, shaped like `template`."""
  return restore_params_from(stage.directory, template)


def init_params(model, *example: np.ndarray, seed: int = 0):
  return model.init(jax.random.key(seed),
                    *(jnp.asarray(e[:1]) for e in example))["params"]


def _image_schedule(cfg, num_train: int) -> ClassifierSchedule:
  if cfg.image.epochs <= 0:
    raise ConfigError(f"--config.image.epochs must be > 0, got "
                      f"{cfg.image.epochs}")
  if cfg.image.batch_size <= 0:
    raise ConfigError(f"--config.image.batch_size must be > 0, got "
                      f"{cfg.image.batch_size}")
  # As TensorFlow's convolutional.py: epochs * train_size // batch steps,
  # the learning rate decayed once per train_size / batch steps.
  per_epoch = num_train / cfg.image.batch_size
  return ClassifierSchedule(
      batch_size=cfg.image.batch_size,
      steps=max(cfg.image.epochs * num_train // cfg.image.batch_size, 1),
      steps_per_chunk=max(int(per_epoch), 1), optimizer=cfg.image.optimizer,
      learning_rate=cfg.image.learning_rate,
      lr_schedule=cfg.image.lr_schedule, weight_decay=cfg.image.weight_decay,
      augment=cfg.image.augment, max_shift=cfg.image.max_shift,
      lr_decay=cfg.image.lr_decay, steps_per_epoch=per_epoch,
      l2_dense=cfg.image.l2_dense)


def _speech_schedule(cfg) -> ClassifierSchedule:
  return ClassifierSchedule(
      batch_size=cfg.speech.batch_size, steps=cfg.speech.steps,
      steps_per_chunk=cfg.speech.steps_per_chunk,
      optimizer=cfg.speech.optimizer, learning_rate=cfg.speech.learning_rate,
      lr_schedule=cfg.speech.lr_schedule,
      weight_decay=cfg.speech.weight_decay, augment=cfg.speech.augment,
      max_shift=cfg.speech.max_shift, mixup=cfg.speech.mixup)


def classifier_stage(name: str, model, schedule: ClassifierSchedule,
                      train_x, train_y, test_x, test_y, *, seed: int,
                      workdir: pathlib.Path, data_key: dict, flag: str,
                      show_progress: bool) -> tuple[dict, Any]:
  settings = {"model": repr(model), "schedule": dataclasses.asdict(schedule),
              "seed": seed, "data": data_key}
  stage = Stage(workdir, name, settings)
  if stage.done():
    return stage.result(), _restore_params(
        stage, init_params(model, train_x, seed=seed))
  logging.info("stage %s: training %s", name, type(model).__name__)
  out = train_classifier(model, train_x, train_y, test_x, test_y, schedule,
                         seed=seed, stage=stage, flag=flag,
                         show_progress=show_progress)
  result = {"test_accuracy": out["test_accuracy"], "history": out["history"],
            "train_seconds": out["train_seconds"]}
  save_params(stage, out["params"])
  stage.finish(result)
  return result, out["params"]


def align_schedule(cfg) -> AlignSchedule:
  a = cfg.align
  return AlignSchedule(
      iterations=a.iterations, chunk=a.chunk, optimizer=a.optimizer,
      learning_rate=a.learning_rate, lr_schedule=a.lr_schedule,
      embed_dim=a.embed_dim, init_std=a.init_std, clamp=a.clamp,
      margin=a.margin, impl=a.impl, init=a.init)


def run_seed(cfg: ml_collections.ConfigDict, data: Prepared,
             workdir: pathlib.Path, seed: int, *,
             show_progress: bool = True,
             image_workdir: pathlib.Path | None = None) -> dict[str, Any]:
  """Runs (or resumes) every stage for one seed; returns its results.

  The image stage lives in `image_workdir` (default `workdir`), so speech
  splits that share the images share one image convnet.
  """
  if cfg.align.speech_hidden not in cfg.speech.hidden_sizes:
    raise ConfigError(f"--config.align.speech_hidden="
                      f"{cfg.align.speech_hidden} is not among "
                      f"--config.speech.hidden_sizes="
                      f"{tuple(cfg.speech.hidden_sizes)}")
  # Each stage is keyed on the data it sees, so that (say) a new speech
  # split reuses a finished image stage copied into the new workdir.
  counts = data.summary["counts"]
  image_key = {"source": data.summary["image_source"],
               "split": data.summary["image_split"],
               "train": counts["train_images"], "test": counts["test_images"],
               "test_fraction": cfg.data.test_fraction, "data_seed": cfg.seed}
  speech_key = {"source": data.summary["speech_source"],
                "split": data.summary["speech_split"],
                "train": counts["train_utterances"],
                "test": counts["test_utterances"],
                "test_fraction": cfg.data.test_fraction,
                "data_seed": cfg.seed, "features": cfg.features.to_dict()}
  expansion = speech_data.Expansion.from_config(cfg.speech)
  if not expansion.empty:
    speech_key["expansion"] = expansion.key()
  data_key = {"image": image_key, "speech": speech_key}
  timings = {}
  start = time.perf_counter()
  inet = image_model(cfg)
  image_result, image_params = classifier_stage(
      "image", inet, _image_schedule(cfg, len(data.train_image_labels)),
      data.train_images, data.train_image_labels, data.test_images,
      data.test_image_labels, seed=seed, workdir=image_workdir or workdir,
      data_key=image_key,
      flag="image", show_progress=show_progress)
  timings["image"] = time.perf_counter() - start
  speech_results, speech_params = {}, {}
  for hidden in cfg.speech.hidden_sizes:
    start = time.perf_counter()
    snet = speech_model(cfg, hidden, data.num_speech_classes)
    speech_results[str(hidden)], speech_params[hidden] = classifier_stage(
        f"speech_{hidden}", snet, _speech_schedule(cfg), data.train_speech,
        data.train_speech_labels, data.test_speech, data.test_speech_labels,
        seed=seed, workdir=workdir, data_key=speech_key, flag="speech",
        show_progress=show_progress)
    timings[f"speech_{hidden}"] = time.perf_counter() - start

  start = time.perf_counter()
  hidden = cfg.align.speech_hidden
  snet = speech_model(cfg, hidden, data.num_speech_classes)
  embed_image = make_predict_fn(inet, method="embed")
  embed_speech = make_predict_fn(snet, method="embed")
  schedule = align_schedule(cfg)
  stage = Stage(workdir, "align", {
      "schedule": dataclasses.asdict(schedule), "seed": seed,
      "data": data_key, "image": repr(inet), "speech": repr(snet)})
  aligner = models.Aligner(embed_dim=schedule.embed_dim,
                           init_std=schedule.init_std)
  if stage.done():
    align_result = stage.result()
    align_params = _restore_params(stage, init_params(
        aligner, np.zeros((1, 512), np.float32),
        np.zeros((1, data.num_speech_classes, hidden), np.float32)))
  else:
    out = train_alignment(
        embed_image(image_params, data.train_images),
        data.train_image_labels,
        embed_speech(speech_params[hidden], data.train_speech),
        data.train_speech_labels, data.num_speech_classes, schedule,
        seed=seed, stage=stage, show_progress=show_progress)
    align_result = {"history": out["history"], "start": out["start"],
                    "dead_level": out["dead_level"],
                    "train_seconds": out["train_seconds"]}
    align_params = out["params"]
    save_params(stage, align_params)
    stage.finish(align_result)
  timings["align"] = time.perf_counter() - start

  start = time.perf_counter()
  metrics = evaluate_models(
      cfg, data, image_params, speech_params[hidden], align_params, seed=seed)
  timings["evaluate"] = time.perf_counter() - start
  return {
      "seed": seed,
      "image_classifier": image_result,
      "speech_classifiers": speech_results,
      "align": align_result,
      **metrics,
      "timings_s": timings,
  }


def evaluate_models(cfg, data: Prepared, image_params, speech_params,
                    align_params, *, seed: int,
                    model_classes: int | None = None) -> dict[str, Any]:
  """Classifier accuracies, annotation, retrieval and recall on test data.

  Args:
    model_classes: speech classes the trained speech convnet has (default:
      the data's). Its accuracy counts only utterances of those classes.
  """
  hidden = cfg.align.speech_hidden
  model_classes = model_classes or data.num_speech_classes
  inet = image_model(cfg)
  snet = speech_model(cfg, hidden, model_classes)
  aligner = models.Aligner(embed_dim=cfg.align.embed_dim,
                           init_std=cfg.align.init_std)
  image_logits = make_predict_fn(inet)(image_params, data.test_images)
  speech_logits = make_predict_fn(snet)(speech_params, data.test_speech)
  w = make_predict_fn(inet, method="embed")(image_params, data.test_images)
  v = make_predict_fn(snet, method="embed")(speech_params, data.test_speech)
  scores = np.asarray(aligner.apply({"params": align_params}, w, v,
                                    method="score_matrix"))
  out = evaluate.evaluate_scores(
      scores, data.test_image_labels, data.test_speech_labels,
      data.num_speech_classes, trials=cfg.eval.trials, seed=seed)
  out["image_test_accuracy"] = float(
      (image_logits.argmax(-1) == data.test_image_labels).mean())
  known = data.test_speech_labels < model_classes
  out["speech_test_accuracy"] = float(
      (speech_logits.argmax(-1)[known] == data.test_speech_labels[known])
      .mean())
  return out


def split_dir(workdir: pathlib.Path, spec: str, specs: list[str]
              ) -> pathlib.Path:
  """Where one speech split's speech and alignment stages live: the workdir
  itself for a single split, `<workdir>/loso_<speaker>` under "loso"."""
  return workdir if len(specs) == 1 else workdir / spec.replace(":", "_")


def run_all(cfg: ml_collections.ConfigDict, data_dir: pathlib.Path | None,
            workdir: pathlib.Path, seeds: list[int], *,
            show_progress: bool = True
            ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
  """Every (speech split, seed) of a config: {spec: [run per seed]} and the
  data summary. One image convnet per seed serves every split."""
  corpora = load_corpora(cfg, data_dir)
  specs = speech_split_names(cfg, corpora)
  by_split, summary = {}, None
  for spec in specs:
    data = prepare_data(cfg, data_dir, corpora=corpora,
                        split_override=spec if len(specs) > 1 else None)
    if summary is None:
      summary = data.summary
    else:
      for name, seconds in data.summary["timings_s"].items():
        summary["timings_s"][name] = summary["timings_s"].get(
            name, 0.0) + seconds
    root = split_dir(workdir, spec, specs)
    by_split[spec] = [
        run_seed(cfg, data, root / f"seed_{seed}", seed,
                 show_progress=show_progress,
                 image_workdir=workdir / f"seed_{seed}")
        for seed in seeds]
  if len(specs) > 1:
    summary["speech_split"] = cfg.data.speech_split
    summary["speakers"] = {"held_out_in_turn": [s.partition(":")[2]
                                                for s in specs]}
  return by_split, summary


def load_trained(cfg, workdir: pathlib.Path, seed: int, model_classes: int,
                 speech_dir: pathlib.Path | None = None
                 ) -> tuple[Any, Any, Any]:
  """(image, speech, aligner) parameters of a finished seed in `workdir`
  (speech and aligner from `speech_dir`, default `workdir`)."""
  hidden = cfg.align.speech_hidden
  names = ("image", f"speech_{hidden}", "align")
  roots = (workdir / f"seed_{seed}",
           (speech_dir or workdir) / f"seed_{seed}",
           (speech_dir or workdir) / f"seed_{seed}")
  for name, root in zip(names, roots, strict=True):
    if not (root / name / "result.json").exists():
      raise ConfigError(f"--workdir={workdir}: stage {name} of seed {seed} "
                        f"({root}) has not finished; run "
                        f"experiments.reproduce first")
  image = np.zeros((1, 28, 28), np.float32)
  speech = np.zeros((1, cfg.features.num_frames, cfg.features.num_bins),
                    np.float32)
  aligner = models.Aligner(embed_dim=cfg.align.embed_dim,
                           init_std=cfg.align.init_std)
  templates = (
      init_params(image_model(cfg), image),
      init_params(speech_model(cfg, hidden, model_classes),
                   speech),
      init_params(aligner, np.zeros((1, 512), np.float32),
                   np.zeros((1, 1, hidden), np.float32)))
  return tuple(restore_params_from(root / name, t)
               for name, root, t in zip(names, roots, templates, strict=True))


def restore_params_from(directory: pathlib.Path, template):
  restored = Checkpointer(directory / "params").restore_latest(
      {"params": template})
  if restored is None:
    raise ConfigError(f"{directory}: parameters are unreadable")
  return jax.tree.map(np.asarray, restored[1]["params"])
