"""Faults of the machine, not the data: a full disk, an unwritable workdir,
damaged run files, SIGINT and SIGTERM (issue 24).

Each fault ends `experiments.reproduce` with one line naming the path and
what to do, a non-zero exit and no traceback; the same command run again
then ends with the report of a run that saw no fault. The runs use
test_reproduce's tiny synthetic config and share two module fixtures: one
uninterrupted reference, and one run stopped by SIGINT in the alignment
stage (the image and speech stages finished), whose workdir the other
cases start from, so that each costs seconds.
"""

import errno
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from absl import logging

from avdigits.digits import report
from avdigits.errors import StorageError
from avdigits.training import checkpoint, metrics, workdir
from tests.conftest import finished_steps, subprocess_env
from tests.test_reproduce import TINY, _results

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 4000  # TINY's alignment steps
NOISE = ("Traceback", "cannot schedule new futures", "RESOURCE_EXHAUSTED")

# `python -c FULL_DISK -- ARGS` runs reproduce with ARGS on a disk that is
# full for every path containing $AVD_FULL: opening it for writing raises
# ENOSPC (through open() and os.open(), which tempfile uses).
FULL_DISK = """
import builtins, errno, os, runpy, sys
target = os.environ["AVD_FULL"]
def refuse(path):
  raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
real_open, real_os_open = builtins.open, os.open
def open_(file, mode="r", *args, **kwargs):
  if (isinstance(file, (str, os.PathLike)) and set(mode) & set("wax+")
      and target in os.fspath(file)):
    refuse(file)
  return real_open(file, mode, *args, **kwargs)
def os_open(path, flags, *args, **kwargs):
  if flags & (os.O_WRONLY | os.O_RDWR) and target in os.fspath(path):
    refuse(path)
  return real_os_open(path, flags, *args, **kwargs)
builtins.open, os.open = open_, os_open
sys.argv = ["reproduce", *sys.argv[1:]]
runpy.run_module("experiments.reproduce", run_name="__main__")
"""


def _command(workdir_, *prefix):
  """reproduce's command line; `prefix` in place of `-m
  experiments.reproduce` (e.g. `-c FULL_DISK`)."""
  return [sys.executable, *(prefix or ("-m", "experiments.reproduce")),
          f"--workdir={workdir_}", *TINY]


def _run(workdir_, *prefix, **env):
  return subprocess.run(_command(workdir_, *prefix), cwd=REPO,
                        env=subprocess_env(**env), capture_output=True,
                        text=True, timeout=300)


def _report(workdir_):
  return _results(json.loads((workdir_ / "report.json").read_text()))


def _one_line(proc, returncode):
  """The one line of a run that failed or stopped, checked for noise."""
  assert proc.returncode == returncode, proc.stderr[-3000:]
  for noise in NOISE:
    assert noise not in proc.stderr, proc.stderr[-3000:]
  lines = [line for line in proc.stderr.splitlines()
           if line.startswith(("error: ", "stopped by "))]
  assert len(lines) == 1, proc.stderr[-3000:]
  return lines[0]


def _rerun_equals(reference, workdir_):
  proc = _run(workdir_)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert _report(workdir_) == _report(reference)
  # Resumed once, not restarted: every chunk's metrics row is there once.
  rows = [json.loads(line)["step"] for line in
          (workdir_ / "seed_0" / "align" / "metrics.jsonl").read_text()
          .splitlines()]
  assert rows == list(range(1000, STEPS + 1, 1000))
  return proc


def _stop_after(proc, checkpoint_dir, signum, after=0):
  """Sends `signum` once a checkpoint past step `after` is on disk, the
  process frozen meanwhile (so the signal lands at that point); returns
  its stderr."""
  deadline = time.monotonic() + 300
  while (time.monotonic() < deadline and proc.poll() is None
         and not [s for s in finished_steps(checkpoint_dir) if s > after]):
    time.sleep(0.005)
  proc.send_signal(signal.SIGSTOP)
  proc.send_signal(signum)
  proc.send_signal(signal.SIGCONT)
  return proc.communicate(timeout=300)[1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir_ = tmp_path_factory.mktemp("reference")
  proc = _run(workdir_)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir_


@pytest.fixture(scope="module")
def stopped(reference, tmp_path_factory):
  """A run stopped by SIGINT after the first alignment checkpoint:
  (its stderr and exit status, a pristine copy of its workdir). It starts
  from the reference's finished image and speech stages (what it would
  write itself), so that it trains the alignment only."""
  workdir_ = tmp_path_factory.mktemp("sigint") / "w"
  shutil.copytree(reference / "seed_0", workdir_ / "seed_0", symlinks=True,
                  ignore=lambda d, names: ["align"] if d.endswith(
                      "seed_0") else [])
  proc = subprocess.Popen(_command(workdir_), cwd=REPO, env=subprocess_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
  stderr = _stop_after(proc, workdir_ / "seed_0" / "align" / "ckpt",
                       signal.SIGINT)
  pristine = workdir_.parent / "pristine"
  shutil.copytree(workdir_, pristine, symlinks=True)
  return subprocess.CompletedProcess(proc.args, proc.returncode, "",
                                     stderr), pristine


@pytest.fixture
def partial(stopped, tmp_path):
  """A fresh copy of the workdir SIGINT left."""
  shutil.copytree(stopped[1], tmp_path / "w", symlinks=True)
  return tmp_path / "w"


# ------------------------------------------------------------- signals


@pytest.mark.slow
def test_sigint_stops_with_one_line_and_the_rerun_resumes(reference, stopped,
                                                          partial):
  line = _one_line(stopped[0], 130)
  align = partial / "seed_0" / "align"
  kept = finished_steps(align / "ckpt")
  assert kept and kept[-1] < STEPS
  assert line == (f"stopped by SIGINT in stage {stopped[1].parent / 'w'}/"
                  f"seed_0/align at step {kept[-1]} (its last checkpoint); "
                  f"run the same command again to resume")
  # Nothing half-written: no Orbax temporaries, no unfinished stage.
  assert not list(align.glob("ckpt/*tmp*"))
  assert not (align / "result.json").exists()
  _rerun_equals(reference, partial)


@pytest.mark.slow
def test_sigterm_stops_with_one_line_and_the_rerun_resumes(reference,
                                                           partial):
  align = partial / "seed_0" / "align"
  before = finished_steps(align / "ckpt")[-1]
  proc = subprocess.Popen(_command(partial), cwd=REPO, env=subprocess_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
  stderr = _stop_after(proc, align / "ckpt", signal.SIGTERM, after=before)
  line = _one_line(subprocess.CompletedProcess([], proc.returncode, "",
                                               stderr), 143)
  kept = finished_steps(align / "ckpt")[-1]
  assert before < kept < STEPS
  assert line.startswith(f"stopped by SIGTERM in stage {align} at step "
                         f"{kept} (its last checkpoint)")
  assert not list(align.glob("ckpt/*tmp*"))
  _rerun_equals(reference, partial)


# ---------------------------------------------------------- full disk


@pytest.mark.slow
def test_full_disk_for_the_metrics_is_one_line_then_resumes(reference,
                                                            partial):
  align = partial / "seed_0" / "align"
  before = finished_steps(align / "ckpt")
  proc = _run(partial, "-c", FULL_DISK, AVD_FULL="align/metrics.jsonl")
  line = _one_line(proc, 1)
  step = before[-1] + 1000
  assert line == (f"error: no space left on device while writing the "
                  f"metrics of step {step} to {align}/metrics.jsonl; free "
                  f"space and run the same command again to resume")
  assert finished_steps(align / "ckpt") == before
  _rerun_equals(reference, partial)


_TMPFS = """
set -e
mnt=$1 pristine=$2 out=$3
shift 3
mount -t tmpfs -o size=100m tmpfs "$mnt"
cp -a "$pristine" "$mnt/w"
free=$(df --output=avail -B1 "$mnt" | tail -1)
fallocate -l $((free - 300 * 1024)) "$mnt/filler"
set +e
"$@" --workdir="$mnt/w" 2>"$out/full.err" >/dev/null; echo $? >"$out/full.rc"
ls "$mnt/w/seed_0/align/ckpt" >"$out/full.ls"
rm "$mnt/filler"
"$@" --workdir="$mnt/w" 2>"$out/rerun.err" >/dev/null
echo $? >"$out/rerun.rc"
cp -r "$mnt/w" "$out/after"
"""


UNSHARE = ("unshare", "--user", "--map-root-user", "--mount")


def _tmpfs_or_skip(mount: pathlib.Path) -> None:
  """Skips the test unless a tmpfs can be mounted on `mount` in a user
  namespace (there, as its root, the test may mount filesystems)."""
  mount.mkdir()
  try:
    probe = subprocess.run([*UNSHARE, "mount", "-t", "tmpfs", "-o",
                            "size=1m", "tmpfs", str(mount)],
                           capture_output=True, timeout=30)
  except (OSError, subprocess.TimeoutExpired):
    probe = None
  if probe is None or probe.returncode != 0 or not shutil.which("fallocate"):
    pytest.skip("no tmpfs in a user namespace here")


@pytest.mark.slow
def test_full_tmpfs_fails_the_checkpoint_with_one_line_then_resumes(
    reference, stopped, tmp_path):
  """A real full filesystem (a tmpfs in a user namespace, where the machine
  allows one): the alignment checkpoint's write fails in TensorStore."""
  mount = tmp_path / "mnt"
  _tmpfs_or_skip(mount)
  subprocess.run([*UNSHARE, "sh", "-c", _TMPFS, "sh", str(mount),
                  str(stopped[1]), str(tmp_path), sys.executable, "-m",
                  "experiments.reproduce", *TINY], cwd=REPO,
                 env=subprocess_env(), check=True, timeout=600)
  full = subprocess.CompletedProcess(
      [], int((tmp_path / "full.rc").read_text()), "",
      (tmp_path / "full.err").read_text())
  line = _one_line(full, 1)
  kept = finished_steps(stopped[1] / "seed_0" / "align" / "ckpt")[-1]
  assert line == (f"error: no space left on device while writing the "
                  f"checkpoint of stage align at step {kept + 1000} in "
                  f"{mount}/w/seed_0/align/ckpt; the last complete "
                  f"checkpoint (step {kept}) is kept; free space and run "
                  f"the same command again to resume")
  # The partial checkpoint is gone; the ones before it are kept.
  assert (tmp_path / "full.ls").read_text().split() == [
      str(s) for s in finished_steps(stopped[1] / "seed_0" / "align" /
                                     "ckpt")]
  assert (tmp_path / "rerun.rc").read_text().strip() == "0", (
      (tmp_path / "rerun.err").read_text()[-3000:])
  assert _report(tmp_path / "after") == _report(reference)


# ------------------------------------------------------ the workdir itself


@pytest.mark.slow
def test_workdir_that_cannot_be_created_is_one_line_before_training():
  proc = _run("/proc/avdigits-test")
  line = _one_line(proc, 1)
  assert line == ("error: --workdir=/proc/avdigits-test: cannot create or "
                  "write it (no such file or directory); choose a writable "
                  "--workdir")


@pytest.mark.slow
def test_workdir_on_a_read_only_disk_is_one_line_before_training(tmp_path):
  mount = tmp_path / "mnt"
  _tmpfs_or_skip(mount)
  script = ('mount -t tmpfs tmpfs "$1" && mkdir "$1/w" && '
            'mount -o remount,ro "$1" && shift && exec "$@"')
  proc = subprocess.run(
      [*UNSHARE, "sh", "-c", script, "sh", str(mount), sys.executable, "-m",
       "experiments.reproduce", f"--workdir={mount}/w", *TINY], cwd=REPO,
      env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert _one_line(proc, 1) == (
      f"error: --workdir={mount}/w: cannot create or write it (read-only "
      f"file system); choose a writable --workdir")


# ------------------------------------------------------- damaged run files


@pytest.mark.slow
def test_damaged_derived_files_are_rebuilt_with_a_warning(reference,
                                                          partial):
  """A finished stage's result.json cut short, metrics.jsonl's last line
  cut and the newest checkpoint unreadable: each is named in a warning and
  rebuilt (from the checkpoint before), and the report is unchanged."""
  image = partial / "seed_0" / "image"
  align = partial / "seed_0" / "align"
  (image / "result.json").write_text((image / "result.json").read_text()[:40])
  rows = (align / "metrics.jsonl").read_text()
  (align / "metrics.jsonl").write_text(rows + rows.splitlines()[0][:20])
  newest = finished_steps(align / "ckpt")[-1]
  for path in (align / "ckpt" / str(newest)).rglob("*"):
    if path.is_file():
      path.write_bytes(b"damaged")
  proc = _rerun_equals(reference, partial)
  assert f"{image}/result.json is damaged" in proc.stderr
  assert "finishing stage image again from its last checkpoint" in (
      proc.stderr)
  assert f"checkpoint {align}/ckpt/{newest} is unreadable" in proc.stderr
  assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_damaged_config_is_one_line_saying_what_to_do(reference, partial):
  align = partial / "seed_0" / "align"
  (align / "config.json").write_text('{"schedule": {"steps"')
  line = _one_line(_run(partial), 1)
  assert line.startswith(f"error: {align}/config.json is damaged (")
  assert line.endswith(f"); delete {align} to rerun this stage")
  shutil.rmtree(align)  # as the line says
  _rerun_equals(reference, partial)


# ------------------------------------------------------------ in-process


def test_full_disk_for_a_figure_leaves_no_partial_file(reference, tmp_path,
                                                       monkeypatch):
  result = json.loads((reference / "report.json").read_text())
  real = os.open

  def full_for_figures(path, flags, *args, **kwargs):
    if flags & os.O_RDWR and "align_cost.png" in os.fspath(path):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    return real(path, flags, *args, **kwargs)

  monkeypatch.setattr(os, "open", full_for_figures)
  with pytest.raises(StorageError) as error:
    report.write(result, tmp_path, "reproduce")
  assert str(error.value) == (
      f"no space left on device while writing the figure "
      f"{tmp_path}/align_cost.png; free space and run the same command "
      f"again to resume")
  # The figures before it are whole; nothing else is there, report.json
  # (written last) included.
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      "annotation_confusion.png", "classifier_curves.png",
      "retrieval_confusion.png"]


def test_atomic_write_on_a_full_disk_leaves_no_file(tmp_path):
  def write(f):
    f.write("{")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  path = tmp_path / "result.json"
  path.write_text('{"old": 1}')
  with pytest.raises(StorageError) as error:
    workdir.write_atomic(path, write, "the result of stage image")
  assert str(error.value) == (
      f"no space left on device while writing the result of stage image "
      f"{path}; free space and run the same command again to resume")
  assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
  assert json.loads(path.read_text()) == {"old": 1}


def test_refused_checkpoint_names_the_one_kept(tmp_path, monkeypatch):
  ckpt = checkpoint.Checkpointer(tmp_path / "ckpt", label="stage align")
  ckpt.save(10, {"w": np.ones(3, np.float32)})
  real = ckpt._manager.save

  def full(step, *args, **kwargs):
    (tmp_path / "ckpt" / f"{step}.orbax-checkpoint-tmp-1").mkdir()
    raise ValueError('RESOURCE_EXHAUSTED: Error writing "w" in OCDBT '
                     'database: No space left on device')

  monkeypatch.setattr(ckpt._manager, "save", full)
  with pytest.raises(StorageError) as error:
    ckpt.save(20, {"w": np.zeros(3, np.float32)})
  assert str(error.value) == (
      f"no space left on device while writing the checkpoint of stage "
      f"align at step 20 in {tmp_path / 'ckpt'}; the last complete "
      f"checkpoint (step 10) is kept; free space and run the same command "
      f"again to resume")
  assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["10"]
  monkeypatch.setattr(ckpt._manager, "save", real)
  ckpt.close()
  step, state = checkpoint.Checkpointer(tmp_path / "ckpt").restore_latest(
      {"w": np.zeros(3, np.float32)})
  assert step == 10 and state["w"].tolist() == [1, 1, 1]


def test_a_signal_waits_for_the_checkpoint_being_written(tmp_path):
  ckpt = checkpoint.Checkpointer(tmp_path / "ckpt")
  with pytest.raises(KeyboardInterrupt):
    with checkpoint.signals_deferred():
      signal.raise_signal(signal.SIGINT)
      ckpt.save(1, {"w": np.ones(2, np.float32)})
      written = finished_steps(tmp_path / "ckpt")
  assert written == [1]
  ckpt.close()


def test_damaged_metrics_rows_are_dropped(tmp_path, monkeypatch):
  warned = []
  monkeypatch.setattr(logging, "warning",
                      lambda fmt, *args: warned.append(fmt % args))
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1, "loss": 1}\n{"st\x00\n{"step": 2, "loss": 2}\n'
                  '{"step": 3, "lo')
  rows = metrics.JsonlWriter(path).read()
  assert [r["step"] for r in rows] == [1, 2]
  # The cut last line (a kill) is normal; the damaged one is named.
  assert warned == [f"{path}: line 2 is damaged; dropped"]


def test_damaged_json_is_named_with_what_to_do(tmp_path):
  path = tmp_path / "config.json"
  path.write_bytes(b'{"a": \xff')
  with pytest.raises(StorageError, match=rf"^{path} is damaged \(.*\); "
                     r"delete it and run again$"):
    workdir.read_json(path)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_entry_point_starts_is_one_line(tmp_path, signum):
  """Ctrl-C during the seconds `python -m experiments.X` spends importing
  JAX: one line and exit 128 + signal, no traceback (the run's own handler
  takes over once the imports are done; either line is fine here)."""
  proc = subprocess.Popen(
      [sys.executable, "-m", "experiments.reproduce",
       f"--workdir={tmp_path / 'w'}"], cwd=REPO, env=subprocess_env(),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  time.sleep(0.3)
  proc.send_signal(signum)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signum, err[-2000:]
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(
      f"stopped by {signal.Signals(signum).name}"), err[-2000:]
  assert not (tmp_path / "w").exists()
