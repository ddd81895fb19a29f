"""The synthetic voice bank and its on-disk cache."""

import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest

from avdigits.data import voices
from avdigits.errors import ConfigError
from avdigits.inputs import speech_data

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_bank_is_deterministic_and_cached(tmp_path, monkeypatch):
  bank = voices.voice_bank(2, 10, sample_rate=8000, seed=3,
                           cache_dir=tmp_path)
  assert len(bank.waveforms) == 20 and bank.num_classes == 10
  np.testing.assert_array_equal(bank.labels, np.tile(np.arange(10), 2))
  assert all(w.dtype == np.float32 and w.ndim == 1 for w in bank.waveforms)
  assert len(set(bank.speakers.tolist())) > 5          # many voices
  entries = list(tmp_path.glob("voices-*.npz"))
  assert len(entries) == 1

  def fail(_settings):
    raise AssertionError("synthesised again instead of reading the cache")

  monkeypatch.setattr(voices, "_synthesise", fail)
  again = voices.voice_bank(2, 10, sample_rate=8000, seed=3,
                            cache_dir=tmp_path)
  for a, b in zip(bank.waveforms, again.waveforms, strict=True):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(bank.speakers, again.speakers)


def test_settings_key_the_entry(tmp_path):
  voices.voice_bank(1, 10, sample_rate=8000, seed=0, cache_dir=tmp_path)
  voices.voice_bank(1, 10, sample_rate=8000, seed=1, cache_dir=tmp_path)
  voices.voice_bank(1, 10, sample_rate=16000, seed=0, cache_dir=tmp_path)
  assert len(list(tmp_path.glob("voices-*.npz"))) == 3


def test_corrupt_entry_is_rebuilt(tmp_path, monkeypatch):
  first = voices.voice_bank(1, 10, sample_rate=8000, cache_dir=tmp_path)
  [entry] = tmp_path.glob("voices-*.npz")
  entry.write_bytes(entry.read_bytes()[:100])
  warned = []
  monkeypatch.setattr(voices.logging, "warning",
                      lambda fmt, *args: warned.append(fmt % args))
  again = voices.voice_bank(1, 10, sample_rate=8000, cache_dir=tmp_path)
  assert len(warned) == 1 and warned[0].startswith(
      f"voice cache {entry} is damaged (")
  np.testing.assert_array_equal(np.concatenate(first.waveforms),
                                np.concatenate(again.waveforms))


@pytest.mark.parametrize("kwargs,match", [
    ({"num_per_class": 0, "num_classes": 10}, "num_per_class"),
    ({"num_per_class": 1, "num_classes": 12}, "at most 11"),
])
def test_bad_settings(tmp_path, kwargs, match):
  with pytest.raises(ConfigError, match=match):
    voices.voice_bank(**kwargs, sample_rate=8000, cache_dir=tmp_path)


_SLOW_WRITER = """
import sys, time, numpy as np
from avdigits.data import voices
real = np.savez
def slow(f, **arrays):
  f.write(b"PK partial")
  f.flush()
  print("writing", flush=True)
  time.sleep(60)
  real(f, **arrays)
np.savez = slow
voices.voice_bank(1, 10, sample_rate=8000, cache_dir=sys.argv[1])
"""


def test_sigkill_mid_write_leaves_no_entry(tmp_path):
  proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(tmp_path)],
                          cwd=REPO, stdout=subprocess.PIPE, text=True,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
  try:
    assert proc.stdout.readline().strip() == "writing"
    assert list(tmp_path.glob(".voices-*.tmp"))     # the write is under way
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
  finally:
    proc.kill()
  assert not list(tmp_path.glob("voices-*.npz"))
  # The next call synthesises again (the partial file is not an entry) and
  # gets what a cache that never saw the kill gets.
  bank = voices.voice_bank(1, 10, sample_rate=8000, cache_dir=tmp_path)
  clean = voices.voice_bank(1, 10, sample_rate=8000,
                            cache_dir=tmp_path / "clean")
  assert len(bank.waveforms) == 10
  for got, expected in zip(bank.waveforms, clean.waveforms, strict=True):
    np.testing.assert_array_equal(got, expected)
  np.testing.assert_array_equal(bank.labels, clean.labels)
  assert len(list(tmp_path.glob("voices-*.npz"))) == 1


def test_expand_adds_copies_and_voices(tmp_path):
  rng = np.random.default_rng(0)
  waves = [rng.normal(0, 0.1, 3000).astype(np.float32) for _ in range(4)]
  labels = np.array([0, 1, 2, 3])
  speakers = np.array(["a", "a", "b", "b"])
  calls = []

  def feats(ws, warp=1.0):
    calls.append(warp)
    return np.stack([np.full((5, 2), len(w) * warp, np.float32)
                     for w in ws])

  expansion = speech_data.Expansion(speed_factors=(0.9, 1.1),
                                    vtlp_factors=(1.1,), channel_copies=1,
                                    synthetic_voices=1,
                                    cache_dir=str(tmp_path))
  x, y, who = speech_data.expand(expansion, waves, labels, speakers,
                                 sample_rate=8000, num_classes=10,
                                 features=feats, seed=0)
  assert x.shape == (4 * 5 + 10, 5, 2) and len(y) == len(who) == 30
  np.testing.assert_array_equal(y[:20], np.tile(labels, 5))
  np.testing.assert_array_equal(y[20:], np.arange(10))
  assert calls == [1.0, 1.0, 1.0, 1.1, 1.0, 1.0]
  assert x[4, 0, 0] == pytest.approx(3000 / 0.9, abs=1)   # speed 0.9: longer
  assert who[4] == "a/speed0.9" and who[-1].startswith("espeak/")
  x2, _, _ = speech_data.expand(expansion, waves, labels, speakers,
                                sample_rate=8000, num_classes=10,
                                features=feats, seed=0)
  np.testing.assert_array_equal(x, x2)
  only = speech_data.Expansion(synthetic_voices=1, synthetic_only=True,
                               cache_dir=str(tmp_path))
  x3, y3, _ = speech_data.expand(only, waves, labels, speakers,
                                 sample_rate=8000, num_classes=10,
                                 features=feats, seed=0)
  assert len(x3) == 10
  np.testing.assert_array_equal(y3, np.arange(10))


@pytest.mark.parametrize("kwargs,match", [
    ({"speed_factors": (0.1,)}, "speed_factors"),
    ({"channel_copies": -1}, "channel_copies"),
    ({"synthetic_only": True}, "synthetic_voices > 0"),
])
def test_expansion_validation(kwargs, match):
  with pytest.raises(ConfigError, match=match):
    speech_data.Expansion(**kwargs).validate()


def test_balancing_repeats_equalise_the_corpora_evenly():
  corpora = np.array(["big"] * 10 + ["small"] * 3 + ["mid"] * 6)
  repeats = speech_data.balancing_repeats(corpora, seed=0)
  everything = np.concatenate([corpora, corpora[repeats]])
  _, counts = np.unique(everything, return_counts=True)
  assert counts.tolist() == [10, 10, 10]
  # Each small-corpus utterance repeats 2 or 3 times (7 repeats of 3).
  small = np.bincount(repeats[corpora[repeats] == "small"], minlength=19)
  assert sorted(small[10:13].tolist()) == [2, 2, 3]
  np.testing.assert_array_equal(
      repeats, speech_data.balancing_repeats(corpora, seed=0))
  assert not np.array_equal(
      repeats, speech_data.balancing_repeats(corpora, seed=1))


def test_expand_balances_corpora_with_repeats_of_the_real_features():
  waves = [np.full(100 + i, 0.1, np.float32) for i in range(5)]
  labels = np.arange(5)
  speakers = np.array(["a", "a", "a", "b", "c"])
  corpora = np.array(["fsdd"] * 3 + ["sc"] * 2)

  def feats(ws, warp=1.0):
    return np.stack([np.full((4, 2), len(w), np.float32) for w in ws])

  balanced = speech_data.Expansion(balance_corpora=True)
  x, y, who = speech_data.expand(balanced, waves, labels, speakers,
                                 sample_rate=8000, num_classes=10,
                                 features=feats, seed=0, corpora=corpora)
  assert len(x) == 6 and y[5] in (3, 4) and who[5] == f"{'bc'[y[5] - 3]}/repeat"
  np.testing.assert_array_equal(x[5], x[y[5]])          # the same features
  one_corpus, _, _ = speech_data.expand(balanced, waves, labels, speakers,
                                        sample_rate=8000, num_classes=10,
                                        features=feats, seed=0)
  np.testing.assert_array_equal(one_corpus, x[:5])    # nothing to balance
  with pytest.raises(ConfigError, match="balance_corpora"):
    speech_data.expand(balanced, waves, labels, speakers, sample_rate=8000,
                       num_classes=10, features=feats, seed=0,
                       corpora=corpora[:4])
  with pytest.raises(ConfigError, match="balance_corpora"):
    speech_data.Expansion(balance_corpora=True, synthetic_voices=1,
                          synthetic_only=True).validate()
