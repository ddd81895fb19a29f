"""MNIST read from IDX files (LeCun's format, raw or gzipped).

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the
number of dimensions), one big-endian uint32 per dimension, then the data in
big-endian row-major order. MNIST images are magic 2051 (uint8, 3 dims),
labels magic 2049 (uint8, 1 dim).
"""

from __future__ import annotations

import gzip
import math
import os
import pathlib
import re
import zlib

import numpy as np

from avdigits.data.types import ImageSet
from avdigits.errors import DataError

IMAGES_MAGIC = 0x0803  # uint8, 3 dims
LABELS_MAGIC = 0x0801  # uint8, 1 dim
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
# The official file prefixes and the subset they hold.
OFFICIAL_SUBSETS = {"train": "train", "t10k": "test"}

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
           0x0E: ">f8"}
_FILE_NAME = re.compile(
    r"(?P<prefix>.+)-(?P<kind>images-idx3|labels-idx1)-ubyte(?P<gz>\.gz)?")
_LAYOUT = ("<prefix>-images-idx3-ubyte[.gz] with "
           "<prefix>-labels-idx1-ubyte[.gz], e.g. train-images-idx3-ubyte.gz")


def read_idx(path: str | os.PathLike, *, magic: int | None = None
             ) -> np.ndarray:
  """Reads one IDX file (gzipped when its name ends in `.gz`).

  Args:
    path: the file.
    magic: when given, the magic number the file must have (e.g. 2051).

  Returns:
    The array, in native byte order, with the shape the header declares.

  Raises:
    DataError: the file is unreadable, empty, corrupt, truncated, has
      trailing bytes or a different magic number; the message names it.
  """
  path = pathlib.Path(path).absolute()
  blob = _read_bytes(path)
  if len(blob) < 4:
    raise DataError(f"{path}: truncated IDX header: {len(blob)} bytes, "
                    "need at least 4")
  zeros, code, ndim = int.from_bytes(blob[:2], "big"), blob[2], blob[3]
  found = int.from_bytes(blob[:4], "big")
  if zeros != 0 or code not in _DTYPES or ndim == 0:
    raise DataError(f"{path}: not an IDX file: bad magic number "
                    f"0x{found:08x} (want 0x0000, a dtype code, ndim >= 1)")
  if magic is not None and found != magic:
    raise DataError(f"{path}: magic number {found} (0x{found:08x}), "
                    f"expected {magic} (0x{magic:08x})")
  header = 4 + 4 * ndim
  if len(blob) < header:
    raise DataError(f"{path}: truncated IDX header: {len(blob)} bytes, "
                    f"{ndim} dimensions need {header}")
  dims = tuple(int(d) for d in np.frombuffer(blob, ">u4", ndim, 4))
  dtype = np.dtype(_DTYPES[code])
  promised = math.prod(dims) * dtype.itemsize
  present = len(blob) - header
  if present < promised:
    raise DataError(f"{path}: truncated: header {list(dims)} promises "
                    f"{promised} bytes of data, file has {present}")
  if present > promised:
    raise DataError(f"{path}: {present - promised} trailing bytes after the "
                    f"{promised} bytes of data the header {list(dims)} "
                    "promises")
  data = np.frombuffer(blob, dtype, offset=header).reshape(dims)
  return data.astype(dtype.newbyteorder("="))


def load_mnist_dir(mnist_dir: str | os.PathLike, *, seed: int = 0
                   ) -> ImageSet:
  """Loads every images/labels IDX pair in `mnist_dir`.

  Pairs are `<prefix>-images-idx3-ubyte[.gz]` and
  `<prefix>-labels-idx1-ubyte[.gz]`, concatenated in sorted-prefix order.
  Prefix `train` is subset "train", `t10k` is "test", any other prefix "".

  Args:
    mnist_dir: the directory.
    seed: unused (the order is the files'); accepted so that every image
      source takes the same arguments.

  Returns:
    An ImageSet with source "mnist-idx:<dir>".

  Raises:
    DataError: the directory is missing, unreadable or holds no pairs; a file
      lacks its partner, is malformed, or images and labels disagree.
  """
  del seed
  root = pathlib.Path(mnist_dir).expanduser().absolute()
  pairs = _find_pairs(root)
  images, labels, subsets = [], [], []
  for prefix, (image_path, label_path) in sorted(pairs.items()):
    x = read_idx(image_path, magic=IMAGES_MAGIC)
    if x.shape[1:] != IMAGE_SHAPE:
      raise DataError(f"{image_path}: images are {list(x.shape[1:])}, "
                      f"expected {list(IMAGE_SHAPE)}")
    y = read_idx(label_path, magic=LABELS_MAGIC)
    if len(x) != len(y):
      raise DataError(f"{image_path} has {len(x)} images but {label_path} "
                      f"has {len(y)} labels")
    bad = np.flatnonzero(y >= NUM_CLASSES)
    if bad.size:
      raise DataError(f"{label_path}: label {int(y[bad[0]])} at index "
                      f"{int(bad[0])} is not a digit 0..9 ({bad.size} bad)")
    images.append(x)
    labels.append(y.astype(np.int32))
    subsets.append(np.full(len(y), OFFICIAL_SUBSETS.get(prefix, "")))
  return ImageSet(images=np.concatenate(images), labels=np.concatenate(labels),
                  subset=np.concatenate(subsets).astype(str),
                  source=f"mnist-idx:{root}")


def _read_bytes(path: pathlib.Path) -> bytes:
  """The file's bytes, gunzipped when its name ends in `.gz`."""
  try:
    blob = path.read_bytes()
  except OSError as e:
    raise DataError(f"{path}: cannot read: {e.strerror or e}") from e
  if not blob:
    raise DataError(f"{path}: empty file")
  if path.suffix != ".gz":
    return blob
  try:
    blob = gzip.decompress(blob)
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f"{path}: corrupt gzip: {e}") from e
  if not blob:
    raise DataError(f"{path}: empty file (gzip holds no data)")
  return blob


def _find_pairs(root: pathlib.Path
                ) -> dict[str, tuple[pathlib.Path, pathlib.Path]]:
  """{prefix: (images file, labels file)} for every pair in `root`."""
  if not root.is_dir():
    raise DataError(f"{root}: no such MNIST directory (expected {_LAYOUT})")
  try:
    names = sorted(p.name for p in root.iterdir() if p.is_file())
  except OSError as e:
    raise DataError(f"{root}: cannot list MNIST directory: "
                    f"{e.strerror or e}") from e
  found: dict[tuple[str, str], pathlib.Path] = {}
  for name in names:
    match = _FILE_NAME.fullmatch(name)
    if match is None:
      continue
    key = (match["prefix"], match["kind"])
    if key in found:
      raise DataError(f"{root / name}: duplicates {found[key]} (keep one of "
                      "the raw and gzipped copies)")
    found[key] = root / name
  if not found:
    raise DataError(f"{root}: no MNIST IDX files (expected {_LAYOUT})")
  pairs = {}
  for prefix in sorted({prefix for prefix, _ in found}):
    image_path = found.get((prefix, "images-idx3"))
    label_path = found.get((prefix, "labels-idx1"))
    if image_path is None:
      raise DataError(f"{root / prefix}-images-idx3-ubyte[.gz] is missing: "
                      f"needed for {label_path}")
    if label_path is None:
      raise DataError(f"{root / prefix}-labels-idx1-ubyte[.gz] is missing: "
                      f"needed for {image_path}")
    pairs[prefix] = (image_path, label_path)
  return pairs
