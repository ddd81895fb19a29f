"""Audio file readers: RIFF/WAVE and NIST SPHERE to float32 mono, resampling.

`read_audio` sniffs the header, never the file name, so TIDIGITS' SPHERE
files named `*.wav` read the same as real WAVs. Every malformed input raises a
one-line `DataError` naming the file.
"""

from __future__ import annotations

import functools
import math
import os
import pathlib
import struct
import warnings

import numpy as np
import scipy.signal

from avdigits.errors import ConfigError, DataError

_PCM, _FLOAT, _ALAW, _MULAW = 0x0001, 0x0003, 0x0006, 0x0007
_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {_PCM: "PCM", _FLOAT: "IEEE float", _ALAW: "A-law",
                 _MULAW: "mu-law", 0x0002: "MS ADPCM", 0x0011: "IMA ADPCM",
                 0x0055: "MP3"}
# (format code, bits per sample) pairs read_audio decodes.
_WAV_ENCODINGS = {(_PCM, 8), (_PCM, 16), (_PCM, 24), (_PCM, 32),
                  (_FLOAT, 32), (_FLOAT, 64), (_ALAW, 8), (_MULAW, 8)}
# WAVE_FORMAT_EXTENSIBLE sub-format GUIDs are the format code followed by this.
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"

_RIFF_HEADER = struct.Struct("<4sI4s")
_CHUNK_HEADER = struct.Struct("<4sI")
_FMT = struct.Struct("<HHIIHH")

_SPHERE_MAGIC = b"NIST_1A"
_SHORTEN_HINT = ("no maintained Python library decodes shorten; convert it to "
                 "plain PCM first with LDC's sph2pipe, e.g. "
                 "`sph2pipe -f wav in.wav out.wav` (SoX ignores the shorten "
                 "flag and outputs noise)")

# One 16-bit LSB: quieter than this everywhere counts as silence.
SILENCE_THRESHOLD = 1.0 / 32768


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
  """Reads a WAV or NIST SPHERE file.

  Args:
    path: the file; its format is taken from its first bytes.

  Returns:
    (samples, sample_rate): float32 mono samples in [-1, 1] (channels are
    averaged, with a warning; float samples beyond +-1 are clipped) and the
    rate in Hz.

  Raises:
    DataError: the file is missing, unreadable, malformed or in an encoding
      this reader does not decode (e.g. shorten-compressed SPHERE).
  """
  path = pathlib.Path(path).absolute()
  try:
    with open(path, "rb") as f:
      blob = f.read()
  except OSError as e:
    raise DataError(f"{path}: cannot read audio file: {e.strerror}") from e
  if not blob:
    raise DataError(f"{path}: empty file (0 bytes)")
  if blob.startswith(b"RIFF"):
    return _read_riff(path, blob)
  if blob.startswith(_SPHERE_MAGIC):
    return _read_sphere(path, blob)
  if blob.startswith((b"RIFX", b"RF64")):
    raise DataError(f"{path}: {blob[:4].decode()} WAV variant is not "
                    "supported; convert it to a little-endian RIFF WAV")
  raise DataError(f"{path}: not a WAV or NIST SPHERE file "
                  f"(starts with {blob[:12]!r})")


def is_silent(x: np.ndarray, threshold: float = SILENCE_THRESHOLD) -> bool:
  """True if no sample's magnitude exceeds `threshold` (or `x` is empty)."""
  x = np.asarray(x)
  return x.size == 0 or float(np.max(np.abs(x))) <= threshold


def frame_energy_db(x: np.ndarray, sample_rate: int, frame_s: float = 0.02
                    ) -> tuple[np.ndarray, int]:
  """Energies (dB) of consecutive `frame_s` frames of `x` (the tail that is
  no whole frame is left out), and the frame length in samples."""
  frame = max(int(frame_s * sample_rate), 1)
  count = len(x) // frame
  energy = 10 * np.log10(np.mean(
      np.asarray(x[:count * frame], np.float64).reshape(count, frame) ** 2,
      axis=1) + 1e-12)
  return energy, frame


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
  """Resamples float32 audio by a rational factor (polyphase, Kaiser FIR).

  Returns `x` itself when the rates are equal; otherwise a new float32 array
  of length ceil(len(x) * to_rate / from_rate), clipped to [-1, 1].
  """
  for name, rate in (("from_rate", from_rate), ("to_rate", to_rate)):
    if int(rate) != rate or rate <= 0:
      raise ConfigError(f"{name}={rate!r}: sample rate must be a positive "
                        "integer (Hz)")
  from_rate, to_rate = int(from_rate), int(to_rate)
  if from_rate == to_rate:
    return x
  g = math.gcd(from_rate, to_rate)
  up, down = to_rate // g, from_rate // g
  y = scipy.signal.resample_poly(np.asarray(x, np.float32), up, down,
                                 window=_resampling_filter(up, down))
  return np.clip(y, -1.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _resampling_filter(up: int, down: int) -> np.ndarray:
  """resample_poly's own default FIR, designed once per ratio."""
  half_len = 10 * max(up, down)
  return scipy.signal.firwin(2 * half_len + 1, 1.0 / max(up, down),
                             window=("kaiser", 5.0)).astype(np.float32)


def load_waveform(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
  """Reads `path` (see read_audio) and resamples it to `sample_rate` Hz."""
  x, rate = read_audio(path)
  return resample(x, rate, sample_rate)


# ---------------------------------------------------------------- decoding


def _decode_int(raw: bytes, width: int, order: str) -> np.ndarray:
  """Integer PCM -> float32 in [-1, 1]; 1-byte samples are unsigned (WAV)."""
  if width == 1:
    return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
  if width == 3:
    triples = np.frombuffer(raw, np.uint8).reshape(-1, 3)
    if order == ">":
      triples = triples[:, ::-1]
    wide = np.zeros((len(triples), 4), np.uint8)
    wide[:, 1:] = triples  # Top 3 bytes of a little-endian int32.
    ints = wide.view("<i4")[:, 0] >> 8
  else:
    ints = np.frombuffer(raw, f"{order}i{width}")
  return (ints / float(2 ** (8 * width - 1))).astype(np.float32)


def _decode_mulaw(raw: bytes) -> np.ndarray:
  """G.711 mu-law bytes -> float32 in [-1, 1]."""
  u = ~np.frombuffer(raw, np.uint8).astype(np.int32) & 0xFF
  exponent, mantissa = (u >> 4) & 7, u & 0x0F
  magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
  return (np.where(u & 0x80, -magnitude, magnitude) / 32768).astype(np.float32)


def _decode_alaw(raw: bytes) -> np.ndarray:
  """G.711 A-law bytes -> float32 in [-1, 1]."""
  a = np.frombuffer(raw, np.uint8).astype(np.int32) ^ 0x55
  exponent, mantissa = (a >> 4) & 7, a & 0x0F
  magnitude = np.where(exponent == 0, (mantissa << 4) + 8,
                       ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
  return (np.where(a & 0x80, magnitude, -magnitude) / 32768).astype(np.float32)


def _decode_float(path, raw: bytes, width: int) -> np.ndarray:
  x = np.frombuffer(raw, f"<f{width}")
  bad = ~np.isfinite(x)
  if bad.any():
    raise DataError(f"{path}: {int(bad.sum())} non-finite (NaN/inf) float "
                    f"samples, first at index {int(np.argmax(bad))}")
  return np.clip(x, -1.0, 1.0).astype(np.float32)


def _to_mono(path, x: np.ndarray, channels: int) -> np.ndarray:
  if channels == 1:
    return x
  warnings.warn(f"{path}: {channels} channels mixed down to mono",
                stacklevel=4)  # The caller of read_audio.
  return x.reshape(-1, channels).mean(axis=1, dtype=np.float32)


# ---------------------------------------------------------------- RIFF/WAVE


def _read_riff(path, blob: bytes) -> tuple[np.ndarray, int]:
  if len(blob) < _RIFF_HEADER.size:
    raise DataError(f"{path}: truncated WAV header ({len(blob)} bytes)")
  _, _, form = _RIFF_HEADER.unpack_from(blob)
  if form != b"WAVE":
    raise DataError(f"{path}: RIFF file of type {form!r}, not WAVE")
  fmt = data = None
  pos = _RIFF_HEADER.size
  while pos + _CHUNK_HEADER.size <= len(blob) and (fmt is None or data is None):
    chunk_id, size = _CHUNK_HEADER.unpack_from(blob, pos)
    start = pos + _CHUNK_HEADER.size
    available = len(blob) - start
    if chunk_id == b"data" and data is None:
      if size > available:
        raise DataError(f"{path}: truncated WAV: header says {size} bytes of "
                        f"samples, file has {available}")
      data = blob[start:start + size]
    elif size > available:
      raise DataError(f"{path}: truncated WAV header: "
                      f"{chunk_id.decode('latin-1')!r} chunk says {size} "
                      f"bytes, file has {available}")
    elif chunk_id == b"fmt " and fmt is None:
      fmt = _parse_fmt(path, blob[start:start + size])
    pos = start + size + (size & 1)  # Chunks are padded to even sizes.
  if fmt is None:
    raise DataError(f"{path}: truncated WAV header: no complete 'fmt ' chunk "
                    f"in {len(blob)} bytes")
  if data is None:
    raise DataError(f"{path}: WAV file has no 'data' chunk")
  code, channels, rate, bits = fmt
  frame = channels * bits // 8
  if not data:
    raise DataError(f"{path}: WAV file has no samples (empty 'data' chunk)")
  if len(data) % frame:
    raise DataError(f"{path}: 'data' chunk is {len(data)} bytes, not a "
                    f"multiple of the {frame}-byte frame ({channels} channels "
                    f"x {bits} bits)")
  if code == _FLOAT:
    x = _decode_float(path, data, bits // 8)
  elif code == _MULAW:
    x = _decode_mulaw(data)
  elif code == _ALAW:
    x = _decode_alaw(data)
  else:
    x = _decode_int(data, bits // 8, "<")
  return _to_mono(path, x, channels), rate


def _parse_fmt(path, body: bytes) -> tuple[int, int, int, int]:
  """'fmt ' chunk -> (format code, channels, sample rate, bits per sample)."""
  if len(body) < _FMT.size:
    raise DataError(f"{path}: 'fmt ' chunk is {len(body)} bytes, need at "
                    f"least {_FMT.size}")
  code, channels, rate, _, _, bits = _FMT.unpack_from(body)
  if code == _EXTENSIBLE:
    if len(body) < 40:
      raise DataError(f"{path}: WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk is "
                      f"{len(body)} bytes, need 40")
    guid = body[24:40]
    if guid[2:] != _GUID_TAIL:
      raise DataError(f"{path}: unsupported WAVE_FORMAT_EXTENSIBLE sub-format "
                      f"{guid.hex()}")
    code = int.from_bytes(guid[:2], "little")
  if channels == 0:
    raise DataError(f"{path}: WAV header says 0 channels")
  if rate == 0:
    raise DataError(f"{path}: WAV header says sample rate 0")
  if (code, bits) not in _WAV_ENCODINGS:
    name = _FORMAT_NAMES.get(code, "unknown")
    raise DataError(f"{path}: unsupported WAV encoding: format 0x{code:04x} "
                    f"({name}), {bits} bits; supported: PCM 8/16/24/32-bit, "
                    "IEEE float 32/64-bit, A-law, mu-law")
  return code, channels, rate, bits


# ---------------------------------------------------------------- SPHERE


def _read_sphere(path, blob: bytes) -> tuple[np.ndarray, int]:
  fields, header_size = _parse_sphere_header(path, blob)
  coding = _sphere_str(fields, "sample_coding", "pcm").lower()
  byte_format = _sphere_str(fields, "sample_byte_format", "")
  if "shorten" in coding or "shortpack" in byte_format:
    raise DataError(f"{path}: NIST SPHERE file is shorten-compressed "
                    f"(sample_coding {coding!r}); {_SHORTEN_HINT}")
  rate = _sphere_int(path, fields, "sample_rate", None)
  channels = _sphere_int(path, fields, "channel_count", 1)
  width = _sphere_int(path, fields, "sample_n_bytes", 2)
  if rate <= 0 or channels <= 0 or width <= 0:
    raise DataError(f"{path}: SPHERE header says sample_rate {rate}, "
                    f"channel_count {channels}, sample_n_bytes {width}; all "
                    "must be positive")
  if coding in ("ulaw", "mu-law"):
    encoding = "ulaw"
  elif coding == "alaw":
    encoding = "alaw"
  elif coding.split(",")[0] == "pcm" and width in (2, 3, 4):
    encoding = "pcm"
  else:
    raise DataError(f"{path}: unsupported SPHERE encoding: sample_coding "
                    f"{coding!r} with {width}-byte samples; supported: pcm "
                    "2/3/4 bytes, ulaw, alaw")
  if encoding != "pcm" and width != 1:
    raise DataError(f"{path}: SPHERE {encoding} needs sample_n_bytes 1, "
                    f"header says {width}")
  if encoding == "pcm" and byte_format not in ("01", "10"):
    raise DataError(f"{path}: SPHERE sample_byte_format {byte_format!r} is "
                    "not '01' (little-endian) or '10' (big-endian)")
  frame = width * channels
  available = len(blob) - header_size
  count = _sphere_int(path, fields, "sample_count", available // frame)
  if count <= 0:
    raise DataError(f"{path}: SPHERE file has no samples (sample_count "
                    f"{count})")
  if count * frame > available:
    raise DataError(f"{path}: truncated SPHERE: header says {count} samples "
                    f"({count * frame} bytes), file has {available}")
  raw = blob[header_size:header_size + count * frame]
  if encoding == "ulaw":
    x = _decode_mulaw(raw)
  elif encoding == "alaw":
    x = _decode_alaw(raw)
  else:
    x = _decode_int(raw, width, "<" if byte_format == "01" else ">")
  return _to_mono(path, x, channels), rate


def _parse_sphere_header(path, blob: bytes) -> tuple[dict, int]:
  """Returns ({key: (type, value)}, header size in bytes)."""
  lines = blob[:64].split(b"\n", 2)
  if len(lines) < 3 or lines[0].strip() != _SPHERE_MAGIC:
    raise DataError(f"{path}: truncated or malformed NIST SPHERE preamble "
                    f"{blob[:24]!r}")
  try:
    header_size = int(lines[1].strip())
  except ValueError:
    raise DataError(f"{path}: SPHERE header size {lines[1][:16]!r} is not a "
                    "number") from None
  if not 16 <= header_size <= len(blob):
    raise DataError(f"{path}: SPHERE header size {header_size} is outside the "
                    f"file (16..{len(blob)} bytes)")
  try:
    text = blob[:header_size].decode("ascii")
  except UnicodeDecodeError:
    raise DataError(f"{path}: SPHERE header is not ASCII text") from None
  fields = {}
  for line in text.split("\n")[2:]:
    line = line.strip()
    if line == "end_head":
      return fields, header_size
    if not line or line.startswith(";"):
      continue
    parts = line.split(None, 2)
    if len(parts) != 3 or not parts[1].startswith("-"):
      raise DataError(f"{path}: malformed SPHERE header line {line[:60]!r}")
    fields[parts[0]] = (parts[1], parts[2].strip())
  raise DataError(f"{path}: SPHERE header has no 'end_head' within its "
                  f"{header_size} bytes")


def _sphere_str(fields: dict, key: str, default: str) -> str:
  return fields[key][1] if key in fields else default


def _sphere_int(path, fields: dict, key: str, default: int | None) -> int:
  if key not in fields:
    if default is None:
      raise DataError(f"{path}: SPHERE header has no {key}")
    return default
  value = fields[key][1]
  try:
    number = float(value)
  except ValueError:
    number = math.nan
  if not math.isfinite(number) or number != int(number):
    raise DataError(f"{path}: SPHERE header {key} {value[:20]!r} is not an "
                    "integer")
  return int(number)
