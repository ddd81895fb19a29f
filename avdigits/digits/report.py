"""Aggregates per-seed results into report.json, report.md and figures."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from avdigits.data.types import SPEECH_CLASS_NAMES
from avdigits.summary import markdown_banner, mean_ci, pct
from avdigits.training.workdir import write_atomic, write_json_atomic

# The paper's figures as fractions; a pair is a range it reports.
PAPER: dict[str, float | tuple[float, float]] = {
    "image": 0.993, "speech_512": (0.893, 0.896),
    "speech_1024": (0.947, 0.953), "annotation": 0.885, "retrieval": 0.876}


def paper_text(figure: float | tuple[float, float] | None) -> str:
  """A paper figure in report.md's unit, percent: '99.30%' or a range
  '89.30-89.60%'; '-' when the paper has none."""
  if figure is None:
    return "-"
  if isinstance(figure, tuple):
    low, high = figure
    return f"{100 * low:.2f}-{pct(high)}"
  return pct(figure)


def _acc(values: list[float]) -> dict[str, Any]:
  m = mean_ci(values)
  return {"test_accuracy": m["mean"], "test_accuracy_ci95": m["ci95"],
          "per_seed": m["values"]}


def aggregate(runs: list[dict[str, Any]], *, data: dict, config: dict,
              seed: int, timings: dict[str, float],
              splits: dict[str, list[dict[str, Any]]] | None = None
              ) -> dict[str, Any]:
  """Builds the report.json dict (stable keys, see DESIGN.md).

  With `splits` ({held-out speaker: its runs}, `runs` being all of them),
  the top-level figures are over every (speaker, seed) run and
  `splits.<speaker>.{speech_classifier,annotation,retrieval}` hold each
  speaker's mean and 95% CI over seeds.
  """
  report: dict[str, Any] = {
      "data": data, "config": config, "seed": seed,
      "seeds": sorted({r["seed"] for r in runs}), "timings_s": timings,
  }
  # Under several speech splits each seed's image convnet serves them all:
  # count it once per seed.
  image_runs = next(iter(splits.values())) if splits else runs
  report["image_classifier"] = _acc([r["image_test_accuracy"]
                                     for r in image_runs])
  report["speech_classifier"] = _acc([r["speech_test_accuracy"]
                                      for r in runs])
  report["speech_classifier"]["hidden"] = config["align"]["speech_hidden"]
  if "image_classifier" in runs[0]:  # training runs carry their curves
    report["image_classifier"]["history"] = runs[0]["image_classifier"][
        "history"]
    report["speech_classifiers"] = {}
    for h in runs[0]["speech_classifiers"]:
      entry = _acc([r["speech_classifiers"][h]["test_accuracy"]
                    for r in runs])
      entry["history"] = runs[0]["speech_classifiers"][h]["history"]
      report["speech_classifiers"][h] = entry
  for task in ("annotation", "retrieval"):
    m = mean_ci([r[task]["accuracy"] for r in runs])
    report[task] = {
        "accuracy": m["mean"], "accuracy_ci95": m["ci95"],
        "per_seed": m["values"],
        "per_class": np.mean([r[task]["per_class"] for r in runs],
                             0).tolist(),
        "confusion": np.sum([r[task]["confusion"] for r in runs],
                            0).tolist(),
    }
  report["recall"] = {
      direction: {k: mean_ci([r["recall"][direction][k] for r in runs])
                  for k in runs[0]["recall"][direction]}
      for direction in runs[0]["recall"]}
  if "align" in runs[0]:
    report["align"] = align_cost(runs[0]["align"])
  if "by_corpus" in runs[0]:
    report["by_corpus"] = _by_corpus(runs)
  if splits:
    report["splits"] = {name: _split_summary(split_runs)
                        for name, split_runs in splits.items()}
    worst = min(report["splits"],
                key=lambda n: report["splits"][n]["annotation"]["accuracy"])
    report["worst_split"] = {
        "name": worst,
        "annotation": report["splits"][worst]["annotation"]["accuracy"]}
  return report


def _by_corpus(runs: list[dict[str, Any]]) -> dict[str, Any]:
  """Each test corpus's figures, mean and 95% CI over runs (None where a
  corpus's test utterances lack a speech class)."""
  out = {}
  for name, first in runs[0]["by_corpus"].items():
    entry = {"test_utterances": first["test_utterances"]}
    for key in ("speech_test_accuracy", "annotation", "retrieval"):
      values = [r["by_corpus"][name][key] for r in runs]
      entry[key] = (None if any(v is None for v in values)
                    else mean_ci(values))
    if "missing_classes" in first:
      entry["missing_classes"] = first["missing_classes"]
    out[name] = entry
  return out


COST_BLOCK = 50_000  # the paper's cost figure samples every 50,000 iterations


def align_cost(align: dict[str, Any]) -> dict[str, Any]:
  """The aligner's cost curve in both units the paper's figure may mean.

  Per chunk of training: the mean hinge cost per iteration (one image
  against one utterance of every class), and that mean times 50,000 (the
  sum over 50,000 iterations: the chunk's own sum when chunks are 50,000
  long, as in the paper config). `dead_level` is the per-iteration cost of
  a dead clamped aligner (every score 0): margin times the negatives per
  iteration.
  """
  history = align.get("history", [])
  return {
      "history": history,
      "dead_level": align.get("dead_level"),
      "start": align.get("start"),
      "cost": {
          "step": [r["step"] for r in history],
          "mean_per_iteration": [r["cost_mean"] for r in history],
          f"sum_per_{COST_BLOCK}": [r["cost_mean"] * COST_BLOCK
                                    for r in history],
      },
  }


def _split_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
  """One held-out speaker's figures over its seeds."""
  out = {"speech_classifier": _acc([r["speech_test_accuracy"]
                                    for r in runs])}
  for task in ("annotation", "retrieval"):
    m = mean_ci([r[task]["accuracy"] for r in runs])
    out[task] = {"accuracy": m["mean"], "accuracy_ci95": m["ci95"],
                 "per_seed": m["values"]}
  return out


def _by_corpus_lines(report: dict[str, Any]) -> list[str]:
  """Each test corpus on its own row, with how many of its test speakers
  were heard in training (speaker-dependent rows say so)."""
  people = report["data"].get("test_speakers_by_corpus", {})
  lines = ["", "Each test corpus (all test images):", "",
           "| Test corpus | utterances | test speakers heard in training | "
           "Speech convnet | Annotation | Retrieval |",
           "| --- | --- | --- | --- | --- | --- |"]
  for name, entry in report["by_corpus"].items():
    heard = people.get(name, {})
    cells = [pct(entry[k]["mean"], entry[k]["ci95"]) if entry[k] else
             f"- (no {entry.get('missing_classes')})"
             for k in ("speech_test_accuracy", "annotation", "retrieval")]
    lines.append(f"| {name} | {entry['test_utterances']} | "
                 f"{heard.get('heard_in_training', '?')} of "
                 f"{heard.get('test_speakers', '?')} | " + " | ".join(cells)
                 + " |")
  return lines


def markdown(report: dict[str, Any], command: str) -> str:
  """A results table beside the paper's, with data, split, seeds, timings."""
  d = report["data"]
  seeds = report["seeds"]
  rows = [("Image convnet (test acc.)", report["image_classifier"],
           "test_accuracy", PAPER["image"])]
  for h, entry in report.get("speech_classifiers", {}).items():
    rows.append((f"Speech convnet N={h} (test acc.)", entry, "test_accuracy",
                 PAPER.get(f"speech_{h}")))
  rows += [("Image annotation", report["annotation"], "accuracy",
            PAPER["annotation"]),
           ("Image retrieval", report["retrieval"], "accuracy",
            PAPER["retrieval"])]
  lines = markdown_banner("avdigits report", command, d)
  lines += [f"Seeds: {seeds} (mean ± 95% CI half-width over seeds).", "",
            "| Result | avdigits | paper |", "| --- | --- | --- |"]
  for name, entry, key, paper in rows:
    lines.append(f"| {name} | {pct(entry[key], entry.get(key + '_ci95'))} "
                 f"| {paper_text(paper)} |")
  if report.get("splits"):
    lines += ["", "Each held-out speaker or fold (trained on the rest):", "",
              "| Held out | Speech convnet | Annotation | Retrieval |",
              "| --- | --- | --- | --- |"]
    for name, entry in report["splits"].items():
      cells = [pct(entry["speech_classifier"]["test_accuracy"],
                    entry["speech_classifier"]["test_accuracy_ci95"])]
      cells += [pct(entry[task]["accuracy"], entry[task]["accuracy_ci95"])
                for task in ("annotation", "retrieval")]
      lines.append(f"| {name} | " + " | ".join(cells) + " |")
  if report.get("by_corpus"):
    lines += _by_corpus_lines(report)
  lines += ["", "| Recall@k | R@1 | R@5 | R@10 |", "| --- | --- | --- | --- |"]
  for direction, values in report["recall"].items():
    cells = " | ".join(pct(values[k]["mean"], values[k]["ci95"])
                       for k in ("R@1", "R@5", "R@10"))
    lines.append(f"| {direction.replace('_', ' ')} | {cells} |")
  lines += ["", "Timings (s): " + ", ".join(
      f"{k} {v:.1f}" for k, v in report["timings_s"].items())]
  if "platform" in report:
    p = report["platform"]
    lines += [f"Platform: {p['device_count']} {p['backend']} device(s) "
              f"({p['device_kind']}) in {p['process_count']} process(es), "
              f"JAX {p['jax_version']}, matmul precision "
              f"{p['matmul_precision']}."]
  lines += [""]
  lines += ["![annotation](annotation_confusion.png) "
            "![retrieval](retrieval_confusion.png)",
            "![curves](classifier_curves.png) ![cost](align_cost.png)", ""]
  return "\n".join(lines)


def _save_figure(fig: Any, path: pathlib.Path) -> None:
  """Writes `fig` as a PNG, atomically (see workdir.write_atomic)."""
  write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110),
               "the figure", binary=True)


def figures(report: dict[str, Any], directory: pathlib.Path) -> list[str]:
  """Writes the paper's Figures 4-7 analogues and the cost curve as PNG."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  written = []
  num_classes = report["data"]["num_speech_classes"]
  speech_names = list(SPEECH_CLASS_NAMES[:num_classes])
  digit_names = [str(d) for d in range(10)]
  for task, rows, cols in (("annotation", digit_names, speech_names),
                           ("retrieval", speech_names, digit_names)):
    confusion = np.asarray(report[task]["confusion"], float)
    confusion /= np.maximum(confusion.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    im = ax.imshow(confusion, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cols)), cols, rotation=45)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted speech class" if task == "annotation"
                  else "retrieved image digit")
    ax.set_ylabel("image digit" if task == "annotation" else
                  "query speech class")
    ax.set_title(f"{task}: {100 * report[task]['accuracy']:.1f}%")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    name = f"{task}_confusion.png"
    _save_figure(fig, directory / name)
    plt.close(fig)
    written.append(name)

  fig, ax = plt.subplots(figsize=(6, 4))
  curves = [("image", report["image_classifier"]["history"])]
  curves += [(f"speech N={h}", e["history"])
             for h, e in report["speech_classifiers"].items()]
  for label, history in curves:
    if history:
      ax.plot([r["step"] for r in history],
              [100 * r["test_accuracy"] for r in history], label=label)
  ax.set_xlabel("training step")
  ax.set_ylabel("test accuracy (%)")
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  _save_figure(fig, directory / "classifier_curves.png")
  plt.close(fig)
  written.append("classifier_curves.png")

  align = report.get("align", {})
  history = align.get("history", [])
  if history:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["step"] for r in history], [r["cost_mean"] for r in history],
            label="cost")
    if align.get("dead_level"):
      ax.axhline(align["dead_level"], color="tab:red", linestyle="--",
                 label=f"dead (every score 0): {align['dead_level']:g}")
      ax.legend()
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("mean hinge cost per iteration (chunk)")
    ax.secondary_yaxis("right", functions=(lambda c: c * COST_BLOCK,
                                           lambda c: c / COST_BLOCK)
                       ).set_ylabel(f"sum over {COST_BLOCK:,} iterations")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save_figure(fig, directory / "align_cost.png")
    plt.close(fig)
    written.append("align_cost.png")
  return written


def write(report: dict[str, Any], directory: pathlib.Path,
          command: str) -> None:
  """Writes report.json, report.md and the figures into `directory`."""
  directory.mkdir(parents=True, exist_ok=True)
  report["figures"] = figures(report, directory)
  write_json_atomic(directory / "report.json", report, "the report")
  write_atomic(directory / "report.md",
               lambda f: f.write(markdown(report, command)), "the report")
