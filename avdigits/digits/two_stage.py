"""The paper's model, run by `experiments.reproduce`: per seed, an image
convnet and speech convnets trained as classifiers, then the aligner on
their frozen activations, then evaluation. Every stage is resumable; the
study (`avdigits.study`) runs its experiments beside it on the same
library pieces (prepare, nets, stages, loop, predict).
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Any

import ml_collections
import numpy as np

from avdigits.data import splits
from avdigits.digits import validation
from avdigits.errors import ConfigError
from avdigits.inputs import prepare, speech_data
from avdigits.models import nets
from avdigits.training import checkpoint, devices, loop, predict, stages
from avdigits.training.align import AlignSchedule, train_alignment
from avdigits.training.classifier import ClassifierSchedule
from avdigits.training.stages import classifier_stage
from avdigits.training.workdir import Stage, split_dir


def data_keys(cfg: ml_collections.ConfigDict, data: prepare.Prepared
              ) -> dict[str, dict[str, Any]]:
  """What identifies the data each stage sees ("image", "speech"), so that
  a new speech split reuses a finished image stage."""
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
  return {"image": image_key, "speech": speech_key}


def align_stage(cfg: ml_collections.ConfigDict, data: prepare.Prepared,
                image_params: Any, speech_params: Any, *, seed: int,
                workdir: pathlib.Path, data_key: dict[str, Any],
                show_progress: bool) -> tuple[dict[str, Any], Any]:
  """(result, params) of the aligner on the convnets' frozen activations."""
  hidden = cfg.align.speech_hidden
  inet = nets.image_net(cfg.image)
  snet = nets.speech_net(cfg.speech, data.num_speech_classes, hidden)
  schedule = AlignSchedule.from_config(cfg.align)
  stage = Stage(workdir, "align", {
      "schedule": dataclasses.asdict(schedule), "seed": seed,
      "data": data_key, "image": repr(inet), "speech": repr(snet)})

  def train() -> tuple[dict[str, Any], Any]:
    embed_image = predict.make_predict_fn(inet, method="embed")
    embed_speech = predict.make_predict_fn(snet, method="embed")
    out = train_alignment(
        embed_image(image_params, data.train_images),
        data.train_image_labels,
        embed_speech(speech_params, data.train_speech),
        data.train_speech_labels, data.num_speech_classes, schedule,
        seed=seed, stage=stage, show_progress=show_progress)
    return {"history": out["history"], "start": out["start"],
            "dead_level": out["dead_level"],
            "train_seconds": out["train_seconds"]}, out["params"]

  return loop.run_stage(stage, train, lambda: _aligner_template(cfg, hidden))


def _aligner_template(cfg: ml_collections.ConfigDict, hidden: int) -> Any:
  return nets.init_params(nets.aligner(cfg.align),
                          np.zeros((1, 512), np.float32),
                          np.zeros((1, 1, hidden), np.float32))


def _image_classifier(cfg: ml_collections.ConfigDict,
                      data: prepare.Prepared) -> tuple:
  """(stage name, model, schedule, train x, y, test x, y) of the image
  convnet."""
  return ("image", nets.image_net(cfg.image),
          ClassifierSchedule.from_config(cfg.image,
                                         len(data.train_image_labels)),
          data.train_images, data.train_image_labels, data.test_images,
          data.test_image_labels)


def _speech_classifier(cfg: ml_collections.ConfigDict,
                       data: prepare.Prepared, hidden: int) -> tuple:
  """The same for the speech convnet with `hidden` units."""
  return (f"speech_{hidden}",
          nets.speech_net(cfg.speech, data.num_speech_classes, hidden),
          ClassifierSchedule.from_config(cfg.speech,
                                         len(data.train_speech_labels)),
          data.train_speech, data.train_speech_labels, data.test_speech,
          data.test_speech_labels)


def train_seeds_together(cfg: ml_collections.ConfigDict,
                         data: prepare.Prepared, workdir: pathlib.Path,
                         root: pathlib.Path, seeds: list[int], *,
                         show_progress: bool) -> None:
  """The classifier stages of every seed, each trained for all seeds at
  once (`stages.train_classifier_stages`); `run_seed` restores them."""
  keys = data_keys(cfg, data)
  scan = cfg.get("scan_steps", "auto")
  stages.train_classifier_stages(
      *_image_classifier(cfg, data), seeds=seeds,
      workdirs=[workdir / f"seed_{s}" for s in seeds], data_key=keys["image"],
      flag="image", show_progress=show_progress, scan=scan)
  for hidden in cfg.speech.hidden_sizes:
    stages.train_classifier_stages(
        *_speech_classifier(cfg, data, hidden), seeds=seeds,
        workdirs=[root / f"seed_{s}" for s in seeds],
        data_key=keys["speech"], flag="speech", show_progress=show_progress,
        scan=scan)


def run_seed(cfg: ml_collections.ConfigDict, data: prepare.Prepared,
             workdir: pathlib.Path, seed: int, *,
             show_progress: bool = True,
             image_workdir: pathlib.Path | None = None) -> dict[str, Any]:
  """Runs (or resumes) every stage for one seed; returns its results.

  The image stage lives in `image_workdir` (default `workdir`), so speech
  splits that share the images share one image convnet.
  """
  keys = data_keys(cfg, data)
  scan = cfg.get("scan_steps", "auto")
  timings = {}
  start = time.perf_counter()
  image_result, image_params = classifier_stage(
      *_image_classifier(cfg, data), seed=seed,
      workdir=image_workdir or workdir, data_key=keys["image"], flag="image",
      show_progress=show_progress, scan=scan)
  timings["image"] = time.perf_counter() - start
  speech_results, speech_params = {}, {}
  for hidden in cfg.speech.hidden_sizes:
    start = time.perf_counter()
    speech_results[str(hidden)], speech_params[hidden] = classifier_stage(
        *_speech_classifier(cfg, data, hidden), seed=seed, workdir=workdir,
        data_key=keys["speech"], flag="speech", show_progress=show_progress,
        scan=scan)
    timings[f"speech_{hidden}"] = time.perf_counter() - start

  start = time.perf_counter()
  hidden = cfg.align.speech_hidden
  align_result, align_params = align_stage(
      cfg, data, image_params, speech_params[hidden], seed=seed,
      workdir=workdir, data_key=keys, show_progress=show_progress)
  timings["align"] = time.perf_counter() - start

  start = time.perf_counter()
  metrics = predict.evaluate_models(
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


def run_all(cfg: ml_collections.ConfigDict, data_dir: pathlib.Path | None,
            workdir: pathlib.Path, seeds: list[int], *,
            show_progress: bool = True
            ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
  """Every (speech split, seed) of a config: {spec: [run per seed]} and the
  data summary. One image convnet per seed serves every split."""
  validation.validate_reproduce(cfg)
  devices.set_precision(cfg.get("matmul_precision", "highest"))
  corpora = prepare.load_corpora(cfg, data_dir)
  specs = prepare.speech_split_names(cfg, corpora)
  by_split, summary = {}, None
  for spec in specs:
    data = prepare.prepare_data(
        cfg, data_dir, corpora=corpora,
        split_override=spec if len(specs) > 1 else None)
    if summary is None:
      summary = data.summary
    else:
      for name, seconds in data.summary["timings_s"].items():
        summary["timings_s"][name] = summary["timings_s"].get(
            name, 0.0) + seconds
    root = split_dir(workdir, spec, specs)
    if len(seeds) > 1 and devices.on_accelerator(
        cfg.get("parallel_seeds", "auto"), "parallel_seeds"):
      train_seeds_together(cfg, data, workdir, root, seeds,
                           show_progress=show_progress)
    by_split[spec] = [
        run_seed(cfg, data, root / f"seed_{seed}", seed,
                 show_progress=show_progress,
                 image_workdir=workdir / f"seed_{seed}")
        for seed in seeds]
  if len(specs) > 1:
    summary.update(splits.held_out_in_turn(cfg.data.speech_split, specs))
  return by_split, summary


def load_trained(cfg: ml_collections.ConfigDict, workdir: pathlib.Path,
                 seed: int, model_classes: int,
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
  templates = (
      nets.init_params(nets.image_net(cfg.image),
                       np.zeros((1, 28, 28), np.float32)),
      nets.init_params(nets.speech_net(cfg.speech, model_classes, hidden),
                       np.zeros((1, cfg.features.num_frames,
                                 cfg.features.num_bins), np.float32)),
      _aligner_template(cfg, hidden))
  return tuple(checkpoint.restore_params(root / name, t)
               for name, root, t in zip(names, roots, templates, strict=True))
