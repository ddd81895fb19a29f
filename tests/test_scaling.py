"""Scale-out on CPU: devices and precision settings, scanned chunks, and a
two-process job on localhost (data parallel over gloo, kill and resume)."""

import json
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avdigits.errors import ConfigError
from avdigits.models import convnets
from avdigits.training import classifier as train
from avdigits.training import devices, stages
from avdigits.training.workdir import Stage
from tests.conftest import run_reproduce, subprocess_env

REPO = pathlib.Path(__file__).resolve().parents[1]
# The quick config on the synthetic source, cut to a few chunks per stage.
TINY = ["--config=experiments/configs/quick.py",
        "--config.data.images=synthetic", "--config.data.speech=synthetic",
        "--config.data.speech_split=stratified",
        "--config.data.synthetic_images_per_class=20",
        "--config.data.synthetic_speech_per_class=8",
        "--config.image.epochs=2", "--config.speech.steps=40",
        "--config.speech.steps_per_chunk=10", "--config.align.steps=2000",
        "--config.align.steps_per_chunk=1000", "--config.eval.trials=10",
        "--noprogress"]


def _learnable(n=256, seed=0):
  """Images whose class is the mean brightness of one row band."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 10, n)
  x = rng.normal(0, 0.1, (n, 28, 28)).astype(np.float32)
  for i, c in enumerate(y):
    x[i, 2 * c:2 * c + 3] += 1.0
  return x, y


def test_scanned_chunks_match_python_driven_steps(tmp_path):
  x, y = _learnable()
  # Plain SGD and a few steps: float rounding stays at rounding level
  # (Adam's normalisation, and many steps, amplify it).
  schedule = train.ClassifierSchedule(batch_size=32, steps=4,
                                      steps_per_chunk=2, augment="shift",
                                      max_shift=2, optimizer="sgd",
                                      learning_rate=0.05)
  runs = {}
  for scan in ("false", "true"):
    runs[scan] = train.train_classifier(
        convnets.ImageNet(dropout=0.5), x, y, x[:64], y[:64], schedule,
        seed=3, stage=Stage(tmp_path / scan, "s", {}), flag="image",
        show_progress=False, scan=scan)
  plain, scanned = runs["false"]["history"], runs["true"]["history"]
  assert [r["step"] for r in scanned] == [2, 4]
  # The same batches, keys and updates: equal to float32 rounding.
  np.testing.assert_allclose([r["train_loss"] for r in scanned],
                             [r["train_loss"] for r in plain], rtol=1e-5)
  assert ([r["test_accuracy"] for r in scanned]
          == [r["test_accuracy"] for r in plain])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
               runs["true"]["params"], runs["false"]["params"])


def test_scan_choice_is_checked():
  assert devices.on_accelerator("false", "image.scan") is False
  assert devices.on_accelerator("true", "image.scan") is True
  assert devices.on_accelerator("auto", "image.scan") is (
      jax.default_backend() != "cpu")
  with pytest.raises(ConfigError, match=r"--config.image.scan='yes'"):
    devices.on_accelerator("yes", "image.scan")


def test_batch_must_split_over_the_data_axis():
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1] * 1), ("data",))
  devices.check_batch(64, mesh, "image")
  fake = type("Mesh", (), {"shape": {"data": 3}})()
  with pytest.raises(ConfigError, match=(
      r"--config.image.batch_size=64 does not split over the 3 devices of "
      r"the data axis; use a multiple of 3")):
    devices.check_batch(64, fake, "image")


_DATA_PARALLEL_HLO = """
import json, os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import jax, numpy as np
from avdigits.models import convnets
from avdigits.training import devices
from avdigits.training.classifier import _init_state, make_step_fn
from avdigits.training.optim import make_optimizer
mesh = devices.data_mesh()
model = convnets.ImageNet(widths=(2, 4), hidden=8)
tx = make_optimizer("adam", 1e-3, 10)
rep, split = devices.replicated(mesh), devices.batch_sharded(mesh)
x = jax.device_put(np.zeros((40, 28, 28), np.float32), rep)
y = jax.device_put(np.zeros(40, np.int32), rep)
idx = jax.device_put(np.arange(16, dtype=np.int32), split)
state = jax.device_put(_init_state(model, tx, x, 0), rep)
step = make_step_fn(model, tx, mesh=mesh)
hlo = step.lower(state, x, y, idx).compile().as_text()
print(json.dumps({"devices": mesh.shape["data"], "hlo": hlo}))
"""


def test_data_parallel_step_splits_the_batch_over_two_devices():
  """The compiled data-parallel step (compile only, two forced host
  devices): each device's program sees half the batch of 16, and the
  gradients meet in an all-reduce."""
  out = subprocess.run([sys.executable, "-c", _DATA_PARALLEL_HLO], cwd=REPO,
                       env=subprocess_env(), capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  hlo = result["hlo"]
  assert result["devices"] == 2
  assert "f32[8,28,28,1]" in hlo and "f32[16,28,28,1]" not in hlo
  assert "all-reduce" in hlo


def _product_precision() -> str:
  """The precision of a jitted matrix product, as XLA is asked for it."""
  a = jnp.ones((4, 4))
  text = jax.jit(lambda x, y: x @ y).lower(a, a).as_text()
  dots = [line for line in text.splitlines() if "dot_general" in line]
  assert len(dots) == 1, text
  return dots[0].split("precision = [")[1].split(",")[0]


def test_set_precision_reaches_the_compiled_products():
  info = devices.info()
  assert info["backend"] == jax.default_backend()
  assert info["process_count"] == 1
  try:
    for precision, hlo in (("default", "DEFAULT"), ("high", "HIGH"),
                           ("highest", "HIGHEST")):
      devices.set_precision(precision)
      assert _product_precision() == hlo
      assert devices.info()["matmul_precision"] == precision
  finally:
    devices.set_precision("highest")
  with pytest.raises(ConfigError, match="matmul_precision='fast'"):
    devices.set_precision("fast")
  assert _product_precision() == "HIGHEST"


@pytest.mark.slow
def test_absent_platform_is_one_line_error():
  # A fresh interpreter: the platform is chosen before JAX starts.
  out = run_reproduce("--workdir=/tmp/x", "--platform=tpu", timeout=120)
  assert out.returncode == 1
  lines = out.stderr.strip().splitlines()
  assert lines[-1].startswith("error: --platform=tpu: no usable tpu device "
                              "here"), out.stderr[-2000:]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _start_job(workdir: pathlib.Path, port: int) -> list[subprocess.Popen]:
  env = subprocess_env()
  return [subprocess.Popen(
      [sys.executable, "-m", "experiments.reproduce", f"--workdir={workdir}",
       *TINY, f"--coordinator_address=localhost:{port}",
       "--num_processes=2", f"--process_id={p}"],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for p in (0, 1)]


def _wait(procs, timeout):
  return [p.communicate(timeout=timeout) for p in procs]


@pytest.mark.slow
def test_two_process_job_kill_and_resume(tmp_path):
  """Two processes on localhost train the quick config data parallel (one
  CPU device each, gloo): process 1 is killed after the first checkpoint,
  process 0 stops with one line, a rerun resumes and finishes; the result
  agrees with a one-process run, and process 0 alone wrote the files."""
  single = run_reproduce(f"--workdir={tmp_path / 'one'}", *TINY,
                         timeout=600)
  assert single.returncode == 0, single.stderr[-2000:]

  job = tmp_path / "job"
  procs = _start_job(job, _free_port())
  first_ckpt = job / "seed_0" / "image" / "ckpt"
  deadline = time.monotonic() + 300
  while not (first_ckpt.is_dir() and any(
      p.name.isdigit() for p in first_ckpt.iterdir())):
    assert time.monotonic() < deadline, "no checkpoint within 300 s"
    assert all(p.poll() is None for p in procs), _wait(procs, 10)
    time.sleep(0.2)
  procs[1].send_signal(signal.SIGKILL)
  killed_at = time.monotonic()
  (_, err0), _ = _wait(procs, 240)
  # The survivor ends within the heartbeat timeout (30 s) plus slack.
  assert time.monotonic() - killed_at < 120
  assert procs[0].returncode == 1
  assert err0.strip().splitlines()[-1].startswith(
      "error: process 0 of 2:"), err0[-3000:]
  assert not (job / "report.json").exists()

  procs = _start_job(job, _free_port())
  (out0, err0), (out1, err1) = _wait(procs, 600)
  assert [p.returncode for p in procs] == [0, 0], (err0[-3000:], err1[-3000:])
  assert "annotation" in out0 and "annotation" not in out1  # process 0 reports
  report = json.loads((job / "report.json").read_text())
  assert report["platform"]["process_count"] == 2
  assert report["platform"]["device_count"] == 2
  reference = json.loads((tmp_path / "one" / "report.json").read_text())
  assert report["data"]["counts"] == reference["data"]["counts"]
  # Data parallel over two processes computes the same steps: the first
  # chunk's loss (before float differences grow) agrees to float32 rounding.
  for name in ("image_classifier",):
    np.testing.assert_allclose(report[name]["history"][0]["train_loss"],
                               reference[name]["history"][0]["train_loss"],
                               rtol=1e-5)
  speech = report["speech_classifiers"]["1024"]["history"][0]["train_loss"]
  np.testing.assert_allclose(
      speech, reference["speech_classifiers"]["1024"]["history"][0][
          "train_loss"], rtol=1e-5)
  # One writer: one metric row per chunk, resumed rows not repeated.
  rows = [json.loads(line) for line in (
      job / "seed_0" / "image" / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [
      r["step"] for r in reference["image_classifier"]["history"]]


def test_vmapped_seeds_equal_each_seed_alone(tmp_path, monkeypatch):
  """Two seeds trained as one vmapped program (Python-driven and scanned
  chunks) give each seed's own run: the same batches and keys, equal to
  float32 rounding; the stages are then restored, not retrained, by the
  per-seed path."""
  x, y = _learnable()
  schedule = train.ClassifierSchedule(batch_size=32, steps=4,
                                      steps_per_chunk=2, augment="shift",
                                      max_shift=2, optimizer="sgd",
                                      learning_rate=0.05)
  model = convnets.ImageNet(dropout=0.5)
  alone = [train.train_classifier(
      model, x, y, x[:64], y[:64], schedule, seed=s,
      stage=Stage(tmp_path / "alone", f"seed_{s}", {}), flag="image",
      show_progress=False) for s in (3, 4)]
  for scan in ("false", "true"):
    together = train.train_classifiers(
        model, x, y, x[:64], y[:64], schedule, seeds=[3, 4],
        stages=[Stage(tmp_path / scan, f"seed_{s}", {}) for s in (3, 4)],
        flag="image", show_progress=False, scan=scan)
    for one, other in zip(alone, together, strict=True):
      np.testing.assert_allclose(
          [r["train_loss"] for r in other["history"]],
          [r["train_loss"] for r in one["history"]], rtol=1e-5)
      assert ([r["test_accuracy"] for r in other["history"]]
              == [r["test_accuracy"] for r in one["history"]])
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
                   other["params"], one["params"])

  workdirs = [tmp_path / "stages" / f"seed_{s}" for s in (3, 4)]
  args = ("image", model, schedule, x, y, x[:64], y[:64])
  stages.train_classifier_stages(*args, seeds=[3, 4], workdirs=workdirs,
                                 data_key={}, flag="image",
                                 show_progress=False)
  monkeypatch.setattr(stages, "train_classifier", lambda *a, **k: (
      pytest.fail("a stage trained with its seeds was trained again")))
  for seed, workdir, one in zip((3, 4), workdirs, alone, strict=True):
    result, _ = stages.classifier_stage(
        *args, seed=seed, workdir=workdir, data_key={}, flag="image",
        show_progress=False)  # restored: same fingerprint
    assert result["history"] == json.loads(
        (workdir / "image" / "result.json").read_text())["history"]
    np.testing.assert_allclose(result["test_accuracy"],
                               one["test_accuracy"])


@pytest.mark.slow
def test_accelerator_check_runs_reduced_on_cpu(tmp_path):
  out = subprocess.run(
      ["bash", "experiments/accelerator_check.sh", str(tmp_path), "--reduced"],
      cwd=REPO, env=subprocess_env(PYTHON=sys.executable),
      capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  bench = json.loads((tmp_path / "benchmark.json").read_text())
  report = json.loads((tmp_path / "reproduce.json").read_text())
  assert bench["platform"]["backend"] == report["platform"]["backend"]
  assert bench["image_train_images_per_s"]["64"] > 0
  assert bench["data_parallel_images_per_s_1_devices"]["64"] > 0
  # The reduced reproduce is the offline config, cut: synthetic data.
  assert report["wall_seconds"] > 0 and report["data"]["synthetic"]
  assert report["config"]["name"] == "offline"
