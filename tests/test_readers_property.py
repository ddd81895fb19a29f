"""Property tests: readers return a correct result or raise DataError.

Random bytes, mutated valid files and random valid-but-odd WAV/SPHERE files
go through the readers; any other exception (struct.error, IndexError,
ValueError from numpy, ...) is a bug.
"""

import gzip
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avdigits.data import audio
from avdigits.data.mnist import read_idx
from avdigits.errors import DataError
from tests.test_audio import chunk, int24_bytes, riff_bytes, sphere_bytes

_SETTINGS = settings(max_examples=100, deadline=None, derandomize=True,
                     database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])

# (format code, bits): the integer range a sample is drawn from, its scale.
_WAV_INT = {(1, 8): (0, 255), (1, 16): (-2**15, 2**15 - 1),
            (1, 24): (-2**23, 2**23 - 1), (1, 32): (-2**31, 2**31 - 1)}


def _read(tmp_path, blob: bytes):
  """read_audio on `blob`: (samples, rate), or None after a DataError."""
  path = tmp_path / "x.wav"
  path.write_bytes(blob)
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # Multi-channel mix-down warnings.
      x, rate = audio.read_audio(path)
  except DataError as e:
    assert str(path) in str(e) and "\n" not in str(e)
    return None
  assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 1
  assert len(x) > 0 and np.all(np.isfinite(x)) and np.abs(x).max() <= 1
  assert isinstance(rate, int) and rate > 0
  return x, rate


_PREFIXES = st.sampled_from([
    b"", b"RIFF\x24\0\0\0WAVE", b"RIFF\0\0\0\0WAVEfmt ",
    b"NIST_1A\n   1024\n", b"NIST_1A\n"])


@_SETTINGS
@given(prefix=_PREFIXES, tail=st.binary(max_size=600))
def test_random_bytes(tmp_path, prefix, tail):
  _read(tmp_path, prefix + tail)


@st.composite
def _wav_files(draw):
  """(file bytes, expected mono samples or None for DataError, rate).

  The data chunk's stated size is sometimes wrong: too long (truncated
  file), not a whole number of frames, or shorter than the samples written
  (the rest then reads as trailing junk, and only a prefix is expected).
  """
  code, bits = draw(st.sampled_from(sorted(_WAV_INT) + [(3, 32), (3, 64)]))
  channels = draw(st.integers(1, 6))
  frames = draw(st.integers(0, 40))
  rate = draw(st.integers(1, 2**26))  # byte rate must fit 32 bits.
  n = frames * channels
  if code == 3:
    values = np.array(draw(st.lists(
        st.floats(-1, 1, width=bits), min_size=n, max_size=n)), np.float64)
    expected = values
    payload = values.astype(f"<f{bits // 8}").tobytes()
  else:
    lo, hi = _WAV_INT[(code, bits)]
    values = np.array(draw(st.lists(st.integers(lo, hi), min_size=n,
                                    max_size=n)), np.int64)
    if bits == 8:
      expected = (values - 128) / 128
      payload = values.astype(np.uint8).tobytes()
    else:
      expected = values / 2.0 ** (bits - 1)
      payload = (int24_bytes(values) if bits == 24
                 else values.astype(f"<i{bits // 8}").tobytes())
  expected = expected.reshape(-1, channels).mean(axis=1)
  frame = channels * bits // 8
  stated = draw(st.one_of(st.just(len(payload)),
                          st.integers(0, len(payload) + 2 * frame)))
  if stated == 0 or stated > len(payload) or stated % frame:
    expected = None
  else:
    expected = expected[:stated // frame]
  junk = draw(st.one_of(st.none(), st.binary(max_size=5)))
  before = b"" if junk is None else chunk(b"junk", junk)  # Odd sizes pad.
  blob = riff_bytes(payload, code=code, channels=channels, rate=rate,
                    bits=bits, extensible=draw(st.booleans()),
                    data_size=stated, before_data=before)
  return blob, expected, rate


@_SETTINGS
@given(case=_wav_files())
def test_valid_wav(tmp_path, case):
  blob, expected, rate = case
  result = _read(tmp_path, blob)
  if expected is None:
    assert result is None
    return
  assert result is not None and result[1] == rate
  np.testing.assert_allclose(result[0], expected, rtol=1e-6, atol=1e-6)


@st.composite
def _sphere_files(draw):
  """(file bytes, expected length or None for DataError, samples, rate).

  `samples` holds the expected values of the first frames (None for mu-law).
  sample_count is absent (inferred from the file size), right, or random.
  """
  width = draw(st.sampled_from([1, 2, 3, 4]))
  channels = draw(st.integers(1, 4))
  frames = draw(st.integers(0, 40))
  rate = draw(st.integers(1, 10**6))
  order = draw(st.sampled_from(["01", "10"]))
  n = frames * channels
  fields = {"sample_rate": rate, "channel_count": channels,
            "sample_n_bytes": width}
  if width == 1:
    payload = draw(st.binary(min_size=n, max_size=n))
    fields["sample_coding"] = "ulaw"
    samples = None
  else:
    bound = 2 ** (8 * width - 1)
    values = np.array(draw(st.lists(st.integers(-bound, bound - 1),
                                    min_size=n, max_size=n)), np.int64)
    samples = (values / bound).reshape(-1, channels).mean(axis=1)
    if width == 3:
      payload = int24_bytes(values)
      if order == "10":
        payload = np.frombuffer(payload, np.uint8).reshape(-1, 3)[
            :, ::-1].tobytes()
    else:
      payload = values.astype(("<" if order == "01" else ">")
                              + f"i{width}").tobytes()
    fields["sample_byte_format"] = order
  trailing = draw(st.binary(max_size=3))  # Extra bytes past the samples.
  available = len(payload) + len(trailing)
  count = draw(st.one_of(st.none(), st.just(frames),
                         st.integers(0, frames + 3)))
  if count is None:
    length = available // (width * channels)
  else:
    fields["sample_count"] = length = count
  if length == 0 or length * width * channels > available:
    length = None
  header_size = draw(st.sampled_from([512, 1024, 2048]))
  blob = sphere_bytes(payload + trailing, fields, header_size=header_size)
  return blob, length, samples, rate


@_SETTINGS
@given(case=_sphere_files())
def test_valid_sphere(tmp_path, case):
  blob, length, samples, rate = case
  result = _read(tmp_path, blob)
  if length is None:
    assert result is None
    return
  assert result is not None and result[1] == rate
  assert len(result[0]) == length
  if samples is not None:
    k = min(length, len(samples))
    np.testing.assert_allclose(result[0][:k], samples[:k], rtol=1e-6,
                               atol=1e-6)


def _valid_files():
  return st.one_of(_wav_files().map(lambda c: c[0]),
                   _sphere_files().map(lambda c: c[0]))


@_SETTINGS
@given(blob=_valid_files(), data=st.data())
def test_mutated_valid_files(tmp_path, blob, data):
  """Truncating or overwriting bytes of a valid file never crashes."""
  cut = data.draw(st.integers(0, len(blob)))
  blob = bytearray(blob[:cut] if data.draw(st.booleans()) else blob)
  # Mostly in the header (first 64 bytes), where the sizes and codes are.
  end = min(len(blob), data.draw(st.sampled_from([64, len(blob)])))
  for _ in range(data.draw(st.integers(0, 4)) if end else 0):
    blob[data.draw(st.integers(0, end - 1))] = data.draw(st.integers(0, 255))
  _read(tmp_path, bytes(blob))


_IDX_PREFIXES = st.sampled_from([
    b"", b"\0\0\x08\x01", b"\0\0\x08\x03", b"\0\0\x08\x03\0\0\0\x02\0\0\0\x1c",
    b"\0\0\x0d\x01\0\0\0\x01", b"\x1f\x8b\x08\0"])


@_SETTINGS
@given(prefix=_IDX_PREFIXES, tail=st.binary(max_size=300),
       gz=st.sampled_from(["", "raw", "compressed"]))
def test_read_idx_random_bytes(tmp_path, prefix, tail, gz):
  """Random IDX-ish bytes, optionally as (or gzipped into) a .gz file."""
  path = tmp_path / ("x-idx3-ubyte.gz" if gz else "x-idx3-ubyte")
  blob = prefix + tail
  path.write_bytes(gzip.compress(blob) if gz == "compressed" else blob)
  try:
    result = read_idx(path)
  except DataError as e:
    assert str(path.name) in str(e) and "\n" not in str(e)
    return
  assert isinstance(result, np.ndarray)
