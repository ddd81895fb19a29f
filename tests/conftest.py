"""Shared test fixtures: the real-data directory, when there is one, and one
persistent JAX compilation cache for the whole test session."""

import contextlib
import importlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

_REPO = pathlib.Path(__file__).resolve().parents[1]

# Every trainer call jits fresh closures, and every `python -m experiments.*`
# subprocess compiles the same programs again: a persistent compilation
# cache turns the repeats into cache hits (a trainer called a second time
# with the same shapes: 16 s -> 1.3 s on the 2-core machine). It is set in
# pytest_configure, before any test module imports jax; pytest-xdist
# workers (started later) and the subprocesses the tests start inherit it,
# so the whole session shares one directory. One that is set already (e.g.
# by CI) is used and kept.
_OWN_JAX_CACHE = None


def pytest_configure(config):
  global _OWN_JAX_CACHE
  if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_JAX_CACHE = tempfile.mkdtemp(prefix="avdigits-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_JAX_CACHE
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  config.addinivalue_line(
      "markers", "slow: a real subprocess run of an entry point (deselect "
      "with -m 'not slow')")


def pytest_unconfigure(config):
  # Only the process that made the directory removes it: the xdist
  # controller (or a run without xdist), after every worker is done.
  if _OWN_JAX_CACHE:
    shutil.rmtree(_OWN_JAX_CACHE, ignore_errors=True)


def subprocess_env(**extra: str) -> dict[str, str]:
  """The environment for `python -m experiments.*` runs: CPU, no data
  directory (synthetic data only), the session's compilation cache."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", **extra)
  env.pop("AVDIGITS_DATA_DIR", None)
  return env


def run_reproduce(*args: str, timeout: float = 300
                  ) -> subprocess.CompletedProcess:
  """`python -m experiments.reproduce ARGS` from the repository root, in
  `subprocess_env()`, its output captured as text."""
  return subprocess.run(
      [sys.executable, "-m", "experiments.reproduce", *args], cwd=_REPO,
      env=subprocess_env(), capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def entry_point(name: str):
  """Imports the entry point `name` (e.g. "experiments.study") in-process.

  Entry points define absl flags of the same names (--workdir, ...), so two
  cannot be imported into one process; on exit the flags this one defined
  are deleted and the module forgotten, so another test file may import
  another.
  """
  from absl import flags
  before = set(flags.FLAGS)
  module = importlib.import_module(name)
  try:
    yield module
  finally:
    for flag in set(flags.FLAGS) - before:
      delattr(flags.FLAGS, flag)
    sys.modules.pop(name, None)


def finished_steps(checkpoint_dir: pathlib.Path) -> list[int]:
  """Steps with a finished Orbax checkpoint under `checkpoint_dir` (Orbax
  writes each into a temporary directory and renames it to the step)."""
  if not checkpoint_dir.is_dir():
    return []
  return sorted(int(p.name) for p in checkpoint_dir.iterdir()
                if p.is_dir() and p.name.isdigit())


def snapshot(directory: pathlib.Path) -> dict[str, tuple[int, bytes]]:
  """Every file under `directory`: its modification time (ns) and bytes."""
  return {str(p.relative_to(directory)): (p.stat().st_mtime_ns,
                                          p.read_bytes())
          for p in sorted(directory.rglob("*")) if p.is_file()}


# What the real-data tests read: a directory without one of them is not
# a real-data directory (those tests skip rather than fail on it).
REAL_CORPORA = ("mnist", "fsdd")


def real_data_dir_among(*candidates: str | os.PathLike | None
                        ) -> pathlib.Path | None:
  """The first candidate holding every corpus of REAL_CORPORA, else None."""
  for candidate in candidates:
    if candidate and all((pathlib.Path(candidate) / name).is_dir()
                         for name in REAL_CORPORA):
      return pathlib.Path(candidate)
  return None


REAL_DATA_DIR = real_data_dir_among(os.environ.get("AVDIGITS_DATA_DIR"),
                                    _REPO.parent / "shared" / "data")

requires_real_data = pytest.mark.skipif(
    REAL_DATA_DIR is None,
    reason="needs ../shared/data or AVDIGITS_DATA_DIR (real MNIST/FSDD)")


@pytest.fixture
def real_data_dir() -> pathlib.Path:
  if REAL_DATA_DIR is None:
    pytest.skip("needs ../shared/data or AVDIGITS_DATA_DIR")
  return REAL_DATA_DIR
