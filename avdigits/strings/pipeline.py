"""Digit strings, run by `experiments.reproduce` with
experiments/configs/strings.py: per (speech split, seed), the string model
trained on pairs drawn from the training utterances and images (one
resumable stage), then evaluated on fixed test strings of every test length
drawn from the test utterances and images. The splits are the
isolated-digit experiments' own (`--config.data.speech_split`, loso
included).
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from avdigits import settings
from avdigits.data import splits, spoken
from avdigits.errors import ConfigError, DataError
from avdigits.inputs import prepare, speech_data
from avdigits.models.sequence import StringModel
from avdigits.strings import data as strings_data
from avdigits.strings import evaluate as strings_eval
from avdigits.strings import validation
from avdigits.strings.train import StringSchedule, train_strings
from avdigits.training import checkpoint, devices, loop
from avdigits.training.workdir import Stage, split_dir


@dataclasses.dataclass(frozen=True)
class StringData:
  """The pools strings are drawn from under one split, and its summary;
  `recorded` (with `strings.test_speech = "connected"`) the test speakers'
  connected-digit recordings by length, used as the test strings."""
  train: strings_data.Pools | None
  test: strings_data.Pools
  summary: dict[str, Any]
  recorded: dict[int, tuple] | None = None


def connected_test_speech(cfg: ml_collections.ConfigDict,
                          data_dir: pathlib.Path | None,
                          test_speakers: set[str]) -> dict[int, tuple]:
  """{length: (SpeechSet, digits)} of TIDIGITS' connected-digit recordings
  by `test_speakers` (silence trimmed as the config's features say)."""
  if cfg.data.speech != "tidigits" or data_dir is None:
    raise ConfigError("--config.strings.test_speech=connected needs "
                      "TIDIGITS: --config.data.speech=tidigits and a "
                      "--data_dir holding tidigits/")
  out = {}
  for length, (speech, digits) in spoken.load_tidigits_strings(
      data_dir / "tidigits", sample_rate=cfg.data.sample_rate,
      children=cfg.data.tidigits_children).items():
    keep = np.flatnonzero(np.isin(speech.speakers, sorted(test_speakers)))
    if len(keep):
      out[length] = (speech_data.trim(cfg.features, speech.take(keep)),
                     digits[keep])
  if not out:
    raise DataError(f"{data_dir / 'tidigits'}: no connected-digit "
                    f"recordings by the test speakers")
  return out


def model(cfg: ml_collections.ConfigDict) -> StringModel:
  """The string model of a config's `strings` section."""
  return settings.from_section(StringModel, cfg.strings)


def eval_settings(cfg: ml_collections.ConfigDict) -> strings_eval.EvalSettings:
  return strings_eval.EvalSettings.from_config(cfg.strings)


def string_data(cfg: ml_collections.ConfigDict, corpora: prepare.Corpora,
                split_override: str | None = None,
                data_dir: pathlib.Path | None = None) -> StringData:
  """Training and test pools of one split ("all": test pools only, from
  every utterance and image)."""
  images, speech = corpora.images, corpora.speech
  image_mode = "all" if split_override == "all" else cfg.data.image_split
  spec = split_override or cfg.data.speech_split
  train_i, test_i = splits.image_split(
      images, mode=image_mode, test_fraction=cfg.data.test_fraction,
      seed=cfg.seed)
  mode, held_out = splits.parse_speech_split(spec)
  train_s, test_s = splits.speech_split(
      speech, mode=mode, held_out=held_out,
      test_fraction=cfg.data.test_fraction, seed=cfg.seed)
  dev = bool(cfg.strings.get("dev", False)) and spec != "all"
  if dev:
    # Settings are chosen here: the split's test part is never read.
    train_s, test_s = splits.development_split(speech, train_s, test_s,
                                               seed=cfg.seed)
    fit, held = splits.stratified_split(images.labels[train_i],
                                        test_fraction=0.2, seed=cfg.seed)
    train_i, test_i = train_i[fit], train_i[held]
  longest_train = max(cfg.strings.train_lengths)
  longest_test = max(cfg.strings.test_lengths)
  one_speaker = cfg.strings.one_speaker
  train = (strings_data.Pools.build(
      speech, train_s, images, train_i, length=longest_train,
      what=f"training split ({spec})", one_speaker=one_speaker)
           if spec != "all" else None)
  test = strings_data.Pools.build(speech, test_s, images, test_i,
                                  length=longest_test,
                                  what=f"test split ({spec})",
                                  one_speaker=one_speaker)
  summary = {
      "task": "strings",
      "image_source": images.source, "speech_source": speech.source,
      "synthetic": ("synthetic" in images.source
                    or "synthetic" in speech.source),
      "image_split": image_mode, "speech_split": spec,
      "development": dev,
      "counts": {"train_images": len(train_i), "test_images": len(test_i),
                 "train_utterances": len(train_s),
                 "test_utterances": len(test_s)},
      "speakers": {"train": sorted(set(speech.speakers[train_s].tolist())),
                   "test": sorted(set(speech.speakers[test_s].tolist()))},
      "sample_rate": speech.sample_rate,
      "num_speech_classes": speech.num_classes,
      "audio_checks": corpora.audio_checks,
  }
  recorded = None
  if cfg.strings.get("test_speech", "built") == "connected":
    recorded = connected_test_speech(cfg, data_dir,
                                     set(summary["speakers"]["test"]))
    summary["test_speech"] = "tidigits connected digits"
  return StringData(train, test, summary, recorded)


def _data_key(cfg: ml_collections.ConfigDict, data: StringData
              ) -> dict[str, Any]:
  s = data.summary
  key = {"images": s["image_source"], "speech": s["speech_source"],
         "image_split": s["image_split"], "speech_split": s["speech_split"],
         "counts": s["counts"], "test_fraction": cfg.data.test_fraction,
         "data_seed": cfg.seed, "features": cfg.features.to_dict()}
  if s["development"]:
    key["development"] = True
  return key


def _template(cfg: ml_collections.ConfigDict, seed: int) -> Any:
  return model(cfg).init(
      jax.random.key(seed),
      np.zeros((1, 64, cfg.features.num_bins), np.float32),
      np.zeros((1, 28, 16), np.float32))["params"]


def train_stage(cfg: ml_collections.ConfigDict, data: StringData,
                workdir: pathlib.Path, seed: int, *,
                show_progress: bool) -> tuple[dict[str, Any], Any]:
  """(result, params) of the string model's stage `workdir/strings`."""
  net = model(cfg)
  schedule = StringSchedule.from_config(cfg.strings)
  stage = Stage(workdir, "strings", {
      "model": repr(net), "schedule": dataclasses.asdict(schedule),
      "seed": seed, "data": _data_key(cfg, data)})

  def train() -> tuple[dict[str, Any], Any]:
    logging.info("stage strings: training on %s", data.summary["speech_split"])
    out = train_strings(net, data.train, schedule, cfg.features, seed=seed,
                        stage=stage, show_progress=show_progress)
    return {"history": out["history"],
            "train_seconds": out["train_seconds"]}, out["params"]

  return loop.run_stage(stage, train, lambda: _template(cfg, seed))


def run_seed(cfg: ml_collections.ConfigDict, data: StringData,
             workdir: pathlib.Path, seed: int, *,
             show_progress: bool = True) -> dict[str, Any]:
  """Trains (or restores) and evaluates one seed: the test strings are
  drawn with the data seed (`cfg.seed`, the split's), so every training
  seed meets the same ones; the reader is chosen on training strings."""
  start = time.perf_counter()
  result, params = train_stage(cfg, data, workdir, seed,
                               show_progress=show_progress)
  timings = {"train": time.perf_counter() - start}
  start = time.perf_counter()
  figures = strings_eval.evaluate_model(
      model(cfg), params, data.test, cfg.features, eval_settings(cfg),
      seed=seed, test_seed=cfg.seed, reader_pools=data.train,
      recorded=data.recorded)
  timings["evaluate"] = time.perf_counter() - start
  return {"seed": seed, "train": result, "strings": figures["strings"],
          "reader": dict(figures["reader"],
                         split=data.summary["speech_split"], seed=seed),
          "timings_s": timings}


def run_all(cfg: ml_collections.ConfigDict, data_dir: pathlib.Path | None,
            workdir: pathlib.Path, seeds: list[int], *,
            show_progress: bool = True
            ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
  """Every (speech split, seed): {spec: [run per seed]} and the data
  summary of the first split."""
  validation.validate_strings(cfg)
  devices.set_precision(cfg.get("matmul_precision", "highest"))
  corpora = prepare.load_corpora(cfg, data_dir, fixed_window=False)
  specs = prepare.speech_split_names(cfg, corpora)
  by_split, summary = {}, None
  for spec in specs:
    data = string_data(cfg, corpora, spec if len(specs) > 1 else None,
                       data_dir)
    summary = summary or dict(data.summary, timings_s=dict(corpora.timings))
    root = split_dir(workdir, spec, specs)
    by_split[spec] = [run_seed(cfg, data, root / f"seed_{seed}", seed,
                               show_progress=show_progress)
                      for seed in seeds]
  if len(specs) > 1:
    summary.update(splits.held_out_in_turn(cfg.data.speech_split, specs))
  return by_split, summary


def _trained_reading(trained: dict[str, Any], workdir: pathlib.Path,
                     spec: str, seed: int) -> dict[str, Any]:
  """The reader settings a strings workdir's run chose on its training
  strings (held-out speaker `spec` under loso)."""
  loso = bool(trained["data"]["speakers"].get("held_out_in_turn"))
  for entry in trained.get("reader", []):
    if entry["seed"] == seed and (not loso or entry["split"] == spec):
      return entry
  raise ConfigError(f"--workdir={workdir}: report.json has no reader "
                    f"settings for seed {seed}; run experiments.reproduce "
                    f"on it again")


def evaluate_workdir(cfg: ml_collections.ConfigDict, trained: dict[str, Any],
                     data_dir: pathlib.Path | None, workdir: pathlib.Path,
                     split: str) -> tuple[list[dict[str, Any]],
                                          dict[str, Any]]:
  """Every trained (split, seed) model of a strings workdir evaluated on
  `data_dir`'s strings (`split` "all": built from all its utterances and
  images, with the same seeds), read with each run's chosen reader settings
  against canvases of the evaluated images."""
  corpora = prepare.load_corpora(cfg, data_dir, fixed_window=False)
  data = string_data(cfg, corpora, split if split == "all" else None,
                     data_dir)
  held_out = trained["data"]["speakers"].get("held_out_in_turn")
  specs = (splits.in_turn_specs(trained["data"]["speech_split"], held_out)
           if held_out else [split])
  runs = []
  for spec in specs:
    root = split_dir(workdir, spec, specs)
    for seed in trained["seeds"]:
      stage_dir = root / f"seed_{seed}"
      if not (stage_dir / "strings" / "result.json").exists():
        raise ConfigError(f"--workdir={workdir}: the strings stage of seed "
                          f"{seed} ({stage_dir}) has not finished; run "
                          f"experiments.reproduce first")
      params = checkpoint.restore_params(stage_dir / "strings",
                                         _template(cfg, seed))
      figures = strings_eval.evaluate_model(
          model(cfg), params, data.test, cfg.features, eval_settings(cfg),
          seed=seed, test_seed=cfg.seed,
          reading=_trained_reading(trained, workdir, spec, seed),
          recorded=data.recorded)
      runs.append({"seed": seed, "strings": figures["strings"],
                   "reader": dict(figures["reader"], split=spec,
                                  seed=seed)})
  return runs, dict(data.summary, timings_s=dict(corpora.timings))
