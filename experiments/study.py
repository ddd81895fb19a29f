r"""Runs the study: every experiment config, >= 5 seeds each, one table.

  python -m experiments.study --workdir=/tmp/study --data_dir=DATA \
      [--only=two_stage,loso] [--seeds=5] [--readme=docs/study.md \
      --figures_dir=docs/study] [--set=train.steps=200 ...]

Writes <workdir>/study.json, study.md and the robustness figures (to
--figures_dir, default <workdir>/figures); with --readme, also replaces the
part of that page between `<!-- study:begin -->` and `<!-- study:end -->`
(each suite's markers are on its docs page, cli.DOCS_PAGES: the study's
in docs/study.md, the voices' in docs/voices.md, the pool's in
docs/paper.md).
Every (experiment, split, seed) is a resumable stage: run the same command
again after a kill and finished work is skipped. Experiments whose corpus
is missing from the data directory (TIDIGITS, AudioMNIST) are listed as not
run.
"""

import ast
import importlib
import pathlib
import sys
import time

from absl import flags, logging

from avdigits.data import sources
from avdigits.errors import ConfigError, DataError
from avdigits.study import pipeline as study
from avdigits.study import report as study_report
from avdigits.study import validation
from avdigits.training import devices
from avdigits.training import workdir as workdir_lock
from avdigits.training.workdir import write_atomic, write_json_atomic
from experiments import cli

EXPERIMENTS = (
    "two_stage", "hinge", "hinge_clamp", "symmetric_hinge", "paper_sgd",
    "paper_sgd_clamp", "random_speech", "random_image", "joint_random",
    "joint_pretrained", "robust", "loso", "children", "audiomnist_folds")
# The unseen-voices ablation: each method on the same leave-one-speaker-out
# baseline ("loso"), with its gain over it.
VOICES = (
    "loso", "loso_speed", "loso_vtlp", "loso_channel", "loso_voices",
    "loso_voices_only", "loso_speaker_norm", "loso_cvn", "loso_dropout",
    "loso_long", "loso_wide", "loso_mixup", "loso_joint", "loso_ensemble")
# The two readings of the speech convnet's 3x4 pool, on the upstream split.
POOL = ("two_stage", "pool_time")
# Nested selection of the default's speech recipe: the incumbent first (it
# wins ties), then one change each, then the two best changes together
# (experiments/configs/study/select*.py).
SELECT = ("select", "select_balanced", "select_masks", "select_wide",
          "select_balanced_wide")
SUITES = {"study": (EXPERIMENTS, None), "voices": (VOICES, "loso"),
          "pool": (POOL, "two_stage"), "select": (SELECT, None)}

_WORKDIR, _DATA_DIR = cli.define_run_flags(
    "Where every stage and the study's tables are written.")
_ONLY = flags.DEFINE_list("only", None, "Experiments to run (names of "
                          "experiments/configs/study/*.py); default all.")
_SEEDS = flags.DEFINE_integer("seeds", None, "Seeds per experiment "
                              "(overrides each config's 5).")
_SET = flags.DEFINE_multi_string("set", [], "KEY=VALUE overrides applied to "
                                 "every experiment's config, e.g. "
                                 "train.steps=200.")
_SUITE = flags.DEFINE_enum("suite", "study", list(SUITES), "Which set of "
                           "experiments runs by default and which docs "
                           "part (<!-- SUITE:begin/end -->) is replaced; "
                           "'voices' and 'pool' also report each gain over "
                           "their baseline ('loso', 'two_stage'); 'select' "
                           "reports the nested selection per outer split.")
_README = flags.DEFINE_string("readme", None, "Markdown page whose "
                              "<!-- SUITE:begin -->...<!-- SUITE:end --> "
                              "part is replaced: "
                              + ", ".join(f"{k}: {v}" for k, v in
                                          cli.DOCS_PAGES.items()) + ".")
_MARKERS = flags.DEFINE_string("markers", None, "Markers to replace "
                               "(<!-- MARKERS:begin/end -->); default the "
                               "suite's name.")
_FIGURES = flags.DEFINE_string("figures_dir", None, "Where the figures go "
                               "(default <workdir>/figures).")


def load_config(name: str, overrides: list[str]):
  known = dict.fromkeys(n for names, _ in SUITES.values() for n in names)
  if name not in known:
    raise ConfigError(f"--only: unknown experiment {name!r}; choose from "
                      f"{', '.join(known)}")
  cfg = importlib.import_module(
      f"experiments.configs.study.{name}").get_config()
  for item in overrides:
    key, sep, text = item.partition("=")
    if not sep:
      raise ConfigError(f"--set={item!r}: expected KEY=VALUE")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    *sections, field = key.split(".")
    node = cfg
    for section in sections:
      node = node.get(section) if hasattr(node, "get") else None
    if not hasattr(node, "get") or field not in node:
      raise ConfigError(f"--set={item!r}: {name} has no setting {key!r}")
    try:
      node[field] = value
    except (TypeError, ValueError) as error:
      raise ConfigError(f"--set={item!r}: {error}") from None
  if _SEEDS.value is not None:
    cfg.seeds = _SEEDS.value
  validation.validate_study(cfg)
  return cli.freeze(cfg)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {argv[1:]}")
  default_names, baseline = SUITES[_SUITE.value]
  names = _ONLY.value or list(default_names)
  configs = [load_config(n, _SET.value) for n in names]
  workdir = pathlib.Path(_WORKDIR.value)
  with workdir_lock.exclusive(workdir):
    data_dir = sources.resolve_data_dir(_DATA_DIR.value)
    start = time.perf_counter()
    loaded, summaries, skipped, data_seconds = {}, [], {}, 0.0
    all_runs = {}
    for cfg in configs:
      key = study.data_key(cfg)
      if key not in loaded:
        t0 = time.perf_counter()
        try:
          loaded[key] = study.load_data(cfg, data_dir)
        except DataError as error:
          if cfg.data.speech in ("tidigits", "audiomnist"):
            loaded[key] = str(error).splitlines()[0]
          else:
            raise
        data_seconds += time.perf_counter() - t0
      if isinstance(loaded[key], str):
        skipped[cfg.name] = loaded[key]
        logging.info("study: skipping %s: %s", cfg.name, loaded[key])
        continue
      t0 = time.perf_counter()
      result = study.run_experiment(cfg, loaded[key], workdir)
      result["seconds"] = time.perf_counter() - t0
      all_runs[cfg.name] = result["runs"]
      summaries.append(study_report.summarise(result))
      average = summaries[-1]["average"]
      print(f"{cfg.name}: " + " ".join(
          f"{k} {average[k]['mean']:.4f}" for k in ("annotation", "retrieval")
          if average[k] is not None) + f" ({result['seconds']:.0f} s)",
          flush=True)
    total = time.perf_counter() - start
    command = " ".join(["python -m experiments.study"] + sys.argv[1:])
    any_data = next((v for v in loaded.values() if not isinstance(v, str)),
                    None)
    if any_data is None:
      raise DataError("study: no experiment had its data: "
                      + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    run_seconds = sum(r.get("seconds", 0.0) for runs in all_runs.values()
                      for r in runs)
    data_line = (f"Data: {any_data.speech.source}; "
                 f"{len(any_data.image_train)} train / "
                 f"{len(any_data.image_test)} test images. Seeds 0-"
                 f"{max(c.seeds for c in configs) - 1}; 95% t-intervals over "
                 f"seeds. Loading and features: {data_seconds:.0f} s; the "
                 f"runs took {run_seconds:,.0f} s when trained (summed over "
                 f"runs; finished runs are restored, not retrained); this "
                 f"invocation: {total:.0f} s.")
    gains = bool(baseline and baseline in all_runs)
    study_json = {"summaries": summaries, "skipped": skipped,
                  "seconds": total, "data_seconds": data_seconds,
                  "command": command}
    if _SUITE.value == "select":
      study_json["selection"] = study_report.selection(all_runs)
      section = study_report.selection_markdown(
          summaries, study_json["selection"], command, data_line)
    elif gains:
      section = study_report.gains_markdown(summaries, all_runs, baseline,
                                            command, data_line)
    else:
      section = study_report.markdown(summaries, skipped, command, data_line)
    write_outputs(workdir, summaries, section, study_json,
                  link_figures=not gains and _SUITE.value != "select")
    if devices.is_writer():
      print(f"study: {len(summaries)} experiments in {total:.0f} s -> "
            f"{workdir}/study.md")


def write_outputs(workdir: pathlib.Path, summaries: list[dict],
                  section: str, study_json: dict, link_figures: bool) -> None:
  """The study's final files, from process 0 only: the figures, study.json,
  study.md and, with --readme, that page's markers (linking the figures
  unless `link_figures` is false)."""
  if not devices.is_writer():
    return
  figures_dir = pathlib.Path(_FIGURES.value or workdir / "figures")
  figures = study_report.figures(summaries, figures_dir)
  write_json_atomic(workdir / "study.json", study_json)
  write_atomic(workdir / "study.md", lambda f: f.write(section))
  if _README.value:
    cli.update_readme(pathlib.Path(_README.value), section,
                      figures if link_figures else [],
                      _MARKERS.value or _SUITE.value)


if __name__ == "__main__":
  cli.run(main)
