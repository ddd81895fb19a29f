"""Training stages every experiment shares: a classifier as one resumable
stage of a workdir (`loop.run_stage` around `train.train_classifier`)."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import flax.linen as nn
import numpy as np
from absl import logging

from avdigits import loop, nets
from avdigits.train import ClassifierSchedule, train_classifier
from avdigits.workdir import Stage


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
  stage = Stage(workdir, name, {"model": repr(model),
                                "schedule": dataclasses.asdict(schedule),
                                "seed": seed, "data": data_key})

  def train() -> tuple[dict[str, Any], Any]:
    logging.info("stage %s: training %s", name, type(model).__name__)
    out = train_classifier(model, train_x, train_y, test_x, test_y,
                           schedule, seed=seed, stage=stage, flag=flag,
                           show_progress=show_progress, scan=scan)
    return {"test_accuracy": out["test_accuracy"], "history": out["history"],
            "train_seconds": out["train_seconds"]}, out["params"]

  return loop.run_stage(stage, train,
                        lambda: nets.init_params(model, train_x, seed=seed))
