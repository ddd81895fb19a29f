r"""Runs the whole study: convnets, alignment, evaluation, report.

  python -m experiments.reproduce --workdir=/tmp/avdigits \
      --data_dir=DATA [--config=experiments/configs/paper.py] \
      [--seeds=5] [--config.data.speech_split=loso]

With --config.data.speech_split=loso every speaker of the speech corpus is
held out in turn (the others train), each with every seed; the report's
top-level figures are then the mean over all (held-out speaker, seed) runs
and `splits.<speaker>` has each speaker's.

With experiments/configs/strings.py (`task = "strings"`) it runs the
digit-strings experiment instead (`avdigits.strings.pipeline`).

Finished stages are skipped and an interrupted stage resumes from its last
checkpoint, so the same command can simply be run again after a kill.
"""

import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

import ml_collections
from absl import flags

from avdigits.data import sources
from avdigits.digits import report, two_stage
from avdigits.digits import validation as digits_validation
from avdigits.errors import ConfigError
from avdigits.strings import pipeline as strings_pipeline
from avdigits.strings import report as strings_report
from avdigits.strings import validation as strings_validation
from avdigits.training import devices
from avdigits.training import workdir as workdir_lock
from experiments import cli

_WORKDIR, _DATA_DIR = cli.define_run_flags(
    "Where stages, checkpoints and the report are written.")
_SEEDS = flags.DEFINE_integer("seeds", None, "Number of seeds (overrides "
                              "config.seeds); reports mean and 95% CI.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")
_CONFIG = cli.define_config_file(cli.DEFAULT_CONFIG)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {argv[1:]}; flags are "
                      f"--workdir, --data_dir, --config, --seeds")
  cfg = cli.freeze(_CONFIG.value)
  seeds = _SEEDS.value if _SEEDS.value is not None else cfg.seeds
  if seeds <= 0:
    raise ConfigError(f"--seeds must be > 0, got {seeds}")
  strings = cfg.get("task", "digits") == "strings"
  if strings:
    strings_validation.validate_strings(cfg)
  else:
    digits_validation.validate_reproduce(cfg)
  workdir = pathlib.Path(_WORKDIR.value)
  with workdir_lock.exclusive(workdir):
    if strings:
      result, runs = _run_task(strings_pipeline.run_all,
                               strings_report.aggregate, cfg, workdir, seeds)
      if devices.is_writer():
        strings_report.write(result, strings_report.examples_of(runs),
                             workdir, _command())
        print("\n".join(strings_report.summary_lines(result)))
        print(f"({result['timings_s']['total']:.1f} s) -> "
              f"{workdir}/report.json")
      return
    result, _ = _run_task(two_stage.run_all, report.aggregate, cfg, workdir,
                          seeds)
    if devices.is_writer():
      report.write(result, workdir, _command())
      print(f"annotation {result['annotation']['accuracy']:.4f}  retrieval "
            f"{result['retrieval']['accuracy']:.4f}  image "
            f"{result['image_classifier']['test_accuracy']:.4f}  speech "
            f"{result['speech_classifier']['test_accuracy']:.4f}  "
            f"({result['timings_s']['total']:.1f} s) -> "
            f"{workdir}/report.json")


def _command() -> str:
  return " ".join(["python -m experiments.reproduce"] + sys.argv[1:])


def _run_task(run_all: Callable, aggregate: Callable,
              cfg: ml_collections.ConfigDict, workdir: pathlib.Path,
              seeds: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
  """Trains and evaluates every (split, seed) of a task (`run_all`), then
  its report dict (`aggregate`) with the stage timings summed over runs."""
  start = time.perf_counter()
  data_dir = sources.resolve_data_dir(_DATA_DIR.value)
  by_split, summary = run_all(
      cfg, data_dir, workdir, [cfg.seed + i for i in range(seeds)],
      show_progress=_PROGRESS.value)
  runs = [run for split_runs in by_split.values() for run in split_runs]
  timings = dict(summary.pop("timings_s"))
  for run in runs:
    for stage, seconds in run["timings_s"].items():
      timings[stage] = timings.get(stage, 0.0) + seconds
  timings["total"] = time.perf_counter() - start
  result = aggregate(
      runs, data=summary, config=cfg.to_dict(), seed=cfg.seed,
      timings=timings,
      splits=({spec.partition(":")[2]: split_runs
               for spec, split_runs in by_split.items()}
              if len(by_split) > 1 else None))
  result["platform"] = devices.info()
  return result, runs


if __name__ == "__main__":
  cli.run(main)
