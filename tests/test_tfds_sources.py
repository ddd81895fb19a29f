"""Tests for avdigits.data.tfds_sources against TFDS' mocked datasets."""

import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

from avdigits.data import tfds_sources
from avdigits.errors import DataError

tfds = pytest.importorskip("tensorflow_datasets")

# (file name, label) per mocked spoken_digit example.
FSDD_ROWS = [("3_george_0.wav", 3), ("3_george_12.wav", 3),
             ("0_theo_4.wav", 0), ("9_yweweler_49.wav", 9),
             ("7_jackson_5.wav", 7)]


def fsdd_as_dataset(rows, lengths=(40, 25, 8, 33, 17)):
  """An `as_dataset_fn` for mock_data yielding FSDD-named examples."""
  import tensorflow as tf

  def as_dataset(self, *args, **kwargs):
    del self, args, kwargs

    def examples():
      for i, ((name, label), n) in enumerate(zip(rows, lengths, strict=True)):
        yield {"audio": (np.arange(n) * 997 + i) % 65536 - 32768,
               "audio/filename": name, "label": label}

    return tf.data.Dataset.from_generator(examples, output_signature={
        "audio": tf.TensorSpec([None], tf.int64),
        "audio/filename": tf.TensorSpec([], tf.string),
        "label": tf.TensorSpec([], tf.int64)})

  return as_dataset


def test_import_does_not_import_tensorflow():
  code = ("import sys, avdigits, avdigits.data.tfds_sources, "
          "avdigits.data.mnist, avdigits.data.splits; "
          "print(sorted(m for m in sys.modules if m.startswith('tensorflow')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, check=True).stdout
  assert out.strip() == "[]"


def test_mnist_from_mock():
  with tfds.testing.mock_data(num_examples=7):
    got = tfds_sources.load_tfds_mnist()
  assert got.images.shape == (14, 28, 28) and got.images.dtype == np.uint8
  assert got.labels.dtype == np.int32
  assert ((got.labels >= 0) & (got.labels < 10)).all()
  assert got.subset.tolist() == ["train"] * 7 + ["test"] * 7
  assert got.source == "tfds:mnist"
  assert got.images.std() > 0


def test_spoken_digit_from_mock(tmp_path):
  with tfds.testing.mock_data(as_dataset_fn=fsdd_as_dataset(FSDD_ROWS)):
    got = tfds_sources.load_tfds_spoken_digit(data_dir=str(tmp_path))
  # Sorted by file name.
  assert got.utterance_ids.tolist() == [
      "0_theo_4.wav", "3_george_0.wav", "3_george_12.wav", "7_jackson_5.wav",
      "9_yweweler_49.wav"]
  np.testing.assert_array_equal(got.labels, [0, 3, 3, 7, 9])
  assert got.labels.dtype == np.int32
  assert got.speakers.tolist() == ["theo", "george", "george", "jackson",
                                   "yweweler"]
  assert got.subset.tolist() == ["test", "test", "train", "train", "train"]
  assert got.num_classes == 10 and got.sample_rate == 8000
  assert got.source == f"tfds:spoken_digit@{tmp_path}"
  # int16 samples scaled by 1/32768: example 1 ("3_george_0.wav") is i=0.
  first = got.waveforms[1]
  assert first.dtype == np.float32 and len(first) == 40
  np.testing.assert_allclose(first,
                             ((np.arange(40) * 997) % 65536 - 32768) / 32768)
  assert all(np.abs(w).max() <= 1.0 for w in got.waveforms)


def test_spoken_digit_resamples():
  with tfds.testing.mock_data(as_dataset_fn=fsdd_as_dataset(FSDD_ROWS)):
    got = tfds_sources.load_tfds_spoken_digit(sample_rate=16000)
  assert got.sample_rate == 16000
  assert [len(w) for w in got.waveforms] == [16, 80, 50, 34, 66]


def test_spoken_digit_random_file_names_are_rejected():
  # TFDS' own mock yields random file names such as "gegbfhdejh".
  with tfds.testing.mock_data(num_examples=3):
    with pytest.raises(DataError, match=r"file name '.*' does not match "
                       r"\{digit\}_\{speaker\}_\{index\}\.wav") as err:
      tfds_sources.load_tfds_spoken_digit()
  assert "tfds:spoken_digit" in str(err.value)


def test_spoken_digit_label_must_match_file_name():
  rows = [("3_george_0.wav", 4)] + FSDD_ROWS[1:]
  with tfds.testing.mock_data(as_dataset_fn=fsdd_as_dataset(rows)):
    with pytest.raises(DataError, match="3_george_0.wav: label 4 disagrees"):
      tfds_sources.load_tfds_spoken_digit()


def _assert_offline_message(message, modality):
  assert "\n" not in message
  assert "--data_dir" in message and "AVDIGITS_DATA_DIR" in message
  assert f"--config.data.{modality}=synthetic" in message


@pytest.mark.parametrize("loader, modality", [
    (tfds_sources.load_tfds_mnist, "images"),
    (tfds_sources.load_tfds_spoken_digit, "speech")])
def test_download_failure_names_alternatives(monkeypatch, loader, modality):
  def offline(*args, **kwargs):
    raise OSError("HTTPSConnectionPool(host='storage.googleapis.com'): Max "
                  "retries exceeded\nCaused by NameResolutionError")

  monkeypatch.setattr(tfds, "load", offline)
  # A host answered the probe, yet the download failed.
  monkeypatch.setattr(tfds_sources, "_reachable", lambda *args: True)
  with pytest.raises(DataError, match="cannot load or download in /nowhere "
                     r"\(OSError: HTTPSConnectionPool") as err:
    loader(data_dir="/nowhere")
  _assert_offline_message(str(err.value), modality)


def test_missing_tensorflow_names_alternatives(monkeypatch):
  def no_tf(*args, **kwargs):
    raise ModuleNotFoundError("No module named 'tensorflow'")

  monkeypatch.setattr(tfds, "load", no_tf)
  with pytest.raises(DataError, match="TensorFlow is not installed") as err:
    tfds_sources.load_tfds_spoken_digit()
  _assert_offline_message(str(err.value), "speech")


def test_missing_tfds_names_alternatives(monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
  with pytest.raises(DataError, match="tensorflow-datasets is not installed"
                     ) as err:
    tfds_sources.load_tfds_mnist()
  _assert_offline_message(str(err.value), "images")


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def no_proxy_env(monkeypatch):
  for name in _PROXY_VARIABLES:
    monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(name.upper(), raising=False)
  monkeypatch.delenv(tfds_sources.NETWORK_CHECK_ENV, raising=False)


@pytest.fixture
def downloads(monkeypatch):
  """Calls to TFDS' download_and_prepare, which fail like a lost network."""
  calls = []

  def download_and_prepare(self, *args, **kwargs):
    calls.append(self.name)
    raise OSError("simulated download failure")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                      download_and_prepare)
  return calls


@pytest.mark.parametrize("loader, modality, host", [
    (tfds_sources.load_tfds_mnist, "images", "storage.googleapis.com"),
    (tfds_sources.load_tfds_spoken_digit, "speech", "github.com")])
def test_no_network_fails_before_downloading(monkeypatch, tmp_path,
                                             no_proxy_env, downloads, loader,
                                             modality, host):
  probed = []

  def no_network(addresses, timeout):
    probed.append((addresses, timeout))
    return False

  monkeypatch.setattr(tfds_sources, "_reachable", no_network)
  where = re.escape(str(tmp_path))
  with pytest.raises(DataError, match=rf"not prepared in {where}/\S+ and no "
                     "download host answers within 4 s") as err:
    loader(data_dir=str(tmp_path))
  _assert_offline_message(str(err.value), modality)
  assert f"{tfds_sources.NETWORK_CHECK_ENV}=0" in str(err.value)
  assert downloads == []
  [(addresses, timeout)] = probed
  assert (host, 443) in addresses and timeout <= 5


def test_mocked_data_is_read_without_probing(monkeypatch, no_proxy_env,
                                             downloads):
  def probe(*args):
    raise AssertionError("probed the network for data that is there")

  monkeypatch.setattr(tfds_sources, "_reachable", probe)
  with tfds.testing.mock_data(num_examples=3):
    got = tfds_sources.load_tfds_mnist()
  assert len(got.labels) == 6


def test_network_check_can_be_switched_off(monkeypatch, tmp_path,
                                           no_proxy_env, downloads):
  def probe(*args):
    raise AssertionError("probed despite the switch")

  monkeypatch.setattr(tfds_sources, "_reachable", probe)
  monkeypatch.setenv(tfds_sources.NETWORK_CHECK_ENV, "0")
  with pytest.raises(DataError, match="cannot load or download in .*"
                     "simulated download failure"):
    tfds_sources.load_tfds_mnist(data_dir=str(tmp_path))
  assert downloads == ["mnist"]


def test_probe_connects_with_a_deadline():
  with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen()
    open_port = server.getsockname()[1]
    assert tfds_sources._reachable([("127.0.0.1", open_port)], 2.0)
  # The port is closed now; an unresolvable name answers nothing either.
  assert not tfds_sources._reachable(
      [("127.0.0.1", open_port), ("host.invalid", 443)], 2.0)
  assert not tfds_sources._reachable([], 2.0)


def test_probe_addresses_follow_the_proxy(monkeypatch, no_proxy_env):
  urls = ["https://github.com/a.tar.gz", "https://github.com/b.tar.gz",
          "http://example.org:8080/c", "https://storage.googleapis.com/"]
  assert tfds_sources.probe_addresses(urls) == [
      ("github.com", 443), ("example.org", 8080),
      ("storage.googleapis.com", 443)]
  monkeypatch.setenv("https_proxy", "http://proxy.internal:3128")
  monkeypatch.setenv("no_proxy", "storage.googleapis.com")
  assert tfds_sources.probe_addresses(urls) == [
      ("proxy.internal", 3128), ("example.org", 8080),
      ("storage.googleapis.com", 443)]


# What TensorFlow 2.21 prints while it loads, before it reads
# TF_CPP_MIN_LOG_LEVEL (twice: two shared libraries), with a line of ours.
TF_IMPORT_LOG = """\
WARNING: All log messages before absl::InitializeLog() is called are written \
to STDERR
I0000 00:00:1795912289.616527   10542 port.cc:153] oneDNN custom operations \
are on.
I0000 00:00:1795912289.657884   10542 cpu_feature_guard.cc:227] This \
TensorFlow binary is optimized to use available CPU instructions.
To enable the following instructions: AVX2 FMA, in other operations, rebuild.
W1129 00:36:14.480133 140242567314304 file_utils.py:394] a warning
something else
E1129 00:36:14.480133 140242567314304 x.cc:1] an error
"""


def test_native_log_filter_drops_lines_below_the_level():
  lines = TF_IMPORT_LOG.splitlines(keepends=True)
  assert tfds_sources.native_log_filter(TF_IMPORT_LOG, 0) == TF_IMPORT_LOG
  # Lines that start no message ("To enable ...", "something else") go with
  # the message above them.
  assert tfds_sources.native_log_filter(TF_IMPORT_LOG, 1) == "".join(
      lines[4:])
  assert tfds_sources.native_log_filter(TF_IMPORT_LOG, 2) == lines[-1]
  assert tfds_sources.native_log_filter("plain\n" + TF_IMPORT_LOG, 3) == (
      "plain\n")


def test_stderr_filtered_holds_native_writes(capfd):
  with tfds_sources._stderr_filtered(lambda text: text.replace("noise\n",
                                                               "")):
    os.write(2, b"noise\nkept\n")
  assert capfd.readouterr().err == "kept\n"
