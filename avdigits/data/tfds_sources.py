"""MNIST and the Free Spoken Digit Dataset through TensorFlow Datasets.

TFDS (and TensorFlow) are imported inside the loaders, so importing avdigits
never imports them. Without TFDS, or when the download fails, the loaders
raise a one-line DataError naming the alternatives.

Offline, that error comes in seconds rather than after TFDS' minutes of
download retries: a dataset that cannot be read locally (not prepared in
the TFDS data directory) is only downloaded after a TCP connection to one
of its download hosts (its URLs' hosts, or TFDS' storage.googleapis.com
mirror) succeeds within PROBE_TIMEOUT_S seconds. With $https_proxy (or
$all_proxy) set, and the host not exempted by $no_proxy, the proxy is
probed instead, as that is where TFDS' requests go. Where the probe is
wrong (e.g. a network that only lets proxied or otherwise unusual traffic
out), `AVDIGITS_TFDS_NETWORK_CHECK=0` skips it and TFDS downloads as it
would without it.

TensorFlow logs a few lines while its libraries load (e.g. "oneDNN custom
operations are on"), before it applies $TF_CPP_MIN_LOG_LEVEL; the loaders
hold those lines to that level too (see native_log_filter).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import numpy as np

from avdigits.data import audio
from avdigits.data.types import ImageSet, SpeechSet
from avdigits.errors import DataError

# Fixed-size batches: batch_size=-1 aborts the process under
# tfds.testing.mock_data (std::length_error in TensorFlow).
_BATCH = 4096
# TFDS spoken_digit keeps FSDD's file names; recordings 0-4 of each speaker
# and digit are FSDD's upstream test set.
_FSDD_NAME = re.compile(r"(\d)_(.+)_(\d+)\.wav", re.IGNORECASE)
_FSDD_TEST_INDICES = range(5)
_INT16_SCALE = 32768.0
_SPOKEN_DIGIT_RATE = 8000  # Hz, as TFDS spoken_digit stores it.
NETWORK_CHECK_ENV = "AVDIGITS_TFDS_NETWORK_CHECK"
PROBE_TIMEOUT_S = 4.0
# TFDS' own mirror of prepared datasets and of many download URLs.
_MIRROR_HOST = "storage.googleapis.com"
# A native (absl C++) log line: severity, MMDD, time, thread, file:line].
_NATIVE_LOG = re.compile(r"([IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")
_NATIVE_SEVERITIES = "IWEF"  # TF_CPP_MIN_LOG_LEVEL 0, 1, 2, 3
_ABSL_PREINIT_NOTICE = ("WARNING: All log messages before "
                        "absl::InitializeLog() is called are written to STDERR")


def load_tfds_mnist(data_dir: str | None = None) -> ImageSet:
  """MNIST's train (60,000) and test (10,000) splits, in that order.

  Args:
    data_dir: TFDS data directory; None uses TFDS' default
      (~/tensorflow_datasets), downloading and preparing MNIST there if
      needed.
  """
  tfds = _import_tfds("mnist", "images")
  images, labels, subsets = [], [], []
  for split in ("train", "test"):
    for batch in _load(tfds, "mnist", split, data_dir, "images",
                       batch_size=_BATCH):
      images.append(np.asarray(batch["image"], np.uint8).reshape(-1, 28, 28))
      labels.append(np.asarray(batch["label"], np.int32))
      subsets.append(np.full(len(batch["label"]), split))
  if not labels:
    raise DataError(f"{_source('mnist', data_dir)}: no examples")
  return ImageSet(images=np.concatenate(images),
                  labels=np.concatenate(labels),
                  subset=np.concatenate(subsets),
                  source=_source("mnist", data_dir))


def load_tfds_spoken_digit(data_dir: str | None = None,
                           sample_rate: int = 8000) -> SpeechSet:
  """FSDD from TFDS `spoken_digit` (a single "train" split upstream).

  Digit, speaker and recording index come from each example's file name,
  `{digit}_{speaker}_{index}.wav`; index 0-4 is subset "test", the rest
  "train" (FSDD's own convention).

  Args:
    data_dir: TFDS data directory (see load_tfds_mnist).
    sample_rate: waveforms are resampled to this rate (TFDS stores 8 kHz).
  """
  tfds = _import_tfds("spoken_digit", "speech")
  source = _source("spoken_digit", data_dir)
  waveforms, labels, speakers, subsets, ids = [], [], [], [], []
  for ex in _load(tfds, "spoken_digit", "train", data_dir, "speech"):
    name = _decode(ex["audio/filename"])
    match = _FSDD_NAME.fullmatch(name)
    if match is None:
      raise DataError(f"{source}: example file name {name!r} does not match "
                      "{digit}_{speaker}_{index}.wav")
    digit, speaker, index = int(match[1]), match[2], int(match[3])
    if int(ex["label"]) != digit:
      raise DataError(f"{source}: {name}: label {int(ex['label'])} "
                      f"disagrees with the file name's digit {digit}")
    x = np.asarray(ex["audio"], np.float32) / _INT16_SCALE
    waveforms.append(audio.resample(x, _SPOKEN_DIGIT_RATE, sample_rate))
    labels.append(digit)
    speakers.append(speaker)
    subsets.append("test" if index in _FSDD_TEST_INDICES else "train")
    ids.append(name)
  if not labels:
    raise DataError(f"{source}: no examples")
  order = np.argsort(np.array(ids), kind="stable")
  return SpeechSet(waveforms=[waveforms[i] for i in order],
                   sample_rate=sample_rate,
                   labels=np.array(labels, np.int32)[order],
                   speakers=np.array(speakers)[order],
                   subset=np.array(subsets)[order],
                   utterance_ids=np.array(ids)[order], num_classes=10,
                   source=source)


def _alternatives(modality: str) -> str:
  return ("use --data_dir (or AVDIGITS_DATA_DIR) pointing at a local data "
          "directory, or the synthetic source "
          f"(--config.data.{modality}=synthetic)")


def _import_tfds(name: str, modality: str):
  """tensorflow_datasets, or a DataError saying it is not installed."""
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise DataError(f"TFDS {name}: tensorflow-datasets is not installed "
                    f"(pip install avdigits[tfds]); {_alternatives(modality)}"
                    ) from e
  return tfds


def _tensorflow_loading():
  """A context in which TensorFlow may be imported: its load-time log lines
  (and any other line in absl's format) are held to $TF_CPP_MIN_LOG_LEVEL.
  Nothing is held once TensorFlow is loaded, or at level 0."""
  try:
    min_level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
  except ValueError:
    min_level = 0
  if "tensorflow" in sys.modules or min_level <= 0:
    return contextlib.nullcontext()
  return _stderr_filtered(lambda text: native_log_filter(text, min_level))


def _import_tensorflow() -> None:
  """Imports TensorFlow (which TFDS needs) in _tensorflow_loading."""
  # A failure here recurs in tfds.load, which _load turns into a DataError.
  with _tensorflow_loading(), contextlib.suppress(Exception):
    import tensorflow  # noqa: F401


def native_log_filter(text: str, min_level: int) -> str:
  """`text` less its native log lines below TF_CPP_MIN_LOG_LEVEL `min_level`
  (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL), each with its continuation lines,
  and, from level 1, absl's notice that logging is not initialised yet.
  Every other line is kept."""
  kept, dropping = [], False
  for line in text.splitlines(keepends=True):
    match = _NATIVE_LOG.match(line)
    if match:
      dropping = _NATIVE_SEVERITIES.index(match[1]) < min_level
    elif line.strip() == _ABSL_PREINIT_NOTICE:
      dropping = min_level >= 1
    if not dropping:
      kept.append(line)
  return "".join(kept)


@contextlib.contextmanager
def _stderr_filtered(transform):
  """File descriptor 2, where native code writes, goes to a temporary file
  for the block; `transform` of what it got is then written to it."""
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (AttributeError, OSError, ValueError):  # No stderr to filter.
    yield
    return
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      text = transform(captured.read().decode("utf-8", "replace"))
      if text:
        os.write(2, text.encode("utf-8"))


def _load(tfds, name: str, split: str, data_dir: str | None, modality: str,
          **kwargs) -> list[dict]:
  """tfds.load's examples (or batches) as NumPy, every failure a DataError.

  Data that is already prepared (or mocked by tfds.testing.mock_data) is
  read without touching the network; otherwise the download hosts are
  probed (see the module docstring) before TFDS is let download.
  """
  try:
    try:
      # Reading prepared data imports TensorFlow; finding none does not.
      with _tensorflow_loading():
        ds = tfds.load(name, split=split, data_dir=data_dir,
                       shuffle_files=False, download=False, **kwargs)
    except ImportError:
      raise
    except Exception:  # noqa: BLE001 - "not prepared" has no type of its own.
      builder = tfds.builder(name, data_dir=data_dir)
      if builder.is_prepared():
        raise  # Prepared yet unreadable: not a download problem.
      _check_network(name, builder, modality)
      _import_tensorflow()  # Before, not amid, the download's progress bars.
      ds = tfds.load(name, split=split, data_dir=data_dir,
                     shuffle_files=False, **kwargs)
    return list(tfds.as_numpy(ds))
  except DataError:
    raise
  except ImportError as e:
    reason = f"TensorFlow is not installed ({_first_line(e)})"
    raise DataError(f"TFDS {name}: {reason}; {_alternatives(modality)}"
                    ) from e
  except Exception as e:  # noqa: BLE001 - download errors have many types.
    where = f" in {data_dir}" if data_dir else ""
    raise DataError(f"TFDS {name}: cannot load or download{where} "
                    f"({type(e).__name__}: {_first_line(e)}); "
                    f"{_alternatives(modality)}") from e


def _check_network(name: str, builder, modality: str) -> None:
  """A DataError unless one of `builder`'s download hosts answers."""
  if os.environ.get(NETWORK_CHECK_ENV, "1").strip().lower() in (
      "0", "false", "no", "off"):
    return
  urls = sorted(builder.url_infos or ())
  addresses = probe_addresses(urls + [f"https://{_MIRROR_HOST}/"])
  if _reachable(addresses, PROBE_TIMEOUT_S):
    return
  hosts = ", ".join(f"{host}:{port}" for host, port in addresses)
  raise DataError(
      f"TFDS {name}: not prepared in {builder.data_dir} and no download host "
      f"answers within {PROBE_TIMEOUT_S:g} s ({hosts}; no network?); "
      f"{_alternatives(modality)}; or set {NETWORK_CHECK_ENV}=0 to let TFDS "
      "try anyway")


def probe_addresses(urls: list[str]) -> list[tuple[str, int]]:
  """The distinct (host, port) a download of `urls` first connects to: each
  URL's host, or the proxy that the environment routes it through."""
  proxies = urllib.request.getproxies()
  addresses = []
  for url in urls:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    if not host:
      continue
    address = (host, parts.port or (80 if parts.scheme == "http" else 443))
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(host):
      proxy_parts = urllib.parse.urlsplit(
          proxy if "://" in proxy else f"http://{proxy}")
      if proxy_parts.hostname:
        address = (proxy_parts.hostname, proxy_parts.port or 80)
    if address not in addresses:
      addresses.append(address)
  return addresses


def _reachable(addresses: list[tuple[str, int]], timeout: float) -> bool:
  """Whether any address accepts a TCP connection within `timeout` seconds,
  name lookup included (each address is tried in a daemon thread, so a
  resolver that hangs cannot hold the caller past the deadline)."""
  answered = threading.Event()

  def connect(address):
    try:
      with socket.create_connection(address, timeout=timeout):
        answered.set()
    except OSError:
      pass

  threads = [threading.Thread(target=connect, args=(address,), daemon=True,
                              name=f"probe {address[0]}:{address[1]}")
             for address in addresses]
  for thread in threads:
    thread.start()
  deadline = time.monotonic() + timeout
  while (not answered.is_set() and time.monotonic() < deadline
         and any(thread.is_alive() for thread in threads)):
    answered.wait(0.02)
  return answered.is_set()


def _first_line(e: BaseException, limit: int = 200) -> str:
  text = str(e).strip().splitlines()
  line = text[0] if text else ""
  return line if len(line) <= limit else line[:limit] + "..."


def _decode(value) -> str:
  if isinstance(value, bytes):
    return value.decode("utf-8", "replace")
  return str(value)


def _source(name: str, data_dir: str | None) -> str:
  return f"tfds:{name}" + (f"@{data_dir}" if data_dir else "")
