"""Tests for avdigits.data.mnist: IDX parsing, validation and directories."""

import gzip
import pathlib

import numpy as np
import pytest

from avdigits.data import mnist
from avdigits.errors import DataError
from tests.conftest import requires_real_data


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
  """An IDX file's bytes for `array` (dtype code 0x08 = uint8)."""
  dtype = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[code]
  header = bytes([0, 0, code, array.ndim])
  header += np.asarray(array.shape, ">u4").tobytes()
  return header + np.asarray(array, dtype).tobytes()


def write(path: pathlib.Path, blob: bytes) -> pathlib.Path:
  path.write_bytes(gzip.compress(blob) if path.suffix == ".gz" else blob)
  return path


def images(n: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), np.uint8)


def write_pair(root: pathlib.Path, prefix: str, labels, gz: bool = True,
               seed: int = 0) -> np.ndarray:
  ext = ".gz" if gz else ""
  x = images(len(labels), seed)
  write(root / f"{prefix}-images-idx3-ubyte{ext}", idx_bytes(x))
  write(root / f"{prefix}-labels-idx1-ubyte{ext}",
        idx_bytes(np.asarray(labels, np.uint8)))
  return x


@pytest.mark.parametrize("name", ["a-images-idx3-ubyte",
                                  "a-images-idx3-ubyte.gz"])
def test_read_idx_round_trips_raw_and_gzip(tmp_path, name):
  x = images(5)
  got = mnist.read_idx(write(tmp_path / name, idx_bytes(x)))
  assert got.dtype == np.uint8 and got.shape == (5, 28, 28)
  np.testing.assert_array_equal(got, x)


def test_read_idx_big_endian_types(tmp_path):
  shorts = np.array([[1, -2, 300], [-32768, 32767, 0]], np.int16)
  got = mnist.read_idx(write(tmp_path / "s.idx", idx_bytes(shorts, 0x0B)))
  assert got.dtype == np.int16 and got.dtype.isnative
  np.testing.assert_array_equal(got, shorts)
  floats = np.array([0.5, -1.25, 3e8], np.float32)
  got = mnist.read_idx(write(tmp_path / "f.idx", idx_bytes(floats, 0x0D)))
  np.testing.assert_array_equal(got, floats)


def test_read_idx_checks_expected_magic(tmp_path):
  path = write(tmp_path / "x-labels-idx1-ubyte", idx_bytes(np.zeros(3)))
  assert mnist.read_idx(path, magic=2049).shape == (3,)
  with pytest.raises(DataError, match="magic number 2049.*expected 2051"):
    mnist.read_idx(path, magic=2051)


@pytest.mark.parametrize("blob, message", [
    (b"", "empty file"),
    (b"\x00\x00\x08", "truncated IDX header"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x01", "truncated IDX header"),
    (b"\x12\x34\x08\x01\x00\x00\x00\x01\x00", "bad magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "bad magic"),
    (b"\x00\x00\x08\x00", "bad magic"),
    (idx_bytes(np.zeros((4, 28, 28)))[:-10],
     "promises 3136 bytes of data, file has 3126"),
    (idx_bytes(np.zeros(4)) + b"\x00\x01", "2 trailing bytes"),
])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_rejects_bad_files(tmp_path, blob, message, gz):
  path = tmp_path / ("bad.idx.gz" if gz else "bad.idx")
  if gz and not blob:
    path.write_bytes(b"")  # An empty .gz file, not gzip of nothing.
  else:
    write(path, blob)
  with pytest.raises(DataError, match=message) as err:
    mnist.read_idx(path)
  assert str(path) in str(err.value)
  assert "\n" not in str(err.value)


@pytest.mark.parametrize("blob", [
    b"not gzip at all",
    gzip.compress(idx_bytes(np.zeros(9)), mtime=0)[:-12]],
    ids=["not_gzip", "truncated_gzip"])
def test_read_idx_rejects_corrupt_gzip(tmp_path, blob):
  path = tmp_path / "t10k-labels-idx1-ubyte.gz"
  path.write_bytes(blob)
  with pytest.raises(DataError, match="corrupt gzip") as err:
    mnist.read_idx(path)
  assert str(path) in str(err.value)


def test_read_idx_missing_file(tmp_path):
  with pytest.raises(DataError, match="cannot read") as err:
    mnist.read_idx(tmp_path / "nope-images-idx3-ubyte")
  assert "nope-images-idx3-ubyte" in str(err.value)


def test_load_dir_official_prefixes_and_order(tmp_path):
  train = write_pair(tmp_path, "train", [1, 2, 3], seed=1)
  test = write_pair(tmp_path, "t10k", [4, 5], gz=False, seed=2)
  extra = write_pair(tmp_path, "extra", [9], seed=3)
  (tmp_path / "README").write_text("ignored")
  got = mnist.load_mnist_dir(tmp_path)
  # Sorted prefixes: extra, t10k, train.
  np.testing.assert_array_equal(got.labels, [9, 4, 5, 1, 2, 3])
  assert got.labels.dtype == np.int32 and got.images.dtype == np.uint8
  np.testing.assert_array_equal(got.images, np.concatenate([extra, test,
                                                            train]))
  assert got.subset.tolist() == ["", "test", "test", "train", "train",
                                 "train"]
  assert got.source == f"mnist-idx:{tmp_path}"
  assert len(got) == 6


def test_load_dir_other_prefix_has_no_subset(tmp_path):
  write_pair(tmp_path, "mnist-8k", list(range(10)))
  got = mnist.load_mnist_dir(str(tmp_path))
  assert set(got.subset.tolist()) == {""}
  np.testing.assert_array_equal(got.labels, np.arange(10))


def _bad_dir_cases():
  """(name, setup(root) -> file name the error must mention, pattern)."""

  def wrong_magic(root):
    write_pair(root, "train", [1, 2])
    write(root / "train-images-idx3-ubyte.gz",
          idx_bytes(np.zeros((2, 28, 28, 1), np.uint8)))
    return "train-images-idx3-ubyte.gz", "expected 2051"

  def labels_as_images(root):
    write_pair(root, "train", [1, 2])
    write(root / "train-labels-idx1-ubyte.gz", idx_bytes(images(2)))
    return "train-labels-idx1-ubyte.gz", "expected 2049"

  def wrong_dims(root):
    write_pair(root, "train", [1, 2])
    write(root / "train-images-idx3-ubyte.gz",
          idx_bytes(np.zeros((2, 28, 27), np.uint8)))
    return "train-images-idx3-ubyte.gz", r"\[28, 27\], expected \[28, 28\]"

  def truncated(root):
    write_pair(root, "t10k", [1, 2], gz=False)
    path = root / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    return "t10k-images-idx3-ubyte", "promises 1568 bytes.*has 1468"

  def extra_bytes(root):
    write_pair(root, "t10k", [1, 2])
    write(root / "t10k-labels-idx1-ubyte.gz",
          idx_bytes(np.array([1, 2], np.uint8)) + b"\x05")
    return "t10k-labels-idx1-ubyte.gz", "1 trailing bytes"

  def count_mismatch(root):
    write_pair(root, "train", [1, 2, 3])
    write(root / "train-labels-idx1-ubyte.gz",
          idx_bytes(np.array([1, 2], np.uint8)))
    return "train-labels-idx1-ubyte.gz", "has 3 images but .* has 2 labels"

  def label_out_of_range(root):
    write_pair(root, "train", [1, 10, 3, 200])
    return "train-labels-idx1-ubyte.gz", "label 10 at index 1.*2 bad"

  def missing_labels(root):
    write_pair(root, "train", [1])
    write_pair(root, "t10k", [1])
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    return "t10k-labels-idx1-ubyte", "is missing: needed for .*t10k-images"

  def missing_images(root):
    write_pair(root, "train", [1])
    (root / "train-images-idx3-ubyte.gz").unlink()
    return "train-images-idx3-ubyte", "is missing"

  def duplicate(root):
    write_pair(root, "train", [1], gz=True)
    write_pair(root, "train", [1], gz=False)
    return "train-images-idx3-ubyte", "duplicates"

  def empty_dir(root):
    (root / "notes.txt").write_text("no idx here")
    return str(root), "no MNIST IDX files.*expected <prefix>-images-idx3"

  def empty_file(root):
    write_pair(root, "train", [1])
    (root / "train-images-idx3-ubyte.gz").write_bytes(b"")
    return "train-images-idx3-ubyte.gz", "empty file"

  return [wrong_magic, labels_as_images, wrong_dims, truncated, extra_bytes,
          count_mismatch, label_out_of_range, missing_labels, missing_images,
          duplicate, empty_dir, empty_file]


@pytest.mark.parametrize("setup", _bad_dir_cases(), ids=lambda f: f.__name__)
def test_load_dir_rejects(tmp_path, setup):
  name, pattern = setup(tmp_path)
  with pytest.raises(DataError, match=pattern) as err:
    mnist.load_mnist_dir(tmp_path)
  assert name in str(err.value)
  assert str(tmp_path) in str(err.value)
  assert "\n" not in str(err.value)


def test_load_dir_missing_dir(tmp_path):
  root = tmp_path / "absent"
  with pytest.raises(DataError, match="no such MNIST directory.*expected") \
      as err:
    mnist.load_mnist_dir(root)
  assert str(root) in str(err.value)


def test_load_dir_path_is_a_file(tmp_path):
  path = write(tmp_path / "train-images-idx3-ubyte", idx_bytes(images(1)))
  with pytest.raises(DataError, match="no such MNIST directory"):
    mnist.load_mnist_dir(path)


@requires_real_data
def test_real_mnist_8k(real_data_dir):
  got = mnist.load_mnist_dir(real_data_dir / "mnist")
  assert got.images.shape == (8000, 28, 28)
  assert got.images.dtype == np.uint8
  np.testing.assert_array_equal(
      np.bincount(got.labels, minlength=10),
      [768, 909, 823, 820, 792, 722, 774, 801, 784, 807])
  assert set(got.subset.tolist()) == {""}
  # Real digits: dark background, some ink in every image.
  assert (got.images.reshape(8000, -1).max(axis=1) > 128).all()
  assert got.images.mean() < 60
