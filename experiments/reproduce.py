r"""Runs the whole study: convnets, alignment, evaluation, report.

  python -m experiments.reproduce --workdir=/tmp/avdigits \
      --data_dir=../shared/data [--config=experiments/configs/paper.py] \
      [--seeds=5]

Finished stages are skipped and an interrupted stage resumes from its last
checkpoint, so the same command can simply be run again after a kill.
"""

import pathlib
import sys
import time

from absl import flags
from ml_collections import config_flags

from avdigits import pipeline, report
from avdigits.data import sources
from avdigits.errors import ConfigError
from experiments import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Where stages, checkpoints "
                               "and the report are written.", required=True)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Data directory (mnist/, fsdd/, tidigits/, "
    "audiomnist/); default $AVDIGITS_DATA_DIR, else TFDS.")
_SEEDS = flags.DEFINE_integer("seeds", None, "Number of seeds (overrides "
                              "config.seeds); reports mean and 95% CI.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")
_CONFIG = config_flags.DEFINE_config_file("config", cli.DEFAULT_CONFIG,
                                          "Experiment config file.")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {argv[1:]}; flags are "
                      f"--workdir, --data_dir, --config, --seeds")
  cfg = _CONFIG.value
  seeds = _SEEDS.value if _SEEDS.value is not None else cfg.seeds
  if seeds <= 0:
    raise ConfigError(f"--seeds must be > 0, got {seeds}")
  pipeline.validate_config(cfg)
  workdir = pathlib.Path(_WORKDIR.value)
  start = time.perf_counter()
  data_dir = sources.resolve_data_dir(_DATA_DIR.value)
  data = pipeline.prepare_data(cfg, data_dir)
  runs = [pipeline.run_seed(cfg, data, workdir / f"seed_{cfg.seed + i}",
                            cfg.seed + i, show_progress=_PROGRESS.value)
          for i in range(seeds)]
  timings = dict(data.summary.pop("timings_s"))
  for run in runs:
    for stage, seconds in run["timings_s"].items():
      timings[stage] = timings.get(stage, 0.0) + seconds
  timings["total"] = time.perf_counter() - start
  result = report.aggregate(runs, data=data.summary, config=cfg.to_dict(),
                            seed=cfg.seed, timings=timings)
  report.write(result, workdir, " ".join(["python -m experiments.reproduce"]
                                         + sys.argv[1:]))
  print(f"annotation {result['annotation']['accuracy']:.4f}  retrieval "
        f"{result['retrieval']['accuracy']:.4f}  image "
        f"{result['image_classifier']['test_accuracy']:.4f}  speech "
        f"{result['speech_classifier']['test_accuracy']:.4f}  "
        f"({timings['total']:.1f} s) -> {workdir}/report.json")


if __name__ == "__main__":
  cli.run(main)
