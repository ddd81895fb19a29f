"""report.json, report.md and the matchmap figure of a digit-strings run.

`strings.<L>` holds each figure's mean over runs ((held-out speaker,) seed)
with `strings.<L>.ci95` (95% t-interval half-widths, same keys) and
`strings.<L>.per_run`; under loso, `splits.<speaker>.strings.<L>` holds
each held-out speaker's means over seeds.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import numpy as np

from avdigits.summary import markdown_banner, mean_ci, pct
from avdigits.training.workdir import write_json_atomic

FIGURES = ("recall", "chance_R@1", "reading", "localisation",
           "localisation_aligned")


def _figures(run_strings: dict[str, Any]) -> dict[str, Any]:
  return {length: {k: v for k, v in figures.items() if k in FIGURES}
          for length, figures in run_strings.items()}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
  """{length: {recall, reading, localisation (means), ci95, per_run}}."""
  per_run = [_figures(r["strings"]) for r in runs]
  stats = jax.tree.map(lambda *v: mean_ci(list(v)), *per_run)
  out = {}
  for length in per_run[0]:
    entry = jax.tree.map(lambda m: m["mean"], stats[length],
                         is_leaf=lambda x: isinstance(x, dict) and "mean" in x)
    entry["ci95"] = jax.tree.map(
        lambda m: m["ci95"], stats[length],
        is_leaf=lambda x: isinstance(x, dict) and "mean" in x)
    entry["per_run"] = [p[length] for p in per_run]
    out[length] = entry
  return out


def test_sets(runs: list[dict[str, Any]]) -> dict[str, dict[str, list]]:
  """{split: {length: digests of the test strings its runs met}}: one
  digest per length when every seed of a split met the same strings."""
  out: dict[str, dict[str, set]] = {}
  for r in runs:
    split = out.setdefault(r["reader"]["split"], {})
    for length, figures in r["strings"].items():
      split.setdefault(length, set()).add(figures["test_strings"])
  return {split: {length: sorted(d) for length, d in by_length.items()}
          for split, by_length in out.items()}


def aggregate(runs: list[dict[str, Any]], *, data: dict, config: dict,
              seed: int, timings: dict[str, float],
              splits: dict[str, list[dict[str, Any]]] | None = None
              ) -> dict[str, Any]:
  """The report.json dict of a strings run."""
  report: dict[str, Any] = {
      "data": data, "config": config, "seed": seed,
      "seeds": sorted({r["seed"] for r in runs}), "timings_s": timings,
      "runs": len(runs), "strings": summarise(runs),
      "test_sets": test_sets(runs),
      "reader": [r["reader"] for r in runs if "reader" in r]}
  if "train" in runs[0]:
    report["train"] = {"history": runs[0]["train"]["history"],
                       "train_seconds": [r["train"]["train_seconds"]
                                         for r in runs]}
  if splits:
    report["splits"] = {name: {"strings": summarise(split_runs)}
                        for name, split_runs in splits.items()}
  return report


def _row(length: str, entry: dict[str, Any]) -> str:
  r, ci = entry["recall"], entry["ci95"]["recall"]
  cells = [pct(r[d][k], ci[d][k]) for d in ("speech_to_image",
                                             "image_to_speech")
           for k in ("R@1", "R@10")]
  cells.append(pct(entry["chance_R@1"]))
  cells += [pct(entry["reading"]["string_accuracy"],
                entry["ci95"]["reading"]["string_accuracy"]),
            pct(entry["reading"]["digit_error_rate"],
                entry["ci95"]["reading"]["digit_error_rate"])]
  for key in ("localisation", "localisation_aligned"):
    cells.append(pct(entry[key], entry["ci95"][key]) if key in entry
                 else "-")
  return f"| {length} | " + " | ".join(cells) + " |"


HEADER = ["| Length | speech→image R@1 | R@10 | image→speech R@1 | R@10 | "
          "chance R@1 | reading (string) | digit error rate | localisation "
          "| localisation (aligned) |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]


def markdown(report: dict[str, Any], command: str) -> str:
  lines = markdown_banner("avdigits report: digit strings", command,
                          report["data"])
  same = all(len(d) == 1 for by_length in report["test_sets"].values()
             for d in by_length.values())
  lines += [f"Seeds: {report['seeds']}; {report['runs']} run(s) (mean ± 95% "
            f"CI half-width over runs). Test strings per length: "
            f"{report['config']['strings']['test_strings']}, "
            f"{'the same' if same else 'not the same'} for every seed; "
            f"chance R@1 is that of random scores on them.", ""]
  for r in report.get("reader", []):
    keys = ("min_steps", "duration_weight", "word_bonus")
    best = next(row for row in r["dev"]
                if all(row[k] == r[k] for k in keys))
    lines.append(f"Reader of {r['split']} seed {r['seed']}, chosen on "
                 f"training strings: words of at least {r['min_steps']} "
                 f"steps, duration weight {r['duration_weight']}, bonus "
                 f"{r['word_bonus']} (dev string accuracy "
                 f"{pct(best['string_accuracy'])}); canvases of "
                 f"{r['prototypes']}.")
  lines.append("")
  lines += HEADER
  lines += [_row(length, entry) for length, entry in report["strings"].items()]
  for name, split in report.get("splits", {}).items():
    lines += ["", f"Held out: {name}", ""] + HEADER
    lines += [_row(length, entry)
              for length, entry in split["strings"].items()]
  lines += ["", "Timings (s): " + ", ".join(
      f"{k} {v:.1f}" for k, v in report["timings_s"].items())]
  if "platform" in report:
    p = report["platform"]
    lines += [f"Platform: {p['device_count']} {p['backend']} device(s) "
              f"({p['device_kind']}), JAX {p['jax_version']}."]
  lines += ["", "![matchmaps](matchmaps.png)", ""]
  return "\n".join(lines)


def matchmap_figure(examples: list[dict[str, Any]], path: pathlib.Path
                    ) -> None:
  """Heat maps of example pairs' matchmaps (speech steps down, image
  columns across), each word's start and end as horizontal lines and each
  digit's box as vertical lines."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, len(examples), figsize=(4 * len(examples), 5),
                           squeeze=False)
  for ax, example in zip(axes[0], examples, strict=True):
    maps = np.asarray(example["matchmap"])
    ax.imshow(maps, aspect="auto", cmap="viridis", interpolation="nearest")
    for start, stop in example["boxes"]:
      for x in (start, stop):
        ax.axvline(x - 0.5, color="white", linewidth=0.8)
    for start, stop in example["words"] or []:
      for y in (start, stop):
        ax.axhline(y - example["first_step"] - 0.5, color="red",
                   linewidth=0.8)
    ax.set_title("spoken and written: " + "".join(
        str(d) for d in example["digits"]))
    ax.set_xlabel("image step (4 columns)")
    ax.set_ylabel("speech step (40 ms)")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write(report: dict[str, Any], examples: list[dict[str, Any]],
          directory: pathlib.Path, command: str) -> None:
  """Writes report.json, report.md and matchmaps.png into `directory`."""
  directory.mkdir(parents=True, exist_ok=True)
  report["figures"] = []
  if examples:
    matchmap_figure(examples, directory / "matchmaps.png")
    report["figures"].append("matchmaps.png")
  write_json_atomic(directory / "report.json", report)
  (directory / "report.md").write_text(markdown(report, command))


def summary_lines(report: dict[str, Any]) -> list[str]:
  """One line of headline figures per string length."""
  lines = []
  for length, entry in report["strings"].items():
    r = entry["recall"]
    lines.append(
        f"length {length}: R@1 speech->image "
        f"{r['speech_to_image']['R@1']:.4f} image->speech "
        f"{r['image_to_speech']['R@1']:.4f}  reading "
        f"{entry['reading']['string_accuracy']:.4f} (DER "
        f"{entry['reading']['digit_error_rate']:.4f})  localisation "
        f"{entry.get('localisation', float('nan')):.4f}")
  return lines


def examples_of(runs: list[dict[str, Any]], length: str = "4"
                ) -> list[dict[str, Any]]:
  """The first run's example matchmaps of `length` (else its first)."""
  figures = runs[0]["strings"]
  entry = figures.get(length) or next(iter(figures.values()))
  return entry.get("examples", [])
