r"""Throughput of every training loop and of feature extraction.

  python -m experiments.benchmark --output=/tmp/bench.json \
      [--batch_sizes=64,256] [--repeats=5] [--data_dir=DATA] \
      [--reproduce=true]

Each figure is measured after a warm-up call that compiles (compile time is
reported separately): median, min and max over --repeats timed blocks, on
whatever device JAX sees. Stable keys (medians):
image_train_images_per_s.{64,256}, speech_train_utterances_per_s.{64,256},
align_iterations_per_s, features_utterances_per_s.{python_speech_features,
jax}, seed_vmap5_examples_per_s.{image,image_study,speech_study}.{one_seed,
vmapped}, reproduce_seconds.
"""

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags

from avdigits import features, losses
from avdigits.data import sources
from avdigits.data.synthetic import synthetic_speech
from avdigits.errors import ConfigError
from avdigits.models import convnets
from avdigits.training import align, devices
from avdigits.training.classifier import (
  _init_state,
  batch_indices,
  make_step_fn,
)
from avdigits.training.optim import make_optimizer
from avdigits.training.workdir import read_json, write_json_atomic
from experiments import cli

_OUTPUT = flags.DEFINE_string("output", None, "JSON file for the figures.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["64", "256", "1024"],
                                 "Training batch sizes.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed blocks per figure.")
_STEPS = flags.DEFINE_integer("steps", 10, "Training steps per timed block.")
_ALIGN_ITERATIONS = flags.DEFINE_integer(
    "align_iterations", 50_000, "Alignment iterations per timed block.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Real FSDD for the feature benchmark (default "
    "$AVDIGITS_DATA_DIR; synthetic speech without one).")
_VMAP_SEEDS = flags.DEFINE_integer(
    "vmap_seeds", 5, "Also time one training step vmapped over this many "
    "seeds against one seed's step (0: skip).")
_REPRODUCE = flags.DEFINE_bool(
    "reproduce", False, "Also time a whole paper-config reproduce run.")


def _timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
  """Compiles/warms with one call, then times `repeats` calls."""
  start = time.perf_counter()
  jax.block_until_ready(fn())
  compile_s = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return {"compile_s": compile_s, "median_s": statistics.median(times),
          "min_s": min(times), "max_s": max(times)}


def _rate(timing: dict[str, float], work: int) -> dict[str, float]:
  return {"median": work / timing["median_s"], "min": work / timing["max_s"],
          "max": work / timing["min_s"], "compile_s": timing["compile_s"]}


def bench_classifier(model, shape: tuple[int, ...], num_classes: int,
                     batch_size: int, steps: int, repeats: int,
                     data_parallel: bool = False) -> dict:
  """Examples/s of Adam training steps on device-resident random data; with
  `data_parallel`, of the data-parallel step (`make_step_fn` with a mesh
  over every device: batch split over "data", state replicated)."""
  mesh = devices.data_mesh() if data_parallel else None
  if mesh is not None:
    devices.check_batch(batch_size, mesh, "benchmark")

  def place(a, split=False):
    if mesh is None:
      return jnp.asarray(a)
    return devices.global_batch(np.asarray(a), devices.batch_sharded(mesh)
                                if split else devices.replicated(mesh))

  rng = np.random.default_rng(0)
  n = max(batch_size * steps, 1024)
  x = place(rng.normal(size=(n, *shape)).astype(np.float32))
  y = place(rng.integers(0, num_classes, n).astype(np.int32))
  tx = make_optimizer("adam", 1e-3, 1000)
  step = make_step_fn(model, tx, mesh=mesh)
  state = {"s": jax.tree.map(place, _init_state(model, tx, x, 0))}
  indices = [place(idx, split=True)
             for idx in batch_indices(0, 0, steps, n, batch_size)]

  def block():
    s = state["s"]
    for idx in indices:
      s, loss = step(s, x, y, idx)
    state["s"] = s
    return loss

  return _rate(_timed(block, repeats), batch_size * steps)


def bench_seed_vmap(model, shape: tuple[int, ...], num_classes: int,
                    seeds: int, batch_size: int, steps: int,
                    repeats: int) -> dict:
  """Examples/s of `seeds` models trained together by one vmapped Adam step
  (each seed its own parameters and batch), against one model's step."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(seeds, batch_size, *shape)), jnp.float32)
  y = jnp.asarray(rng.integers(0, num_classes, (seeds, batch_size)),
                  jnp.int32)
  tx = make_optimizer("adam", 1e-3, 1000)

  def init(key):
    params = model.init(key, x[0, :1])["params"]
    return params, tx.init(params)

  def step(params, opt_state, xb, yb):
    grads = jax.grad(lambda p: losses.cross_entropy(
        model.apply({"params": p}, xb), yb))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  out = {}
  for name, n, fn, args in (
      ("one_seed", 1, jax.jit(step, donate_argnums=(0, 1)),
       (x[0], y[0])),
      ("vmapped", seeds, jax.jit(jax.vmap(step), donate_argnums=(0, 1)),
       (x, y))):
    keys = jax.random.split(jax.random.key(0), seeds)
    state = {"s": init(keys[0]) if n == 1 else jax.vmap(init)(keys)}

    def block(fn=fn, args=args, state=state):
      params, opt_state = state["s"]
      for _ in range(steps):
        params, opt_state = fn(params, opt_state, *args)
      state["s"] = (params, opt_state)
      return params

    out[name] = _rate(_timed(block, repeats), n * batch_size * steps)
  return out


def bench_align(iterations: int, repeats: int, hidden: int = 1024) -> dict:
  """Iterations/s of the paper's alignment SGD (1 image, 11 utterances)."""
  rng = np.random.default_rng(0)
  w = np.abs(rng.normal(size=(6400, 512))).astype(np.float32)
  v = np.abs(rng.normal(size=(2250, hidden))).astype(np.float32)
  digits = rng.integers(0, 10, 6400).astype(np.int32)
  classes = np.arange(2250, dtype=np.int32) % 11
  schedule = align.AlignSchedule(steps=iterations, steps_per_chunk=iterations)
  model = convnets.Aligner(embed_dim=schedule.embed_dim,
                         init_std=schedule.init_std)
  tx = make_optimizer("sgd", schedule.learning_rate, iterations)
  params = model.init(jax.random.key(0), w[:1], v[None, :11])["params"]
  # The same path train_alignment takes for this schedule (the fast one).
  run = (align.make_fast_sgd_chunk_fn(schedule, 11, schedule.block)
         if schedule.use_fast()
         else align.make_align_chunk_fn(model, tx, schedule, 11))
  table, counts = align.class_index_table(classes, 11)
  args = [jnp.asarray(a) for a in (w, digits, v, table, counts)]
  state = {"s": {"params": params, "opt_state": tx.init(params),
                 "step": jnp.zeros((), jnp.int32)}}

  def block():
    state["s"], costs = run(state["s"], *args, jax.random.key(0), 0,
                            iterations)
    return costs

  return _rate(_timed(block, repeats), iterations)


def bench_features(waveforms: list[np.ndarray], sample_rate: int,
                   repeats: int) -> dict:
  out = {}
  for backend in features.BACKENDS:
    timing = _timed(lambda b=backend: features.log_mel(
        waveforms, sample_rate, backend=b), repeats)
    out[backend] = _rate(timing, len(waveforms))
  return out


def bench_reproduce() -> dict:
  """Wall time of `reproduce` on the paper config, per stage."""
  with tempfile.TemporaryDirectory() as workdir:
    cmd = [sys.executable, "-m", "experiments.reproduce",
           f"--workdir={workdir}", "--config=experiments/configs/paper.py",
           "--progress=false"]
    if _DATA_DIR.value:
      cmd.append(f"--data_dir={_DATA_DIR.value}")
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=os.path.dirname(cli.CONFIG_DIR))
    total = time.perf_counter() - start
    stages = read_json(os.path.join(workdir, "report.json"))["timings_s"]
  return {"total": total, "stages": stages}


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {argv[1:]}")
  try:
    batch_sizes = [int(b) for b in _BATCH_SIZES.value]
  except ValueError as error:
    raise ConfigError(f"--batch_sizes={_BATCH_SIZES.value}: {error}") from None
  if _REPEATS.value <= 0 or min(batch_sizes) <= 0:
    raise ConfigError("--repeats and --batch_sizes must be > 0")
  repeats = _REPEATS.value
  result = {
      "device": str(jax.devices()[0]), "platform": devices.info(),
      "host_cpu_count": os.cpu_count(),
      "jax": jax.__version__, "jaxlib": jax.lib.__version__
      if hasattr(jax.lib, "__version__") else None,
      "python": platform.python_version(), "repeats": repeats,
  }
  detail = {}
  for key, model, shape, classes in (
      ("image_train_images_per_s", convnets.ImageNet(), (28, 28), 10),
      ("speech_train_utterances_per_s", convnets.SpeechNet(hidden=1024),
       (100, 23), 11)):
    detail[key] = {str(b): bench_classifier(model, shape, classes, b,
                                            _STEPS.value, repeats)
                   for b in batch_sizes}
    result[key] = {b: d["median"] for b, d in detail[key].items()}
    print(key, {b: round(v) for b, v in result[key].items()}, flush=True)
  key = f"data_parallel_images_per_s_{jax.device_count()}_devices"
  detail[key] = {str(b): bench_classifier(convnets.ImageNet(), (28, 28), 10,
                                          b, _STEPS.value, repeats,
                                          data_parallel=True)
                 for b in batch_sizes if b % jax.device_count() == 0}
  result[key] = {b: d["median"] for b, d in detail[key].items()}
  print(key, {b: round(v) for b, v in result[key].items()}, flush=True)
  if _VMAP_SEEDS.value > 0:
    key = f"seed_vmap{_VMAP_SEEDS.value}_examples_per_s"
    detail[key] = {}
    for name, model, shape, classes in (
        ("image", convnets.ImageNet(), (28, 28), 10),
        ("image_study", convnets.ImageNet(widths=(16, 32)), (28, 28), 10),
        ("speech_study", convnets.SpeechNet(hidden=512, num_classes=10),
         (100, 23), 10)):
      detail[key][name] = bench_seed_vmap(model, shape, classes,
                                          _VMAP_SEEDS.value, 64,
                                          _STEPS.value, repeats)
    result[key] = {name: {k: v["median"] for k, v in d.items()}
                   for name, d in detail[key].items()}
    print(key, {n: {k: round(v) for k, v in d.items()}
                for n, d in result[key].items()}, flush=True)
  detail["align_iterations_per_s"] = bench_align(_ALIGN_ITERATIONS.value,
                                                 repeats)
  result["align_iterations_per_s"] = detail["align_iterations_per_s"][
      "median"]
  print("align_iterations_per_s", round(result["align_iterations_per_s"]),
        flush=True)
  data_dir = sources.resolve_data_dir(_DATA_DIR.value)
  if data_dir is not None and (data_dir / "fsdd").is_dir():
    speech = sources.load_speech("fsdd", data_dir, seed=0, sample_rate=8000,
                                 synthetic_per_class=0)
  else:
    speech = synthetic_speech(100, sample_rate=8000)
  result["features_source"] = speech.source
  detail["features_utterances_per_s"] = bench_features(
      speech.waveforms, speech.sample_rate, repeats)
  result["features_utterances_per_s"] = {
      b: d["median"] for b, d in detail["features_utterances_per_s"].items()}
  print("features_utterances_per_s", {
      b: round(v) for b, v in result["features_utterances_per_s"].items()},
        flush=True)
  if _REPRODUCE.value:
    detail["reproduce"] = bench_reproduce()
    result["reproduce_seconds"] = detail["reproduce"]["total"]
    print("reproduce_seconds", round(result["reproduce_seconds"], 1))
  result["detail"] = detail
  write_output(result)


def write_output(result: dict) -> None:
  """Writes --output (when given) from process 0 only."""
  if _OUTPUT.value and devices.is_writer():
    write_json_atomic(_OUTPUT.value, result)


if __name__ == "__main__":
  cli.run(main)
