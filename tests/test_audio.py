"""Tests for avdigits.data.audio: WAV/SPHERE decoding, validation, resampling.

Every file is written here byte by byte with `struct`, independently of the
reader. `riff_bytes` and `sphere_bytes` are shared with the other reader
tests.
"""

import struct

import numpy as np
import pytest

from avdigits import features
from avdigits.data import audio
from avdigits.errors import ConfigError, DataError

GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def chunk(chunk_id: bytes, body: bytes) -> bytes:
  """One RIFF chunk, padded to an even size."""
  return chunk_id + struct.pack("<I", len(body)) + body + b"\0" * (
      len(body) % 2)


def riff_bytes(payload: bytes, *, code: int = 1, channels: int = 1,
               rate: int = 8000, bits: int = 16, extensible: bool = False,
               data_size: int | None = None, before_data: bytes = b"") -> bytes:
  """A RIFF/WAVE file; `data_size` overrides the data chunk's stated size."""
  block = channels * bits // 8
  fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else code, channels, rate,
                    rate * block, block, bits)
  if extensible:
    fmt += struct.pack("<HHIH", 22, bits, 0, code) + GUID_TAIL
  size = len(payload) if data_size is None else data_size
  body = (b"WAVE" + chunk(b"fmt ", fmt) + before_data + b"data"
          + struct.pack("<I", size) + payload)
  return b"RIFF" + struct.pack("<I", len(body)) + body


def sphere_bytes(payload: bytes, fields: dict, *, header_size: int = 1024,
                 end_head: bool = True) -> bytes:
  """A NIST SPHERE file; int fields are `-i`, str fields `-sN`."""
  lines = ["NIST_1A", f"{header_size:7d}"]
  for key, value in fields.items():
    kind = "-i" if isinstance(value, int) else f"-s{len(value)}"
    lines.append(f"{key} {kind} {value}")
  if end_head:
    lines.append("end_head")
  return ("\n".join(lines) + "\n").encode().ljust(header_size, b" ") + payload


def int24_bytes(values: np.ndarray) -> bytes:
  """Little-endian 24-bit two's complement."""
  return values.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def tones(rate: int, seconds: float = 0.5) -> np.ndarray:
  """Three tones below 4 kHz (band-limited for 8 kHz), peak 0.75."""
  t = np.arange(int(rate * seconds)) / rate
  return 0.25 * (np.sin(2 * np.pi * 300 * t) + np.sin(2 * np.pi * 1000 * t + 1)
                 + np.sin(2 * np.pi * 2500 * t + 2))


def as_int16(x: np.ndarray) -> np.ndarray:
  return np.round(x * 32767).astype(np.int16)


@pytest.fixture
def s16():
  return as_int16(tones(8000))


def _write(tmp_path, name, blob):
  path = tmp_path / name
  path.write_bytes(blob)
  return path


# ---------------------------------------------------------------- decoding


def _encodings(s16: np.ndarray) -> dict:
  """name -> (file bytes, tolerance vs the 16-bit reading)."""
  wide = s16.astype("<i4")
  stereo = np.stack([s16, s16], axis=1).astype("<i2")
  return {
      "pcm8": (riff_bytes(((wide >> 8) + 128).astype(np.uint8).tobytes(),
                          bits=8), 1 / 128),
      "pcm24": (riff_bytes(int24_bytes(wide << 8), bits=24), 1e-7),
      "pcm32": (riff_bytes((wide << 16).tobytes(), bits=32), 1e-7),
      "float32": (riff_bytes((s16 / 32768).astype("<f4").tobytes(), code=3,
                             bits=32), 1e-7),
      "float64": (riff_bytes((s16 / 32768).astype("<f8").tobytes(), code=3,
                             bits=64), 1e-7),
      "ext_pcm16": (riff_bytes(s16.astype("<i2").tobytes(), extensible=True),
                    0),
      "ext_pcm24": (riff_bytes(int24_bytes(wide << 8), bits=24,
                               extensible=True), 1e-7),
      "ext_float32": (riff_bytes((s16 / 32768).astype("<f4").tobytes(),
                                 code=3, bits=32, extensible=True), 1e-7),
      "odd_chunk_first": (riff_bytes(
          s16.astype("<i2").tobytes(),
          before_data=chunk(b"LIST", b"INFOabc")), 0),
      "sphere_le": (sphere_bytes(s16.astype("<i2").tobytes(), {
          "sample_rate": 8000, "channel_count": 1, "sample_n_bytes": 2,
          "sample_count": len(s16), "sample_byte_format": "01",
          "sample_coding": "pcm"}), 0),
      "sphere_be": (sphere_bytes(s16.astype(">i2").tobytes(), {
          "sample_rate": 8000, "sample_n_bytes": 2, "sample_count": len(s16),
          "sample_byte_format": "10"}), 0),
      "sphere_le24": (sphere_bytes(int24_bytes(wide << 8), {
          "sample_rate": 8000, "sample_n_bytes": 3,
          "sample_byte_format": "01"}), 1e-7),
      "sphere_stereo": (sphere_bytes(stereo.astype(">i2").tobytes(), {
          "sample_rate": 8000, "channel_count": 2, "sample_n_bytes": 2,
          "sample_count": len(s16), "sample_byte_format": "10"}), 0),
  }


@pytest.mark.parametrize("name", list(_encodings(np.zeros(1, np.int16))))
def test_encodings_match_16bit_mono(tmp_path, s16, name):
  reference, rate = audio.read_audio(
      _write(tmp_path, "ref.wav", riff_bytes(s16.astype("<i2").tobytes())))
  np.testing.assert_array_equal(reference, s16 / np.float32(32768))
  blob, tolerance = _encodings(s16)[name]
  if name == "sphere_stereo":
    with pytest.warns(UserWarning, match="2 channels"):
      x, rate = audio.read_audio(_write(tmp_path, f"{name}.wav", blob))
  else:
    x, rate = audio.read_audio(_write(tmp_path, f"{name}.wav", blob))
  assert rate == 8000
  assert x.dtype == np.float32 and x.shape == reference.shape
  np.testing.assert_allclose(x, reference, rtol=0, atol=tolerance)
  # And the model sees the same features (8-bit: within its quantisation).
  feats = features.log_mel([x, reference], rate)
  if tolerance <= 1e-7:
    np.testing.assert_allclose(feats[0], feats[1], atol=1e-2)
  else:  # 8-bit noise lifts the quiet bins; the spectrogram stays the same
    assert np.corrcoef(feats[0].ravel(), feats[1].ravel())[0, 1] > 0.98


def test_big_endian_24bit_sphere(tmp_path, s16):
  wide = s16.astype("<i4") << 8
  big = np.frombuffer(int24_bytes(wide), np.uint8).reshape(-1, 3)[:, ::-1]
  path = _write(tmp_path, "be24.sph", sphere_bytes(big.tobytes(), {
      "sample_rate": 8000, "sample_n_bytes": 3, "sample_byte_format": "10"}))
  x, _ = audio.read_audio(path)
  np.testing.assert_allclose(x, s16 / 32768, rtol=0, atol=1e-7)


def test_stereo_wav_is_mixed_down_with_one_warning(tmp_path):
  left = np.array([1000, -2000, 3000, 32767], np.int16)
  right = np.array([3000, 2000, -3000, -32768], np.int16)
  path = _write(tmp_path, "stereo.wav", riff_bytes(
      np.stack([left, right], 1).astype("<i2").tobytes(), channels=2))
  with pytest.warns(UserWarning) as record:
    x, _ = audio.read_audio(path)
  assert len(record) == 1 and str(path) in str(record[0].message)
  np.testing.assert_allclose(
      x, (left.astype(float) + right) / 2 / 32768, atol=1e-7)


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_sample_rates_round_trip(tmp_path, rate):
  s = as_int16(tones(rate, 0.1))
  x, got = audio.read_audio(
      _write(tmp_path, "r.wav", riff_bytes(s.astype("<i2").tobytes(),
                                           rate=rate)))
  assert got == rate and len(x) == len(s)


def test_pcm_extremes_stay_in_range(tmp_path):
  extremes = {8: (np.array([0, 255], np.uint8).tobytes(), [-1, 127 / 128]),
              16: (np.array([-32768, 32767], "<i2").tobytes(),
                   [-1, 32767 / 32768]),
              24: (int24_bytes(np.array([-2**23, 2**23 - 1])), [-1, 1]),
              32: (np.array([-2**31, 2**31 - 1], "<i4").tobytes(), [-1, 1])}
  for bits, (payload, expected) in extremes.items():
    x, _ = audio.read_audio(_write(tmp_path, f"{bits}.wav",
                                   riff_bytes(payload, bits=bits)))
    np.testing.assert_allclose(x, expected, atol=1e-6)
    assert np.abs(x).max() <= 1


def test_float_wav_is_clipped_to_unit_range(tmp_path):
  path = _write(tmp_path, "loud.wav", riff_bytes(
      np.array([-3.0, 0.5, 2.0], "<f4").tobytes(), code=3, bits=32))
  np.testing.assert_array_equal(audio.read_audio(path)[0], [-1, 0.5, 1])


def test_mulaw_and_alaw_match_g711(tmp_path):
  # G.711 reference points (as Python's audioop decodes them): code -> value.
  mulaw = {0x00: -32124, 0x7F: 0, 0x80: 32124, 0xFF: 0, 0xEF: 132,
           0x6F: -132, 0xCF: 924, 0x01: -31100, 0x9A: 10876}
  alaw = {0x55: -8, 0xD5: 8, 0xAA: 32256, 0x2A: -32256, 0xC5: 264,
          0x00: -5504, 0x80: 5504, 0x13: -2880}
  for code, table in ((7, mulaw), (6, alaw)):
    x, _ = audio.read_audio(_write(tmp_path, f"{code}.wav", riff_bytes(
        bytes(table), code=code, bits=8)))
    np.testing.assert_array_equal(x * 32768, list(table.values()))
  path = _write(tmp_path, "ulaw.sph", sphere_bytes(bytes(mulaw), {
      "sample_rate": 8000, "sample_n_bytes": 1, "sample_coding": "ulaw"}))
  np.testing.assert_array_equal(audio.read_audio(path)[0] * 32768,
                                list(mulaw.values()))


def test_silence_is_valid_and_flagged(tmp_path):
  path = _write(tmp_path, "silent.wav", riff_bytes(bytes(200)))
  x, _ = audio.read_audio(path)
  assert len(x) == 100 and audio.is_silent(x)
  assert audio.is_silent(np.array([1 / 32768, -1 / 32768]))
  assert not audio.is_silent(np.array([0, 2 / 32768]))
  assert not audio.is_silent(np.array([0.0, 0.1]), threshold=0.05)


# ---------------------------------------------------------------- bad files

_PCM16 = np.arange(-50, 50, dtype="<i2").tobytes()
_SPH = {"sample_rate": 16000, "sample_n_bytes": 2, "sample_byte_format": "01"}

BAD_FILES = {
    "zero_length": (b"", "empty file"),
    "truncated_header": (riff_bytes(_PCM16)[:30], "truncated WAV header"),
    "riff_only": (b"RIFF\x10\0\0", "truncated WAV header"),
    "data_shorter_than_header": (
        riff_bytes(_PCM16, data_size=400), "header says 400 bytes of samples, "
        "file has 200"),
    "not_wav": (b"ID3\x03\0\0\0\0mp3 bytes", "not a WAV or NIST SPHERE"),
    "not_wave_riff": (b"RIFF\x10\0\0\0AVI LIST", "not WAVE"),
    "nan_float": (riff_bytes(np.array([0.1, np.nan], "<f4").tobytes(),
                             code=3, bits=32), "non-finite"),
    "inf_float": (riff_bytes(np.array([np.inf, 0], "<f8").tobytes(), code=3,
                             bits=64), "non-finite"),
    "bit_depth_12": (riff_bytes(_PCM16, bits=12), "unsupported WAV encoding"),
    "float_16": (riff_bytes(_PCM16, code=3, bits=16),
                 "unsupported WAV encoding"),
    "adpcm": (riff_bytes(_PCM16, code=2, bits=4), "MS ADPCM"),
    "zero_channels": (riff_bytes(_PCM16, channels=0), "0 channels"),
    "zero_rate": (riff_bytes(_PCM16, rate=0), "sample rate 0"),
    "no_samples": (riff_bytes(b""), "no samples"),
    "odd_data_size": (riff_bytes(_PCM16 + b"\0", data_size=201),
                      "not a multiple of the 2-byte frame"),
    "no_data_chunk": (riff_bytes(b"")[:-8], "no 'data' chunk"),
    "short_fmt": (b"RIFF\0\0\0\0WAVE" + chunk(b"fmt ", b"\1\0\1\0"),
                  "'fmt ' chunk is 4 bytes"),
    "bad_extensible_guid": (riff_bytes(_PCM16, extensible=True).replace(
        GUID_TAIL, b"\xff" * 14), "sub-format"),
    "sphere_no_end_head": (sphere_bytes(_PCM16, _SPH, end_head=False),
                           "no 'end_head'"),
    "sphere_bad_size": (b"NIST_1A\n   10x4\nend_head\n", "not a number"),
    "sphere_size_past_eof": (sphere_bytes(b"", _SPH)[:600],
                             "outside the file"),
    "sphere_bad_number": (sphere_bytes(_PCM16, {**_SPH, "sample_rate": "16k"}),
                          "sample_rate '16k' is not an integer"),
    "sphere_no_rate": (sphere_bytes(_PCM16, {"sample_n_bytes": 2,
                                             "sample_byte_format": "01"}),
                       "no sample_rate"),
    "sphere_count_past_eof": (
        sphere_bytes(_PCM16, {**_SPH, "sample_count": 101}),
        r"header says 101 samples \(202 bytes\), file has 200"),
    "sphere_byte_order": (sphere_bytes(_PCM16, {**_SPH,
                                                "sample_byte_format": "1"}),
                          "sample_byte_format '1'"),
    "sphere_bad_line": (sphere_bytes(_PCM16, {**_SPH}).replace(
        b"sample_rate -i", b"sample_rate_i_"), "malformed SPHERE header line"),
    "sphere_zero_channels": (sphere_bytes(_PCM16, {**_SPH,
                                                   "channel_count": 0}),
                             "must be positive"),
    "sphere_shorten": (sphere_bytes(b"\xff" * 64, {
        **_SPH, "sample_coding": "pcm,embedded-shorten-v2.00",
        "sample_count": 4000}), "shorten-compressed.*sph2pipe -f wav"),
    "sphere_non_ascii": (sphere_bytes(_PCM16, {**_SPH, "x": "\xe9"}),
                         "not ASCII"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_raise_data_error_naming_the_file(tmp_path, case):
  blob, pattern = BAD_FILES[case]
  path = _write(tmp_path, f"{case}.wav", blob)
  with pytest.raises(DataError, match=pattern) as info:
    audio.read_audio(path)
  message = str(info.value)
  assert str(path) in message and "\n" not in message


def test_missing_file_raises_data_error(tmp_path):
  with pytest.raises(DataError, match="missing.wav"):
    audio.read_audio(tmp_path / "missing.wav")


def test_trailing_junk_after_complete_chunks_is_ignored(tmp_path):
  path = _write(tmp_path, "junk.wav", riff_bytes(_PCM16) + b"JUNK\xff\xff")
  assert len(audio.read_audio(path)[0]) == 100


# ---------------------------------------------------------------- resampling


def test_resampled_16k_matches_8k_original(tmp_path):
  """16 kHz -> 8 kHz lands within 2e-3 of the signal recorded at 8 kHz.

  The tones are all below 4 kHz; the first and last 16 output samples (the
  FIR's half length is 10) are excluded from the comparison.
  """
  s8 = as_int16(tones(8000))
  s16k = as_int16(tones(16000))
  path = _write(tmp_path, "16k.wav",
                riff_bytes(s16k.astype("<i2").tobytes(), rate=16000))
  y = audio.load_waveform(path, 8000)
  assert y.dtype == np.float32 and len(y) == len(s8)
  np.testing.assert_allclose(y[16:-16], s8[16:-16] / 32768, rtol=0, atol=2e-3)


def test_resample_identity_and_lengths():
  x = tones(8000, 0.1).astype(np.float32)
  assert audio.resample(x, 8000, 8000) is x
  assert len(audio.resample(x, 8000, 16000)) == 1600
  assert len(audio.resample(x, 8000, 44100)) == 4410
  y = audio.resample(np.ones(800, np.float32), 8000, 48000)
  assert y.dtype == np.float32 and np.abs(y).max() <= 1


@pytest.mark.parametrize("rates", [(0, 8000), (8000, -1), (8000.5, 8000)])
def test_resample_rejects_bad_rates(rates):
  with pytest.raises(ConfigError, match="rate"):
    audio.resample(np.zeros(10, np.float32), *rates)
