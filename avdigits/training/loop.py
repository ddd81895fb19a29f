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
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from avdigits.errors import Interrupted
from avdigits.training import checkpoint, metrics
from avdigits.training.workdir import Stage

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
  return train_stages_in_chunks(
      [stage], initial_state, stacked=False, steps=steps,
      steps_per_chunk=steps_per_chunk, run_chunk=run_chunk,
      summarise=summarise, what=what, flag=flag,
      show_progress=show_progress, tensorboard=tensorboard)[0]


def _part(tree: Any, index: int, stacked: bool) -> Any:
  return jax.tree.map(lambda a: a[index], tree) if stacked else tree


def train_stages_in_chunks(stages: Sequence[Stage], initial_state: Any, *,
                           stacked: bool, steps: int, steps_per_chunk: int,
                           run_chunk: ChunkFn, summarise: SummaryFn,
                           what: str = "loss", flag: str = "train",
                           show_progress: bool = False,
                           tensorboard: bool | None = None
                           ) -> list[LoopResult]:
  """`train_in_chunks` for one stage or, with `stacked`, for several
  trained together as one state stacked on a leading axis (vmapped seeds):
  `run_chunk` then returns values [stages, steps], and each stage keeps its
  own checkpoints, metric rows and result. Stacked stages resume from the
  newest step that all of them have kept."""
  resumed = [stage.resume(_part(initial_state, i, stacked))
             for i, stage in enumerate(stages)]
  common = min(int(state["step"]) for _, state, _ in resumed)
  if any(int(state["step"]) != common for _, state, _ in resumed):
    for checkpointer, _, _ in resumed:
      checkpointer.close()
    resumed = [stage.resume(_part(initial_state, i, stacked), step=common)
               for i, stage in enumerate(stages)]
  checkpointers = [r[0] for r in resumed]
  histories = [r[2] for r in resumed]
  state = (jax.tree.map(lambda *parts: np.stack(parts),
                        *(r[1] for r in resumed))
           if stacked else resumed[0][1])
  writers = [metrics.create_default_writer(stage.directory, stage.name,
                                           tensorboard=tensorboard)
             for stage in stages]
  for writer, stage in zip(writers, stages, strict=True):
    writer.write_hparams(stage.settings)
  step = common
  start = time.perf_counter()
  try:
    with tqdm(total=steps, initial=step, desc=stages[0].name, leave=False,
              disable=not show_progress) as bar:
      while step < steps:
        num_steps = min(steps_per_chunk, steps - step)
        chunk_start = time.perf_counter()
        state, values = run_chunk(state, step, num_steps)
        values = np.asarray(values)
        speed = num_steps / (time.perf_counter() - chunk_start)
        for i, stage in enumerate(stages):
          stage.check_finite(_part(values, i, stacked), step, what, flag)
        step += num_steps
        for i in range(len(stages)):
          part = _part(state, i, stacked)
          row = {"step": step, **summarise(part, _part(values, i, stacked))}
          histories[i].append(row)
          writers[i].write_scalars(step, {**{k: v for k, v in row.items()
                                             if k != "step"},
                                          "steps_per_second": speed})
          checkpointers[i].save(step, part)
        bar.update(num_steps)
  except Interrupted as stop:
    # The newest step every stage has kept (a signal deferred by a save
    # arrives as that save ends).
    saved = min(common if c.last_saved is None else c.last_saved
                for c in checkpointers)
    names = ", ".join(str(s.directory) for s in stages)
    stop.where = (f"stage {names} at step {saved} (its last checkpoint)"
                  if saved else f"stage {names} before its first checkpoint")
    raise
  finally:
    # Closed on every exit, so that no checkpointing thread outlives it.
    for checkpointer, writer in zip(checkpointers, writers, strict=True):
      checkpointer.close()
      writer.close()
  seconds = time.perf_counter() - start
  return [LoopResult(_part(state, i, stacked), history, seconds)
          for i, history in enumerate(histories)]


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
