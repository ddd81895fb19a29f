"""Training stages every experiment shares: a classifier as one resumable
stage of a workdir (`loop.run_stage` around `train.train_classifier`)."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import flax.linen as nn
import numpy as np
from absl import logging

from avdigits.models import nets
from avdigits.training import loop
from avdigits.training.classifier import (
  ClassifierSchedule,
  train_classifier,
  train_classifiers,
)
from avdigits.training.workdir import Stage


def _result(out: dict[str, Any]) -> dict[str, Any]:
  """What a classifier stage's result.json keeps of its training."""
  return {k: out[k] for k in ("test_accuracy", "history", "train_seconds")}


def _stage(workdir: pathlib.Path, name: str, model: nn.Module,
           schedule: ClassifierSchedule, seed: int,
           data_key: dict[str, Any]) -> Stage:
  return Stage(workdir, name, {"model": repr(model),
                               "schedule": dataclasses.asdict(schedule),
                               "seed": seed, "data": data_key})


def classifier_stage(name: str, model: nn.Module,
                     schedule: ClassifierSchedule, train_x: np.ndarray,
                     train_y: np.ndarray, test_x: np.ndarray,
                     test_y: np.ndarray, *, seed: int,
                     workdir: pathlib.Path, data_key: dict[str, Any],
                     flag: str, show_progress: bool, scan: str = "auto"
                     ) -> tuple[dict[str, Any], Any]:
  """(result, params) of the classifier stage `workdir/name`, trained
  unless finished. Its fingerprint is the model, schedule, seed and
  `data_key` (what identifies the data it sees); `scan` (how the steps are
  driven, see `train.train_classifier`) changes no result."""
  stage = _stage(workdir, name, model, schedule, seed, data_key)

  def train() -> tuple[dict[str, Any], Any]:
    logging.info("stage %s: training %s", name, type(model).__name__)
    out = train_classifier(model, train_x, train_y, test_x, test_y,
                           schedule, seed=seed, stage=stage, flag=flag,
                           show_progress=show_progress, scan=scan)
    return _result(out), out["params"]

  return loop.run_stage(stage, train,
                        lambda: nets.init_params(model, train_x, seed=seed))


def train_classifier_stages(name: str, model: nn.Module,
                            schedule: ClassifierSchedule,
                            train_x: np.ndarray, train_y: np.ndarray,
                            test_x: np.ndarray, test_y: np.ndarray, *,
                            seeds: list[int], workdirs: list[pathlib.Path],
                            data_key: dict[str, Any], flag: str,
                            show_progress: bool, scan: str = "auto") -> None:
  """Trains the unfinished stages `workdirs[i]/name` (seed `seeds[i]`) as
  one vmapped program, each finished as `classifier_stage` finishes it (the
  same fingerprint), so that the per-seed path then restores them."""
  stages = [_stage(w, name, model, schedule, s, data_key)
            for s, w in zip(seeds, workdirs, strict=True)]
  todo = [(s, stage) for s, stage in zip(seeds, stages, strict=True)
          if not stage.done()]
  if len(todo) < 2:
    return
  logging.info("stages %s: training seeds %s together", name,
               [s for s, _ in todo])
  outs = train_classifiers(model, train_x, train_y, test_x, test_y,
                           schedule, seeds=[s for s, _ in todo],
                           stages=[stage for _, stage in todo], flag=flag,
                           show_progress=show_progress, scan=scan)
  for (_, stage), out in zip(todo, outs, strict=True):
    loop.run_stage(stage, lambda out=out: (_result(out), out["params"]))
