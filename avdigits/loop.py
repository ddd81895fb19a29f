"""The one training loop and the one stage lifecycle every trainer uses.

`train_in_chunks` owns everything around the optimisation itself: resuming
from the stage's newest checkpoint, the progress bar, the non-finite check,
one metric row per chunk (written through `metrics.create_default_writer`,
with steps/s), a checkpoint per chunk and the timing. A trainer hands it a
chunk function and a summary function. `run_stage` is the lifecycle around
it: a finished stage is restored, an unfinished one trained, its parameters
kept and its result written.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm import tqdm

from avdigits import checkpoint, metrics
from avdigits.workdir import Stage

# (state, first step, number of steps) -> (state, one value per step).
ChunkFn = Callable[[Any, int, int], tuple[Any, Any]]
# (state after the chunk, the chunk's values) -> the chunk's metric row.
SummaryFn = Callable[[Any, np.ndarray], dict[str, float]]


@dataclasses.dataclass
class LoopResult:
  state: Any
  history: list[dict[str, Any]]  # {"step": ..., **summary} per chunk
  train_seconds: float


def train_in_chunks(stage: Stage, initial_state: Any, *, steps: int,
                    steps_per_chunk: int, run_chunk: ChunkFn,
                    summarise: SummaryFn, what: str = "loss",
                    flag: str = "train", show_progress: bool = False,
                    tensorboard: bool | None = None) -> LoopResult:
  """Runs `run_chunk` until `initial_state["step"]` reaches `steps`.

  Resumes from the stage's newest readable checkpoint, whose metric rows are
  kept. After each chunk the per-step values (`what`: "loss", "cost") must
  be finite (else a TrainingError naming the stage, step and surviving
  checkpoint, and `--config.<flag>.learning_rate`), then the row
  {"step", **summarise(state, values)} is logged and the state saved.
  """
  checkpointer, state, history = stage.resume(initial_state)
  writer = metrics.create_default_writer(stage.directory, stage.name,
                                         tensorboard=tensorboard)
  writer.write_hparams(stage.settings)
  step = int(state["step"])
  start = time.perf_counter()
  with tqdm(total=steps, initial=step, desc=stage.name, leave=False,
            disable=not show_progress) as bar:
    while step < steps:
      num_steps = min(steps_per_chunk, steps - step)
      chunk_start = time.perf_counter()
      state, values = run_chunk(state, step, num_steps)
      values = np.asarray(values)
      seconds = time.perf_counter() - chunk_start
      stage.check_finite(values, step, what, flag)
      step += num_steps
      row = {"step": step, **summarise(state, values)}
      history.append(row)
      writer.write_scalars(step, {**{k: v for k, v in row.items()
                                     if k != "step"},
                                  "steps_per_second": num_steps / seconds})
      checkpointer.save(step, state)
      bar.update(num_steps)
  checkpointer.close()
  writer.close()
  return LoopResult(state, history, time.perf_counter() - start)


def run_stage(stage: Stage, train: Callable[[], tuple[dict[str, Any], Any]],
              params_template: Callable[[], Any] | None = None
              ) -> tuple[dict[str, Any], Any]:
  """(result, params) of a stage: a finished stage's result and parameters
  (restored in the shape of `params_template()`; None without a template),
  else `train()`'s, its parameters kept in the stage and its result
  written last, so that a stage counts as done only when complete."""
  if stage.done():
    params = (checkpoint.restore_params(stage.directory, params_template())
              if params_template is not None else None)
    return stage.result(), params
  result, params = train()
  checkpoint.save_params(stage.directory, params)
  stage.finish(result)
  return result, params
