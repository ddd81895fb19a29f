r"""The paper config's aligner from many initial draws: alive or dead.

Runs (or resumes) one seed of the config end to end, then trains its
alignment stage again from --draws initial draws under each start in
--inits (same convnets), and writes draws.json and draws.md (with
--readme=docs/paper.md, also into that page between `<!-- draws:begin -->`
and `<!-- draws:end -->`):

  python -m experiments.draws --workdir=/tmp/paper --data_dir=DATA \
      --config=experiments/configs/paper.py --config.data.speech=fsdd \
      --config.data.sample_rate=8000 --draws=10 [--readme=docs/paper.md]
"""

import pathlib
import sys

from absl import flags

from avdigits.data import sources, splits
from avdigits.digits import draws, two_stage, validation
from avdigits.errors import ConfigError
from avdigits.inputs import prepare
from avdigits.training import devices
from avdigits.training import workdir as workdir_lock
from avdigits.training.align import INITS
from avdigits.training.workdir import write_atomic, write_json_atomic
from experiments import cli

_WORKDIR, _DATA_DIR = cli.define_run_flags(
    "Where the run, the draws and draws.json are written.")
_DRAWS = flags.DEFINE_integer("draws", 10, "Initial draws per start.")
_INITS = flags.DEFINE_list("inits", ["gaussian", "gaussian_mirrored"],
                           f"Starts to compare (any of {', '.join(INITS)}).")
_README = flags.DEFINE_string("readme", None, "Also write the table into "
                              "this page's draws markers (they are in "
                              f"{cli.DOCS_PAGES['draws']}).")
_CONFIG = cli.define_config_file(str(cli.CONFIG_DIR / "paper.py"))


def _name(source: str) -> str:
  """A source's kind without its path ("fsdd:/data/fsdd" -> "fsdd")."""
  return source.partition(":")[0]


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {argv[1:]}")
  if _DRAWS.value <= 0:
    raise ConfigError(f"--draws must be > 0, got {_DRAWS.value}")
  for init in _INITS.value:
    if init not in INITS:
      raise ConfigError(f"--inits: {init!r} is not one of {', '.join(INITS)}")
  cfg = cli.freeze(_CONFIG.value)
  validation.validate_reproduce(cfg)
  if cfg.data.speech_split == "loso" or splits.fold_count(
      cfg.data.speech_split) is not None:
    raise ConfigError(f"--config.data.speech_split="
                      f"{cfg.data.speech_split}: draws run on one split; "
                      f"name it (e.g. loso:george or fold:0of5)")
  workdir = pathlib.Path(_WORKDIR.value)
  with workdir_lock.exclusive(workdir):
    data_dir = sources.resolve_data_dir(_DATA_DIR.value)
    two_stage.run_all(cfg, data_dir, workdir, [cfg.seed],
                      show_progress=False)
    data = prepare.prepare_data(cfg, data_dir)
    image_params, speech_params, _ = two_stage.load_trained(
        cfg, workdir, cfg.seed, data.num_speech_classes)
    rows = draws.run_draws(cfg, data, workdir, image_params, speech_params,
                           inits=_INITS.value, draws=_DRAWS.value)
    command = " ".join(["python -m experiments.draws"] + sys.argv[1:])
    summary = data.summary
    section = (
        f"Command: `{command}`\n\nData: {_name(summary['image_source'])} "
        f"images, {_name(summary['speech_source'])} speech "
        f"({summary['speech_split']} split, "
        f"{summary['sample_rate']} Hz); seed {cfg.seed} convnets; draw d "
        f"starts and samples with seed d. {len(rows)} alignment runs of "
        f"{cfg.align.steps:,} iterations, "
        f"{sum(r['train_seconds'] for r in rows):,.0f} s of training in "
        f"all.\n\n"
        + draws.summary_markdown(rows))
    write_outputs(workdir, command, rows, section)
    if devices.is_writer():
      print(section)


def write_outputs(workdir: pathlib.Path, command: str, rows: list[dict],
                  section: str) -> None:
  """draws.json, draws.md and, with --readme, that page's draws markers,
  from process 0 only."""
  if not devices.is_writer():
    return
  write_json_atomic(workdir / "draws.json", {"command": command,
                                             "rows": rows})
  write_atomic(workdir / "draws.md", lambda f: f.write(section))
  if _README.value:
    cli.update_readme(pathlib.Path(_README.value), section, [], suite="draws")


if __name__ == "__main__":
  cli.run(main)
