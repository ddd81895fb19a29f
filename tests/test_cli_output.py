"""A normal run prints progress, results and avdigits' own warnings, not other
libraries' chatter; --verbosity brings that back."""

import logging as std_logging
import os
import pathlib
import subprocess
import sys
import warnings

import pytest
from absl import logging

from experiments import quiet

REPO = pathlib.Path(__file__).resolve().parents[1]
SITE = "/venv/lib/python3.11/site-packages"


@pytest.fixture
def output_config(monkeypatch):
  """Undoes what quiet.quiet_libraries changes in this process."""
  handler = logging.get_absl_handler()
  filters, verbosity = list(handler.filters), logging.get_verbosity()
  monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
  with warnings.catch_warnings():
    yield handler
  handler.filters[:] = filters
  logging.set_verbosity(verbosity)


def _passes(handler, path, level=std_logging.WARNING):
  record = std_logging.LogRecord("absl", level, path, 1, "message", None, None)
  return bool(handler.filter(record))


def test_quiet_libraries_keeps_only_our_warnings(output_config):
  handler = output_config
  quiet.quiet_libraries(None)
  quiet.quiet_libraries(None)  # Idempotent.
  assert sum(isinstance(f, quiet.LibraryFilter) for f in handler.filters) == 1
  assert logging.get_verbosity() == logging.WARNING
  assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
  for path in ("tensorflow_datasets/core/utils/file_utils.py",
               "tensorflow/python/platform/tf_logging.py",
               "orbax/checkpoint/checkpoint_manager.py",
               "etils/epath/gpath.py", "matplotlib/font_manager.py"):
    assert not _passes(handler, f"{SITE}/{path}"), path
  assert _passes(handler, f"{SITE}/orbax/checkpoint/x.py", std_logging.ERROR)
  assert _passes(handler, str(REPO / "avdigits" / "prepare.py"))
  assert _passes(handler, f"{SITE}/jax/_src/xla_bridge.py")

  modules = ("tensorflow_datasets.core.features", "orbax.checkpoint",
             "matplotlib.font_manager", "avdigits.data.audio",
             "jax._src.dispatch", "tensorflowish")
  with warnings.catch_warnings(record=True) as caught:
    for module in modules:
      warnings.warn_explicit(module, UserWarning, "f.py", 1, module=module,
                             registry={})
  assert [str(w.message) for w in caught] == [
      "avdigits.data.audio", "jax._src.dispatch", "tensorflowish"]


def test_quiet_libraries_keeps_the_users_native_log_level(output_config,
                                                          monkeypatch):
  monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
  quiet.quiet_libraries("0")
  assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


@pytest.mark.parametrize("verbosity, level", [
    (1, "0"), (0, "0"), (-1, "1"), (-2, "2"), (-3, "3"), (-9, "3")])
def test_verbosity_sets_the_native_log_level(verbosity, level):
  assert quiet.native_log_level(verbosity) == level


SCRIPT = """
import warnings
from absl import logging
from experiments import cli

def main(argv):
  import tensorflow_datasets as tfds
  from avdigits.data import tfds_sources
  with tfds.testing.mock_data(num_examples=2):
    tfds_sources.load_tfds_mnist()  # TensorFlow's and TFDS' chatter
  logging.warning("ours: an absl warning")
  warnings.warn("ours: a Python warning", stacklevel=1)
  print("done")

cli.run(main)
"""


def test_a_run_prints_only_its_own_lines(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  # Run from a file: a Python warning then shows its source line on every
  # Python (for `python -c` code only from 3.13 on).
  script = tmp_path / "run.py"
  script.write_text(SCRIPT)
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join(filter(None, (
                 str(REPO), os.environ.get("PYTHONPATH")))))
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)
  proc = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout == "done\n"
  lines = proc.stderr.splitlines()
  assert [line for line in lines if "ours: " not in line] == [], proc.stderr
  assert len(lines) == 3 and "absl warning" in lines[0], proc.stderr
  assert "UserWarning: ours: a Python warning" in lines[1]
  assert lines[2].strip() == ('warnings.warn("ours: a Python warning", '
                              'stacklevel=1)')
