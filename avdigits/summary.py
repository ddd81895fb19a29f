"""Figures over seeds and folds: means with 95% t-intervals, and their text."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats


def mean_ci(values: list[float]) -> dict[str, Any]:
  """Mean and the half-width of its 95% t-interval (0 for one value)."""
  values = [float(v) for v in values]
  n = len(values)
  half = 0.0
  if n > 1:
    half = float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) /
                 np.sqrt(n))
  return {"mean": float(np.mean(values)), "ci95": half, "values": values}


def pct(mean: float, ci: float | None = None) -> str:
  """A fraction as '12.34%', with ' ± 1.23' when a CI is given."""
  text = f"{100 * mean:.2f}%"
  return f"{text} ± {100 * ci:.2f}" if ci else text


def markdown_banner(title: str, command: str, data: dict[str, Any]
                    ) -> list[str]:
  """A report.md's first lines: title, command, a synthetic-data warning
  and the data line (sources, splits, counts, test speakers)."""
  lines = [f"# {title}", "", f"Command: `{command}`", ""]
  if data.get("synthetic"):
    lines += ["**SYNTHETIC DATA** (rendered fonts / eSpeak NG): these "
              "numbers say nothing about real digits.", ""]
  speakers = data["speakers"]
  lines.append(
      f"Data: images `{data['image_source']}` (split "
      f"`{data['image_split']}`), speech `{data['speech_source']}` (split "
      f"`{data['speech_split']}`); counts {data['counts']}; test speakers "
      f"{speakers.get('test', speakers.get('held_out_in_turn', []))}.")
  return lines
