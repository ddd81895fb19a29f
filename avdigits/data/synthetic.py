"""Synthetic digits for tests, smoke runs and CI: no downloads, no real data.

Images are digits rendered from the DejaVu TrueType fonts that ship with
matplotlib, distorted and normalised the way MNIST was. Speech is "zero" ..
"nine" and "oh" spoken by eSpeak NG (from the `espeakng_loader` wheel) with
varied voices, rates and pitches. Both are deterministic functions of their
arguments.
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import functools
import math
import os
import pathlib
import shutil
import tempfile
import threading

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage, signal, spatial

from avdigits.data.types import SPEECH_CLASS_NAMES, ImageSet, SpeechSet
from avdigits.errors import ConfigError, DataError

# ----------------------------------------------------------------- images ---

_FONT_SIZE = 48  # Glyphs are drawn ~37 pixels tall, then halved.
_STROKES = (0, 1, 2)  # Extra stroke width in pixels at _FONT_SIZE.
_MAX_ROTATION = 15.0  # Degrees.
_MAX_SHEAR = 0.3
_ASPECT = (0.7, 1.1)  # Horizontal scale relative to vertical.
_BOX = (15.0, 19.0)  # Longer side in 28x28, before bilinear edges (+1).
_MAX_SHIFT = 1.0  # Pixels of translation after centring.
_BLUR = (0.0, 0.6)  # Weight of a sigma=0.5 Gaussian blur mixed in.
_CHUNK = 1024  # Images rendered per vectorised step.


def _between(u: np.ndarray, low: float, high: float) -> np.ndarray:
  """Maps uniforms in [0, 1) to [low, high)."""
  return low + (high - low) * u


def _font_dir() -> pathlib.Path:
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise DataError(f"matplotlib: not installed ({e}); synthetic images use "
                    "its DejaVu fonts") from None
  return pathlib.Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _font(path: str) -> ImageFont.FreeTypeFont:
  # The basic layout engine does not depend on libraqm being present.
  return ImageFont.truetype(path, _FONT_SIZE,
                            layout_engine=ImageFont.Layout.BASIC)


@functools.cache
def _fonts() -> tuple[str, ...]:
  """The DejaVu fonts with a glyph for every digit, sorted by file name."""
  font_dir = _font_dir()
  paths = [str(p) for p in sorted(font_dir.glob("DejaVu*.ttf"))
           if all(_font(str(p)).getmask(str(d)).getbbox() for d in range(10))]
  if not paths:
    raise DataError(f"{font_dir}: no DejaVu*.ttf font with digit glyphs "
                    "(they ship with matplotlib)")
  return tuple(paths)


def _glyph(font: ImageFont.FreeTypeFont, digit: int,
           stroke: int) -> np.ndarray:
  """A white-on-black digit cropped to its bounding box, float32 in [0, 1].

  Drawn at _FONT_SIZE, then 2x2 average-pooled: finer stroke-width steps, and
  the pooled glyph is close enough to the 28x28 scale to sample bilinearly.
  """
  size = 3 * _FONT_SIZE
  image = Image.new("L", (size, size))
  ImageDraw.Draw(image).text((size / 2, size / 2), str(digit), fill=255,
                             font=font, anchor="mm", stroke_width=stroke,
                             stroke_fill=255)
  left, top, right, bottom = image.getbbox()
  crop = np.asarray(image.crop((left, top, right + (right - left) % 2,
                                bottom + (bottom - top) % 2)), np.float32)
  height, width = crop.shape
  return crop.reshape(height // 2, 2, width // 2, 2).mean((1, 3)) / 255.0


@functools.cache
def _templates() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Every (font, digit, stroke) glyph, centred on one square canvas.

  Returns:
    glyphs: float32 [K, S, S] with a zero border, K = fonts * 10 * strokes,
      index (font * 10 + digit) * len(_STROKES) + stroke.
    centres: float64 [K, 2], each glyph's centre of mass (row, column).
    hulls: float64 [K, V, 2], vertices of each glyph's convex hull (row,
      column), repeated to a common count V; they give exact bounding boxes
      under affine maps.
  """
  crops = [_glyph(font, digit, stroke) for font in map(_font, _fonts())
           for digit in range(10) for stroke in _STROKES]
  size = max(max(c.shape) for c in crops) + 2
  glyphs = np.zeros((len(crops), size, size), np.float32)
  hulls = []
  for glyph, crop in zip(glyphs, crops, strict=True):
    top, left = ((size - n) // 2 for n in crop.shape)
    glyph[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
    points = np.argwhere(glyph > 0).astype(np.float64)
    hulls.append(points[spatial.ConvexHull(points).vertices])
  centres = np.array([ndimage.center_of_mass(g) for g in glyphs])
  count = max(len(h) for h in hulls)
  hulls = np.stack([np.resize(h, (count, 2)) for h in hulls])
  return glyphs, centres, hulls


def _linear_maps(rotation: np.ndarray, shear: np.ndarray,
                 aspect: np.ndarray) -> np.ndarray:
  """[N, 2, 2] maps of (row, column) offsets: stretch, shear, then rotate."""
  cos, sin = np.cos(np.radians(rotation)), np.sin(np.radians(rotation))
  zero, one = np.zeros_like(cos), np.ones_like(cos)
  # In (x, y) = (column, row) order, with y pointing down.
  rotate = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
  skew = np.stack([np.stack([one, shear], -1), np.stack([zero, one], -1)], -2)
  stretch = np.stack([np.stack([aspect, zero], -1),
                      np.stack([zero, one], -1)], -2)
  xy = rotate @ skew @ stretch
  return xy[:, ::-1, ::-1]  # Swap both axes to (row, column) order.


def _render(glyph_ix: np.ndarray, maps: np.ndarray, boxes: np.ndarray,
            shifts: np.ndarray) -> np.ndarray:
  """Maps glyphs into 28x28 images, MNIST style; float32 [N, 28, 28].

  Each glyph is distorted by its map, scaled so its longer side is `box`,
  and placed with its centre of mass at the image centre plus `shift` (moved
  back inside the frame where it would stick out). Pixels are bilinear
  samples.
  """
  glyphs, centres, hulls = _templates()
  size = glyphs.shape[-1]
  hull = (hulls[glyph_ix] - centres[glyph_ix, None]) @ maps.transpose(0, 2, 1)
  extent = hull.max(1) - hull.min(1)
  maps = maps * (boxes / extent.max(1))[:, None, None]
  hull *= (boxes / extent.max(1))[:, None, None]
  origin = 14.0 + shifts  # Where MNIST has its centres of mass.
  origin += np.maximum(0, -(origin + hull.min(1)))
  origin -= np.maximum(0, origin + hull.max(1) - 27)
  # Each output pixel's position in its glyph; the glyph border is zero.
  pixels = np.indices((28, 28), np.float64).reshape(2, -1).T
  src = ((pixels[None] - origin[:, None])
         @ np.linalg.inv(maps).transpose(0, 2, 1) + centres[glyph_ix, None])
  src = np.clip(src, 0, size - 1.001).astype(np.float32)
  base = src.astype(np.int32)
  frac_y, frac_x = np.moveaxis(src - base, -1, 0)
  index = (glyph_ix[:, None] * size + base[..., 0]) * size + base[..., 1]
  flat = glyphs.reshape(-1)
  top_left, top_right = flat[index], flat[index + 1]
  bottom_left, bottom_right = flat[index + size], flat[index + size + 1]
  top = top_left + (top_right - top_left) * frac_x
  bottom = bottom_left + (bottom_right - bottom_left) * frac_x
  return (top + (bottom - top) * frac_y).reshape(-1, 28, 28)


def synthetic_images(num_per_class: int, *, seed: int = 0) -> ImageSet:
  """Renders MNIST-like digits from fonts with random affine distortion.

  Each image is a white-on-black digit drawn from one of the DejaVu fonts
  bundled with matplotlib (Sans, Serif, Mono; regular, bold, oblique), with a
  random stroke width, rotation (+-15 degrees), shear and aspect ratio, fitted
  into a 16..20 pixel box, centred by its centre of mass in 28x28 (plus a
  small shift) and slightly blurred.

  Args:
    num_per_class: images per digit; the set has 10 * num_per_class, labels
      cycling 0, 1, ..., 9, 0, 1, ...
    seed: the same seed gives byte-identical images.

  Returns:
    An ImageSet with subset "" for every image.
  """
  if isinstance(num_per_class, bool) or not isinstance(
      num_per_class, (int, np.integer)) or num_per_class < 1:
    raise ConfigError(
        f"num_per_class: must be a positive integer, got {num_per_class!r}")
  fonts = _fonts()
  labels = np.tile(np.arange(10, dtype=np.int32), num_per_class)
  n = len(labels)
  # One row of uniforms per image, so a longer set starts with the same images.
  u = np.random.default_rng(seed).random((n, 9)).T
  font_ix = (u[0] * len(fonts)).astype(int)
  stroke_ix = (u[1] * len(_STROKES)).astype(int)
  glyph_ix = (font_ix * 10 + labels) * len(_STROKES) + stroke_ix
  maps = _linear_maps(_between(u[2], -_MAX_ROTATION, _MAX_ROTATION),
                      _between(u[3], -_MAX_SHEAR, _MAX_SHEAR),
                      _between(u[4], *_ASPECT))
  boxes = _between(u[5], *_BOX)
  shifts = _between(u[6:8].T, -_MAX_SHIFT, _MAX_SHIFT)
  blur = _between(u[8], *_BLUR).astype(np.float32)[:, None, None]
  images = np.concatenate([
      _render(glyph_ix[i:i + _CHUNK], maps[i:i + _CHUNK],
              boxes[i:i + _CHUNK], shifts[i:i + _CHUNK])
      for i in range(0, n, _CHUNK)])
  images += blur * (ndimage.gaussian_filter(images, (0, 0.5, 0.5)) - images)
  images *= 255.0 / np.maximum(images.max((1, 2), keepdims=True), 1e-6)
  names = ",".join(pathlib.Path(f).stem for f in fonts)
  return ImageSet(images=np.round(images).astype(np.uint8), labels=labels,
                  subset=np.full(n, ""),
                  source=f"synthetic-images(fonts={names};seed={seed})")


# ----------------------------------------------------------------- speech ---

SPEECH_WORDS = SPEECH_CLASS_NAMES  # Label i is the word SPEECH_WORDS[i].

# Voice = eSpeak language "+" variant (espeak-ng-data/voices/!v). Languages
# other than "en" and "en-029" reload a dictionary, ~10 ms per utterance.
_VOICES = ("en+m1", "en+m3", "en+m7", "en+f1", "en+f4", "en-029+m6",
           "en-029+f2", "en-us+m2", "en-us+f3", "en-gb-scotland+m4")
_RATES = (130, 220)  # Words per minute.
_PITCHES = ((30, 50), (50, 70))  # eSpeak pitch 0..100, "lo" and "hi" bucket.
_PITCH_RANGES = (30, 70)  # eSpeak pitch range (intonation) 0..100.
_GAINS = (0.5, 0.9)  # Peak amplitude of the clean waveform.
_NOISE = 0.003  # Standard deviation of the added white noise.
_MARGIN_S = (0.03, 0.08)  # Silence added at each end, seconds.
_TRIM_LEVEL = 0.01  # Silence: 5 ms frames 40 dB below the loudest.

# espeak_AUDIO_OUTPUT, espeak_PARAMETER and flag values from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_RATE, _PITCH, _RANGE = 1, 3, 4
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short),
                                   ctypes.c_int, ctypes.c_void_p)

_ESPEAK_LOCK = threading.Lock()


@functools.cache
def _espeak_paths() -> tuple[pathlib.Path, pathlib.Path]:
  """The eSpeak NG shared library and data directory from espeakng_loader."""
  try:
    import espeakng_loader  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise DataError(f"espeakng_loader: not installed ({e}); synthetic speech "
                    "needs the espeakng-loader wheel") from None
  library = pathlib.Path(espeakng_loader.get_library_path())
  try:
    data = pathlib.Path(espeakng_loader.get_data_path())
  except RuntimeError as e:
    raise DataError(f"{library.parent}: eSpeak NG data missing: {e}") from None
  return library, data


_COPY_PREFIX = "avdigits-espeak-"


def _remove_stale_copies() -> None:
  """Deletes library copies left by processes that were killed (atexit
  does not run on SIGKILL); a copy's folder name carries its process id."""
  for folder in pathlib.Path(tempfile.gettempdir()).glob(f"{_COPY_PREFIX}*"):
    pid = folder.name[len(_COPY_PREFIX):].partition("-")[0]
    if not pid.isdigit():
      continue
    try:
      os.kill(int(pid), 0)
    except ProcessLookupError:
      shutil.rmtree(folder, ignore_errors=True)
    except PermissionError:  # alive, another user's
      pass


@functools.cache
def _library_copy(library: pathlib.Path) -> pathlib.Path:
  """A private copy of the eSpeak NG library, made once per process.

  eSpeak keeps synthesis state in static variables (pitch flutter phase,
  gain control, ...) that survive espeak_Terminate, so the same call gives
  different samples depending on what was spoken before. Loading a private
  copy afresh for each utterance (and unloading it after) resets all of it,
  without touching anyone else who loaded the library.
  """
  _remove_stale_copies()
  folder = pathlib.Path(tempfile.mkdtemp(
      prefix=f"{_COPY_PREFIX}{os.getpid()}-"))
  atexit.register(shutil.rmtree, folder, ignore_errors=True)
  try:
    return pathlib.Path(shutil.copy(library, folder))
  except OSError as e:
    raise DataError(f"{library}: cannot read the eSpeak NG library: "
                    f"{e.strerror}") from None


@functools.cache
def _voice_name(data: pathlib.Path, voice: str) -> str:
  """`voice` with its language as a path under data/lang, e.g. gmw/en+m1.

  eSpeak finds such a name directly; a bare "en" makes it scan every voice.
  """
  language, plus, variant = voice.partition("+")
  files = sorted(p.relative_to(data / "lang").as_posix()
                 for p in (data / "lang").rglob("*")
                 if p.name.lower() == language.lower() and p.is_file())
  return (files[0] if files else language) + plus + variant


def _espeak(word: str, voice: str, rate: int, pitch: int,
            pitch_range: int) -> tuple[np.ndarray, int]:
  """Speaks `word` with a freshly loaded eSpeak NG: int16 samples and Hz."""
  library, data = _espeak_paths()
  chunks = []

  def collect(wav, num_samples, _events):
    if wav and num_samples > 0:
      chunks.append(np.ctypeslib.as_array(wav, (num_samples,)).copy())
    return 0

  callback = _SYNTH_CALLBACK(collect)
  text = word.encode()
  with _ESPEAK_LOCK:
    copy = _library_copy(library)
    try:
      lib = ctypes.CDLL(str(copy))
    except OSError as e:
      raise DataError(f"{library}: cannot load the eSpeak NG library (copied "
                      f"to {copy}): {e}") from None
    try:
      lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int,
                                        ctypes.c_char_p, ctypes.c_int]
      lib.espeak_Synth.argtypes = [
          ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
      sample_rate = lib.espeak_Initialize(
          _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data).encode(),
          _INITIALIZE_DONT_EXIT)
      if sample_rate <= 0:
        raise DataError(f"{data}: eSpeak NG failed to initialise "
                        f"(status {sample_rate})")
      try:
        if hasattr(lib, "espeak_ng_SetRandSeed"):  # For "breath" noise.
          lib.espeak_ng_SetRandSeed(ctypes.c_long(0))
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(_voice_name(data, voice).encode()) != 0:
          raise DataError(f"{data}: eSpeak NG has no voice {voice!r}")
        for parameter, value in ((_RATE, rate), (_PITCH, pitch),
                                 (_RANGE, pitch_range)):
          lib.espeak_SetParameter(parameter, value, 0)
        status = lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0,
                                  _CHARS_UTF8, None, None)
        if status != 0 or lib.espeak_Synchronize() != 0:
          raise DataError(f"{library}: eSpeak NG failed to speak {word!r} "
                          f"with voice {voice!r} (status {status})")
      finally:
        lib.espeak_Terminate()
    finally:
      _ctypes.dlclose(lib._handle)  # pylint: disable=protected-access
  samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
  return samples, sample_rate


@functools.cache
def _lowpass(up: int, down: int) -> np.ndarray:
  """resample_poly's default anti-aliasing filter, designed once."""
  max_rate = max(up, down)
  return signal.firwin(20 * max_rate + 1, 1.0 / max_rate,
                       window=("kaiser", 5.0))


@functools.lru_cache(maxsize=4096)
def _utterance(word: str, voice: str, rate: int, pitch: int, pitch_range: int,
               sample_rate: int) -> np.ndarray:
  """Clean speech at `sample_rate`, silence trimmed, peak 1; read-only."""
  samples, native_rate = _espeak(word, voice, rate, pitch, pitch_range)
  frame = native_rate // 200  # 5 ms.
  wave = samples / 32768.0
  frames = wave[:len(wave) // frame * frame].reshape(-1, frame)
  rms = np.sqrt((frames**2).mean(1))
  loud = np.flatnonzero(rms > _TRIM_LEVEL * rms.max(initial=0.0))
  if not len(loud) or not rms.max() > 0:
    raise DataError(f"{_espeak_paths()[0]}: eSpeak NG produced silence for "
                    f"{word!r} with voice {voice!r}")
  wave = wave[loud[0] * frame:(loud[-1] + 1) * frame]
  gcd = math.gcd(sample_rate, native_rate)
  up, down = sample_rate // gcd, native_rate // gcd
  wave = signal.resample_poly(wave, up, down, window=_lowpass(up, down))
  wave = (wave / np.abs(wave).max()).astype(np.float32)
  wave.setflags(write=False)
  return wave


def synthetic_speech(num_per_class: int, *, sample_rate: int = 8000,
                     seed: int = 0) -> SpeechSet:
  """Speaks "zero" .. "nine" and "oh" with eSpeak NG in varied voices.

  Each utterance gets a voice (English accent + male/female variant), a rate
  (130..220 words per minute), a pitch from the "lo" (30..50) or "hi"
  (50..70) bucket and a pitch range, all drawn from a seeded generator; the
  speaker id is "<voice>/<bucket>" (20 possible speakers). The waveform is
  trimmed of silence, resampled, scaled to a random peak, given short silent
  margins and a little white noise. An utterance's clean speech depends only
  on its word, voice, rate, pitch and range, so a longer set with the same
  seed starts with the same utterances.

  Args:
    num_per_class: utterances per class; 11 * num_per_class in all, labels
      cycling 0, 1, ..., 10 (10 = "oh").
    sample_rate: Hz of the returned waveforms.
    seed: the same seed gives byte-identical waveforms.

  Returns:
    A SpeechSet with num_classes 11 and subset "" everywhere.

  Raises:
    DataError: eSpeak NG cannot be loaded or fails.
    ConfigError: a non-positive num_per_class or sample_rate.
  """
  for name, value in (("num_per_class", num_per_class),
                      ("sample_rate", sample_rate)):
    if isinstance(value, bool) or not isinstance(
        value, (int, np.integer)) or value < 1:
      raise ConfigError(f"{name}: must be a positive integer, got {value!r}")
  sample_rate = int(sample_rate)
  num_classes = len(SPEECH_WORDS)
  labels = np.tile(np.arange(num_classes, dtype=np.int32), num_per_class)
  # One row of uniforms per utterance, so a longer set starts the same.
  draws = np.random.default_rng(seed).random((len(labels), 8))
  waveforms, speakers, ids = [], [], []
  for i, (label, u) in enumerate(zip(labels, draws, strict=True)):
    voice = _VOICES[int(u[0] * len(_VOICES))]
    bucket = int(u[1] * len(_PITCHES))
    pitch = round(_between(u[2], *_PITCHES[bucket]))
    rate = round(_between(u[3], *_RATES))
    pitch_range = round(_between(u[4], *_PITCH_RANGES))
    word = SPEECH_WORDS[label]
    clean = _utterance(word, voice, rate, pitch, pitch_range, sample_rate)
    margins = np.round(_between(u[6:8], *_MARGIN_S) * sample_rate)
    wave = np.pad(clean * _between(u[5], *_GAINS), margins.astype(int))
    noise = np.random.default_rng([seed, i]).normal(0.0, _NOISE, len(wave))
    wave += noise
    waveforms.append(np.clip(wave, -1.0, 1.0).astype(np.float32))
    speakers.append(f"{voice}/{('lo', 'hi')[bucket]}")
    ids.append(f"{i:05d}_{word}_{voice}_r{rate}_p{pitch}_g{pitch_range}")
  return SpeechSet(
      waveforms=waveforms, sample_rate=sample_rate, labels=labels,
      speakers=np.array(speakers), subset=np.full(len(labels), ""),
      utterance_ids=np.array(ids), num_classes=num_classes,
      source=f"synthetic-speech(espeak-ng;voices={','.join(_VOICES)};"
             f"seed={seed})")
