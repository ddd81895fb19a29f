"""The aligner over many initial draws: which starts the clamp kills.

With the clamp S = max(0, y . x) an aligner whose scores all reach 0 gets no
gradient and stays there, its cost fixed at the dead level (margin times
the negatives per iteration). Whether that happens depends on the initial
draw. `run_draws` trains the alignment stage of one finished seed from
`draws` initial draws under each initialisation (same convnets, same data),
each draw d with seed d for its parameters and its sampling, and records
each draw's fate.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Any

import ml_collections
import numpy as np

from avdigits import evaluate
from avdigits.models import convnets, nets
from avdigits.summary import mean_ci, pct
from avdigits.training import align
from avdigits.training.align import AlignSchedule, train_alignment
from avdigits.training.predict import make_predict_fn
from avdigits.training.workdir import Stage

# A draw is dead when its last chunk's mean cost per iteration is within
# this fraction of the dead level (a dead aligner sits exactly on it).
DEAD_TOLERANCE = 1e-3


def is_dead(last_cost: float, dead_level: float) -> bool:
  return abs(last_cost - dead_level) <= DEAD_TOLERANCE * dead_level


def run_draws(cfg: ml_collections.ConfigDict, data: Any, workdir: pathlib.Path,
              image_params: Any, speech_params: Any, *, inits: list[str],
              draws: int) -> list[dict[str, Any]]:
  """One row per (init, draw): fate, start score, annotation, retrieval.

  Each draw is a resumable stage under <workdir>/draws/<init>/draw_<d>.
  """
  image_net = nets.image_net(cfg.image)
  speech_net = nets.speech_net(cfg.speech, data.num_speech_classes,
                               cfg.align.speech_hidden)
  embed_image = make_predict_fn(image_net, method="embed")
  embed_speech = make_predict_fn(speech_net, method="embed")
  train_w = embed_image(image_params, data.train_images)
  train_v = embed_speech(speech_params, data.train_speech)
  test_w = embed_image(image_params, data.test_images)
  test_v = embed_speech(speech_params, data.test_speech)
  rows = []
  for init in inits:
    schedule = AlignSchedule.from_config(cfg.align, init=init)
    for draw in range(draws):
      stage = Stage(workdir / "draws" / init, f"draw_{draw}",
                    {"schedule": dataclasses.asdict(schedule), "draw": draw,
                     "image": repr(image_net), "speech": repr(speech_net)})
      # A finished draw resumes at its last checkpoint and returns at once.
      out = train_alignment(train_w, data.train_image_labels, train_v,
                            data.train_speech_labels, data.num_speech_classes,
                            schedule, seed=draw, stage=stage,
                            show_progress=False)
      aligner = convnets.Aligner(embed_dim=schedule.embed_dim)
      score = functools.partial(aligner.apply, {"params": out["params"]},
                                method="score_matrix")
      metrics = evaluate.evaluate_scores(
          np.asarray(score(test_w, test_v)), data.test_image_labels,
          data.test_speech_labels, data.num_speech_classes,
          trials=cfg.eval.trials, seed=cfg.seed)
      last = out["history"][-1]["cost_mean"]
      row = {"init": init, "draw": draw, **out["start"],
             "dead_level": out["dead_level"], "last_cost": last,
             "dead": is_dead(last, out["dead_level"]),
             "dead_digits": dead_digits(np.asarray(score(train_w, train_v)),
                                        data.train_image_labels,
                                        data.train_speech_labels),
             "annotation": metrics["annotation"]["accuracy"],
             "retrieval": metrics["retrieval"]["accuracy"],
             "train_seconds": (stage.result()["train_seconds"]
                               if stage.done() else out["train_seconds"])}
      stage.finish(row)
      rows.append(row)
  return rows


def dead_digits(scores: np.ndarray, image_digits: np.ndarray,
                speech_labels: np.ndarray) -> list[int]:
  """Digits none of whose matching training pairs scores above 0: the
  clamp passes no gradient to them (scores [images, utterances])."""
  positive = align.positive_mask(image_digits, speech_labels)
  return [int(d) for d in np.unique(image_digits)
          if not np.any(scores[image_digits == d][positive[image_digits == d]]
                        > 0)]


def fate(row: dict[str, Any]) -> str:
  if row["dead"]:
    return "dead"
  if row["dead_digits"]:
    return "digit " + ", ".join(map(str, row["dead_digits"])) + " dead"
  return "alive"


def _mean(values: list[float]) -> str:
  if not values:
    return "-"
  m = mean_ci(values)
  return pct(m["mean"], m["ci95"])


def summary_markdown(rows: list[dict[str, Any]]) -> str:
  """Per-init counts and means, then every draw."""
  lines = ["| Start | Draws | Alive | One or more digits dead | Dead | "
           "Annotation, all draws | Retrieval, all draws | Annotation, "
           "alive draws |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
  for init in dict.fromkeys(r["init"] for r in rows):
    mine = [r for r in rows if r["init"] == init]
    alive = [r for r in mine if fate(r) == "alive"]
    dead = [r for r in mine if r["dead"]]
    lines.append(
        f"| `{init}` | {len(mine)} | {len(alive)} | "
        f"{len(mine) - len(alive) - len(dead)} | {len(dead)} | "
        f"{_mean([r['annotation'] for r in mine])} | "
        f"{_mean([r['retrieval'] for r in mine])} | "
        f"{_mean([r['annotation'] for r in alive])} |")
  lines += ["", "| Start | Draw | Mean matching-pair score at start | "
            "Mirrored | Last cost per iteration (dead level) | Fate | "
            "Annotation | Retrieval |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
  for r in rows:
    lines.append(
        f"| `{r['init']}` | {r['draw']} | {r['mean_positive_score']:+.4f} | "
        f"{'yes' if r['mirrored'] else 'no'} | {r['last_cost']:.4f} "
        f"({r['dead_level']:g}) | {fate(r)} | "
        f"{pct(r['annotation'])} | {pct(r['retrieval'])} |")
  return "\n".join(lines) + "\n"
