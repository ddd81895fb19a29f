r"""Runs the whole study: convnets, alignment, evaluation, report.

  python -m experiments.reproduce --workdir=/tmp/avdigits \
      --data_dir=DATA [--config=experiments/configs/paper.py] \
      [--seeds=5] [--config.data.speech_split=loso]

With --config.data.speech_split=loso every speaker of the speech corpus is
held out in turn (the others train), each with every seed; the report's
top-level figures are then the mean over all (held-out speaker, seed) runs
and `splits.<speaker>` has each speaker's.

With experiments/configs/strings.py (`task = "strings"`) it runs the
digit-strings experiment instead (`avdigits.strings_pipeline`).

Finished stages are skipped and an interrupted stage resumes from its last
checkpoint, so the same command can simply be run again after a kill.
"""

import pathlib
import sys
import time

from absl import flags

from avdigits import (
  devices,
  report,
  strings_pipeline,
  strings_report,
  two_stage,
  validation,
)
from avdigits import workdir as workdir_lock
from avdigits.data import sources
from avdigits.errors import ConfigError
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
    validation.validate_strings(cfg)
  else:
    validation.validate_reproduce(cfg)
  workdir = pathlib.Path(_WORKDIR.value)
  with workdir_lock.exclusive(workdir):
    if strings:
      _run_strings(cfg, workdir, seeds)
      return
    start = time.perf_counter()
    data_dir = sources.resolve_data_dir(_DATA_DIR.value)
    by_split, summary = two_stage.run_all(
        cfg, data_dir, workdir, [cfg.seed + i for i in range(seeds)],
        show_progress=_PROGRESS.value)
    runs = [run for split_runs in by_split.values() for run in split_runs]
    timings = dict(summary.pop("timings_s"))
    for run in runs:
      for stage, seconds in run["timings_s"].items():
        timings[stage] = timings.get(stage, 0.0) + seconds
    timings["total"] = time.perf_counter() - start
    result = report.aggregate(
        runs, data=summary, config=cfg.to_dict(), seed=cfg.seed,
        timings=timings,
        splits=({spec.partition(":")[2]: split_runs
                 for spec, split_runs in by_split.items()}
                if len(by_split) > 1 else None))
    result["platform"] = devices.info()
    if not devices.is_writer():
      return
    report.write(result, workdir, _command())
    print(f"annotation {result['annotation']['accuracy']:.4f}  retrieval "
          f"{result['retrieval']['accuracy']:.4f}  image "
          f"{result['image_classifier']['test_accuracy']:.4f}  speech "
          f"{result['speech_classifier']['test_accuracy']:.4f}  "
          f"({timings['total']:.1f} s) -> {workdir}/report.json")


def _command() -> str:
  return " ".join(["python -m experiments.reproduce"] + sys.argv[1:])


def _run_strings(cfg, workdir: pathlib.Path, seeds: int) -> None:
  """The digit-strings experiment: train, evaluate, report."""
  start = time.perf_counter()
  data_dir = sources.resolve_data_dir(_DATA_DIR.value)
  by_split, summary = strings_pipeline.run_all(
      cfg, data_dir, workdir, [cfg.seed + i for i in range(seeds)],
      show_progress=_PROGRESS.value)
  runs = [run for split_runs in by_split.values() for run in split_runs]
  timings = dict(summary.pop("timings_s"))
  for run in runs:
    for stage, seconds in run["timings_s"].items():
      timings[stage] = timings.get(stage, 0.0) + seconds
  timings["total"] = time.perf_counter() - start
  result = strings_report.aggregate(
      runs, data=summary, config=cfg.to_dict(), seed=cfg.seed,
      timings=timings,
      splits=({spec.partition(":")[2]: split_runs
               for spec, split_runs in by_split.items()}
              if len(by_split) > 1 else None))
  result["platform"] = devices.info()
  if not devices.is_writer():
    return
  strings_report.write(result, strings_report.examples_of(runs), workdir,
                       _command())
  print("\n".join(strings_report.summary_lines(result)))
  print(f"({timings['total']:.1f} s) -> {workdir}/report.json")


if __name__ == "__main__":
  cli.run(main)
