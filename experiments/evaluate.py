r"""Evaluates the models trained in a workdir on another data directory.

  python -m experiments.evaluate --workdir=/tmp/avdigits \
      --data_dir=/path/to/other/data --split=all --output=/tmp/other.json

With --split=all every example of --data_dir is evaluation data (unseen
images or speakers). A split holding an image or utterance that trained a
model of the workdir (compared by their bytes, on the corpora the run used)
is refused: --split=all on another data directory, or a split disjoint from
each model's training data. Writes the same report.json keys as reproduce; for a
digit-strings workdir (experiments/configs/strings.py), the test strings
are built from --data_dir's utterances and images with the run's seeds.
"""

import pathlib
import time

import ml_collections
from absl import flags

from avdigits.data import sources, splits
from avdigits.digits import report, two_stage
from avdigits.errors import ConfigError
from avdigits.inputs import prepare
from avdigits.strings import pipeline as strings_pipeline
from avdigits.strings import report as strings_report
from avdigits.training import devices, predict
from avdigits.training.workdir import read_json, split_dir, write_json_atomic
from experiments import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "A finished reproduce run.",
                               required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data to evaluate on.")
_SPLIT = flags.DEFINE_string(
    "split", "all", "'all' (every example is test data; another data "
    "directory than training's) or a speech split spec as in the config "
    "(upstream, speakers:a,b, loso:name, ...) disjoint from every model's "
    "training data.")
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the JSON "
                              "report.", required=True)
_IMAGES = flags.DEFINE_string("images", None, "Override the image source.")
_SPEECH = flags.DEFINE_string("speech", None, "Override the speech source.")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {argv[1:]}")
  workdir = pathlib.Path(_WORKDIR.value)
  if not (workdir / "report.json").exists():
    raise ConfigError(f"--workdir={workdir}: no report.json; run "
                      f"experiments.reproduce there first")
  trained = read_json(workdir / "report.json", "run experiments.reproduce "
                      "with the same flags to write it again")
  trained_cfg = ml_collections.ConfigDict(trained["config"])
  cfg = ml_collections.ConfigDict(trained["config"])
  if _IMAGES.value:
    cfg.data.images = _IMAGES.value
  if _SPEECH.value:
    cfg.data.speech = _SPEECH.value
  start = time.perf_counter()
  data_dir = sources.resolve_data_dir(_DATA_DIR.value)
  split = _SPLIT.value
  if split == "loso" or splits.fold_count(split, flag="--split") is not None:
    raise ConfigError(f"--split={split}: give one split (loso:NAME, "
                      f"fold:IofK) or 'all'")
  if split != "all":
    cfg.data.speech_split = split
  cfg = cli.freeze(cfg)
  corpora = prepare.load_corpora(cfg, data_dir)
  prepare.check_unseen(trained_cfg, trained["data"], cfg, corpora, split)
  if cfg.get("task", "digits") == "strings":
    _evaluate_strings(cfg, trained, data_dir, workdir, split, start)
    return
  data = prepare.prepare_data(cfg, data_dir,
                              split_override="all" if split == "all"
                              else None, corpora=corpora)
  model_classes = trained["data"]["num_speech_classes"]
  runs = []
  # A "loso" workdir holds one model set per held-out speaker: each is
  # evaluated, and the report is over all of them.
  held_out = trained["data"]["speakers"].get("held_out_in_turn")
  specs = (splits.in_turn_specs(trained["data"]["speech_split"], held_out)
           if held_out else [trained["data"]["speech_split"]])
  speech_dirs = [split_dir(workdir, spec, specs) for spec in specs]
  for speech_dir in speech_dirs:
    for seed in trained["seeds"]:
      params = two_stage.load_trained(cfg, workdir, seed, model_classes,
                                      speech_dir=speech_dir)
      metrics = predict.evaluate_models(cfg, data, *params, seed=seed,
                                        model_classes=model_classes)
      runs.append({"seed": seed, **metrics})
  timings = dict(data.summary.pop("timings_s"))
  timings["total"] = time.perf_counter() - start
  result = report.aggregate(runs, data=data.summary, config=cfg.to_dict(),
                            seed=cfg.seed, timings=timings)
  result["trained_on"] = trained["data"]
  if write_output(result):
    print(f"annotation {result['annotation']['accuracy']:.4f}  retrieval "
          f"{result['retrieval']['accuracy']:.4f} -> {_OUTPUT.value}")


def _evaluate_strings(cfg, trained, data_dir, workdir: pathlib.Path,
                      split: str, start: float) -> None:
  runs, summary = strings_pipeline.evaluate_workdir(cfg, trained, data_dir,
                                                    workdir, split)
  timings = dict(summary.pop("timings_s"))
  timings["total"] = time.perf_counter() - start
  result = strings_report.aggregate(runs, data=summary, config=cfg.to_dict(),
                                    seed=cfg.seed, timings=timings)
  result["trained_on"] = trained["data"]
  if write_output(result):
    print("\n".join(strings_report.summary_lines(result)))
    print(f"-> {_OUTPUT.value}")


def write_output(result: dict) -> bool:
  """Writes --output from process 0 only; whether this process wrote it."""
  if not devices.is_writer():
    return False
  write_json_atomic(_OUTPUT.value, result)
  return True


if __name__ == "__main__":
  cli.run(main)
