"""The study's tables and figures, from the per-run results of each
experiment (see study.run_experiment)."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from avdigits.errors import ConfigError
from avdigits.summary import mean_ci

METRICS = (("annotation", "Annotation"), ("retrieval", "Retrieval"),
           ("r1_image_to_speech", "R@1 image->speech"),
           ("r1_speech_to_image", "R@1 speech->image"))
CORRUPTIONS = (("image_noise", "image pixel noise (std)"),
               ("image_occlusion", "image occlusion (square side, px)"),
               ("audio_white", "white noise (SNR dB)"),
               ("audio_babble", "babble noise (SNR dB)"))


def _metrics(run: dict[str, Any]) -> dict[str, float | None]:
  return {"annotation": run["annotation"], "retrieval": run["retrieval"],
          "r1_image_to_speech": run["recall"]["image_to_speech"]["R@1"],
          "r1_speech_to_image": run["recall"]["speech_to_image"]["R@1"],
          "image_classifier": run.get("image_classifier_accuracy"),
          "speech_classifier": run.get("speech_classifier_accuracy")}


def _stats(values: list) -> dict[str, Any] | None:
  values = [v for v in values if v is not None]
  return mean_ci(values) if values else None


def summarise(experiment: dict[str, Any]) -> dict[str, Any]:
  """Mean and 95% CI over seeds, per split and averaged over splits.

  The average over splits is taken per seed first, so its interval is over
  seeds too.
  """
  runs = experiment["runs"]
  split_names = list(dict.fromkeys(r["split"] for r in runs))
  seeds = sorted({r["seed"] for r in runs})
  per_split = {}
  for name in split_names:
    rows = [_metrics(r) for r in runs if r["split"] == name]
    per_split[name] = {k: _stats([row[k] for row in rows]) for k in rows[0]}
  averaged = {}
  for key in _metrics(runs[0]):
    per_seed = []
    for seed in seeds:
      vals = [_metrics(r)[key] for r in runs if r["seed"] == seed]
      vals = [v for v in vals if v is not None]
      if vals:
        per_seed.append(float(np.mean(vals)))
    averaged[key] = _stats(per_seed)
  out = {"name": experiment["name"], "title": experiment["title"],
         "splits": per_split, "average": averaged, "seeds": len(seeds),
         "seconds": experiment.get("seconds"),
         "train_seconds_per_run": float(np.mean(
             [r["train_seconds"] for r in runs]))}
  if all("robustness" in r for r in runs):
    out["robustness"] = _robustness(runs)
  return out


def _robustness(runs: list[dict[str, Any]]) -> dict[str, Any]:
  curves = {}
  for kind in runs[0]["robustness"]:
    points = []
    for i, point in enumerate(runs[0]["robustness"][kind]):
      points.append({
          "strength": point["strength"],
          **{m: mean_ci([r["robustness"][kind][i][m] for r in runs])
             for m in ("annotation", "retrieval")}})
    curves[kind] = points
  return curves


def _pct(stat: dict[str, Any] | None, mean_format: str = ".2f",
         unit: str = "%") -> str:
  """"mean% ± ci" of a mean_ci dict (no interval for one value)."""
  if stat is None:
    return "-"
  text = f"{100 * stat['mean']:{mean_format}}{unit}"
  return text + (f" ± {100 * stat['ci95']:.2f}" if len(stat["values"]) > 1
                 else "")


def markdown(summaries: list[dict[str, Any]], skipped: dict[str, str],
             command: str, data_line: str) -> str:
  """The results section: main table, per-split tables, figure links."""
  lines = [f"Command: `{command}`", "", data_line, "",
           "| Experiment | " + " | ".join(t for _, t in METRICS)
           + " | Seeds | Time (s) |",
           "| --- " * (len(METRICS) + 3) + "|"]
  for s in summaries:
    stats = s["average"]
    label = s["title"] + (f" (mean over {len(s['splits'])} splits)"
                          if len(s["splits"]) > 1 else "")
    seconds = f"{s['seconds']:.0f}" if s.get("seconds") else "-"
    lines.append(f"| {label} (`{s['name']}`) | "
                 + " | ".join(_pct(stats[k]) for k, _ in METRICS)
                 + f" | {s['seeds']} | {seconds} |")
  for s in summaries:
    if len(s["splits"]) > 1:
      lines += ["", f"Per split, `{s['name']}` ({s['title']}):", "",
                "| Held out | Speech classifier | Annotation | Retrieval |",
                "| --- | --- | --- | --- |"]
      for name, stats in s["splits"].items():
        lines.append(f"| {name} | {_pct(stats['speech_classifier'])} | "
                     f"{_pct(stats['annotation'])} | "
                     f"{_pct(stats['retrieval'])} |")
  classifiers = [s for s in summaries
                 if s["average"]["image_classifier"] is not None
                 or s["average"]["speech_classifier"] is not None]
  if classifiers:
    lines += ["", "Pretrained classifiers' test accuracy (where used):", "",
              "| Experiment | Image convnet | Speech convnet |",
              "| --- | --- | --- |"]
    for s in classifiers:
      lines.append(f"| `{s['name']}` | "
                   f"{_pct(s['average']['image_classifier'])} | "
                   f"{_pct(s['average']['speech_classifier'])} |")
  if skipped:
    lines += ["", "Not run: " + "; ".join(f"`{k}` ({v})"
                                          for k, v in skipped.items())]
  return "\n".join(lines) + "\n"


def figures(summaries: list[dict[str, Any]],
            directory: pathlib.Path) -> list[pathlib.Path]:
  """robustness_image.png and robustness_audio.png: annotation (solid) and
  retrieval (dashed) against corruption strength, mean with 95% CI bars."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  robust = [s for s in summaries if "robustness" in s]
  if not robust:
    return []
  directory.mkdir(parents=True, exist_ok=True)
  written = []
  for name, kinds in (("robustness_image.png", CORRUPTIONS[:2]),
                      ("robustness_audio.png", CORRUPTIONS[2:])):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, (kind, xlabel) in zip(axes, kinds, strict=True):
      for i, s in enumerate(robust):
        points = s["robustness"][kind]
        x = [p["strength"] for p in points]
        for metric, style in (("annotation", "-"), ("retrieval", "--")):
          ax.errorbar(x, [100 * p[metric]["mean"] for p in points],
                      yerr=[100 * p[metric]["ci95"] for p in points],
                      fmt=style + "o", color=f"C{i}", markersize=3,
                      capsize=2, label=f"{s['name']} {metric}")
      if kind.startswith("audio"):
        ax.invert_xaxis()
      ax.set_xlabel(xlabel)
      ax.set_ylabel("accuracy (%)")
      ax.set_ylim(0, 100)
      ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    path = directory / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
  return written


ABLATION_METRICS = (("speech_classifier", "Speech convnet"),
                    ("annotation", "Annotation"), ("retrieval", "Retrieval"))


def gains(runs: list[dict[str, Any]], base_runs: list[dict[str, Any]]
          ) -> dict[str, dict[str, Any] | None]:
  """Each metric's gain over the baseline, paired by (split, seed): mean
  and 95% t-interval over the pairs."""
  base = {(r["split"], r["seed"]): _metrics(r) for r in base_runs}
  out = {}
  for key, _ in ABLATION_METRICS:
    diffs = []
    for run in runs:
      other = base.get((run["split"], run["seed"]))
      mine = _metrics(run)[key]
      if other is not None and mine is not None and other[key] is not None:
        diffs.append(mine - other[key])
    out[key] = _stats(diffs)
  return out


def gains_markdown(summaries: list[dict[str, Any]],
                   runs_by_name: dict[str, list[dict[str, Any]]],
                   baseline: str, command: str, data_line: str) -> str:
  """An ablation table: each experiment's figures (mean over splits, CI
  over seeds), its gain over `baseline` (CI over paired (split, seed) runs)
  and, with more than one split, its worst split."""
  per_split = any(len(s["splits"]) > 1 for s in summaries)
  header = (["Method"] + [t for _, t in ABLATION_METRICS]
            + [f"Gain: {t.lower()}" for _, t in ABLATION_METRICS]
            + ["Worst held-out speaker (annotation)"] * per_split
            + ["Seeds"])
  lines = [f"Command: `{command}`", "", data_line, "",
           "| " + " | ".join(header) + " |", "| --- " * len(header) + "|"]
  for s in summaries:
    gain = gains(runs_by_name[s["name"]], runs_by_name[baseline])
    worst_name, worst = min(
        ((name, stats["annotation"]) for name, stats in s["splits"].items()),
        key=lambda item: item[1]["mean"])
    cells = ([f"{s['title']} (`{s['name']}`)"]
             + [_pct(s["average"][k]) for k, _ in ABLATION_METRICS]
             + (["(baseline)"] * len(ABLATION_METRICS)
                if s["name"] == baseline
                else [_pct(gain[k], "+.2f", "") for k, _ in ABLATION_METRICS])
             + [f"{worst_name} {100 * worst['mean']:.2f}%"] * per_split
             + [str(s["seeds"])])
    lines.append("| " + " | ".join(cells) + " |")
  lines.append("")
  return "\n".join(lines)


# The selection's criterion: each corpus's R@1 speech -> image on the
# validation people, averaged over the corpora (so the few clips of many
# people weigh as much as the many clips of one more FSDD voice).
SELECTION_METRIC = "r1_speech_to_image, mean over corpora"


def _corpus_mean(run: dict[str, Any]) -> float | None:
  figures = run.get("by_corpus")
  if not figures:
    return None
  return float(np.mean([f["r1_speech_to_image"] for f in figures.values()]))


def selection(runs_by_name: dict[str, list[dict[str, Any]]]
              ) -> dict[str, Any]:
  """Nested selection: for each outer split, the candidate whose
  SELECTION_METRIC (mean over seeds) on that split's validation part is
  highest (ties go to the candidate listed first). Only runs of nested
  splits (with an `outer`) count; nothing of an outer test split is read.

  Returns {"metric", "outer": [names], "scores": {candidate: {outer:
  mean}}, "annotation" and "speech": {candidate: {outer: mean validation
  annotation / speech convnet accuracy}}, "choice": {outer: candidate}}.
  """
  names = list(runs_by_name)
  outers = list(dict.fromkeys(r["outer"] for runs in runs_by_name.values()
                              for r in runs if r.get("outer")))
  if not outers:
    raise ConfigError("--suite=select: no run of a nested split "
                      "(data.speech_splits 'nested:...')")

  def mean_of(name: str, outer: str, value) -> float | None:
    values = [value(r) for r in runs_by_name[name]
              if r.get("outer") == outer]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None

  def table(value) -> dict[str, dict[str, float | None]]:
    return {n: {o: mean_of(n, o, value) for o in outers} for n in names}

  scores = table(_corpus_mean)
  annotation = table(lambda r: _metrics(r)["annotation"])
  speech = table(lambda r: _metrics(r)["speech_classifier"])
  choice = {}
  for o in outers:
    scored = [(scores[n][o], -i, n) for i, n in enumerate(names)
              if scores[n][o] is not None]
    choice[o] = max(scored)[2]
  return {"metric": SELECTION_METRIC, "outer": outers, "scores": scores,
          "annotation": annotation, "speech": speech, "choice": choice}


def selection_markdown(summaries: list[dict[str, Any]],
                       chosen: dict[str, Any], command: str,
                       data_line: str) -> str:
  """The selection table: each candidate's validation criterion per outer
  split (annotation in brackets), its mean, its mean annotation and speech
  convnet accuracy, and how many outer splits chose it; then the choice
  per outer split."""
  titles = {s["name"]: s["title"] for s in summaries}
  outers = chosen["outer"]
  header = (["Candidate"] + [f"{o}" for o in outers]
            + ["Mean", "Mean annotation", "Mean speech convnet", "Chosen in"])
  lines = [f"Command: `{command}`", "", data_line, "",
           "Each cell: validation R@1 speech -> image, averaged over the "
           "corpora (annotation in brackets), on the outer split's own "
           "training people and a validation part of its training images; "
           "no outer test person or test image is read. The outer split's "
           "choice in bold.", "",
           "| " + " | ".join(header) + " |", "| --- " * len(header) + "|"]
  for name, per_outer in chosen["scores"].items():
    cells = [f"{titles.get(name, name)} (`{name}`)"]
    for o in outers:
      value, ann = per_outer[o], chosen["annotation"][name][o]
      text = "-" if value is None else f"{100 * value:.2f}%"
      if ann is not None:
        text += f" ({100 * ann:.1f}%)"
      cells.append(f"**{text}**" if chosen["choice"][o] == name else text)
    for values in (per_outer, chosen["annotation"][name],
                   chosen["speech"][name]):
      values = [v for v in values.values() if v is not None]
      cells.append(f"{100 * np.mean(values):.2f}%" if values else "-")
    wins = sum(c == name for c in chosen["choice"].values())
    cells.append(f"{wins} of {len(outers)}")
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "Choice per outer split: " + ", ".join(
      f"{o}: `{c}`" for o, c in chosen["choice"].items()) + ".", ""]
  return "\n".join(lines)
