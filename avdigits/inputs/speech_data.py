"""The speech training set for speaker independence: real utterances plus
perturbed copies and synthetic voices, featurised.

Settings come from a config's `speech` section (see
experiments/configs/paper.py): `speed_factors` (one speed-perturbed copy of
every training utterance per factor), `vtlp_factors` (one copy per factor
with the mel filterbank warped), `channel_copies` (copies through random
microphones and rooms, `perturb.channel`), `synthetic_voices` (eSpeak NG
utterances per class, `data.voices`), `synthetic_only` (train on the
synthetic voices alone) and `balance_corpora` (with several corpora, each
smaller corpus's real utterances repeated until it has as many as the
largest, so batches draw every corpus equally often; on-device
augmentation makes the repeats differ). Every copy is a deterministic
function of the utterance, the factor and `seed`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from avdigits import features as features_lib
from avdigits.data import voices
from avdigits.data.types import SpeechSet
from avdigits.errors import ConfigError
from avdigits.inputs import perturb


@dataclasses.dataclass(frozen=True)
class Expansion:
  """What the speech training set adds to (or replaces) the real one."""
  speed_factors: tuple[float, ...] = ()
  vtlp_factors: tuple[float, ...] = ()
  channel_copies: int = 0
  synthetic_voices: int = 0
  synthetic_only: bool = False
  balance_corpora: bool = False
  cache_dir: str = ""

  @classmethod
  def from_config(cls, speech, cache_dir: str = "") -> Expansion:
    """Reads the keys above from a config section (absent ones: none)."""
    get = lambda name, default: speech.get(name, default)
    return cls(
        speed_factors=tuple(float(f) for f in get("speed_factors", ())),
        vtlp_factors=tuple(float(f) for f in get("vtlp_factors", ())),
        channel_copies=int(get("channel_copies", 0)),
        synthetic_voices=int(get("synthetic_voices", 0)),
        synthetic_only=bool(get("synthetic_only", False)),
        balance_corpora=bool(get("balance_corpora", False)),
        cache_dir=cache_dir)

  def validate(self, flag: str = "speech") -> None:
    for name in ("speed_factors", "vtlp_factors"):
      for factor in getattr(self, name):
        if not 0.5 <= factor <= 2.0:
          raise ConfigError(f"--config.{flag}.{name}: factor {factor} must "
                            f"be in [0.5, 2]")
    for name in ("channel_copies", "synthetic_voices"):
      if getattr(self, name) < 0:
        raise ConfigError(f"--config.{flag}.{name} must be >= 0, got "
                          f"{getattr(self, name)}")
    if self.synthetic_only and not self.synthetic_voices:
      raise ConfigError(f"--config.{flag}.synthetic_only needs "
                        f"--config.{flag}.synthetic_voices > 0")
    if self.synthetic_only and self.balance_corpora:
      raise ConfigError(f"--config.{flag}.balance_corpora balances real "
                        f"corpora: not with --config.{flag}.synthetic_only")

  def key(self) -> dict:
    """What identifies the expanded set (for stage keys)."""
    out = dataclasses.asdict(self)
    out.pop("cache_dir")
    return out

  @property
  def empty(self) -> bool:
    """True when nothing is added to the real training utterances."""
    return self.key() == Expansion().key()


FeatureFn = Callable[..., np.ndarray]  # (waveforms, warp=1.0) -> features


def balancing_repeats(corpora: np.ndarray, seed: int) -> np.ndarray:
  """Indices into `corpora` to append so that every corpus has as many
  utterances as the largest: each smaller corpus's utterances in a seeded
  order, cycled (so they repeat as evenly as the count allows)."""
  corpora = np.asarray(corpora).astype(str)
  names, counts = np.unique(corpora, return_counts=True)
  out = []
  for name, count in zip(names.tolist(), counts.tolist(), strict=True):
    own = np.flatnonzero(corpora == name)
    order = np.random.default_rng([seed, 11, count]).permutation(own)
    out.append(np.resize(order, counts.max() - count))
  return np.concatenate(out).astype(np.int64)


def expand(expansion: Expansion, waveforms: Sequence[np.ndarray],
           labels: np.ndarray, speakers: np.ndarray, *, sample_rate: int,
           num_classes: int, features: FeatureFn, seed: int,
           corpora: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Features, labels and speakers of the training utterances and their
  additions.

  Args:
    expansion: what to add.
    waveforms, labels, speakers: the real training utterances.
    sample_rate: Hz of the waveforms.
    num_classes: speech classes of the task (synthetic voices speak these).
    features: waveforms (and warp=) -> float32 [N, frames, bins].
    seed: copies and synthetic voices are deterministic given it.
    corpora: the corpus of each real utterance (for `balance_corpora`;
      None: one corpus).

  Returns:
    (features [M, frames, bins], labels [M], speakers [M]): the real set
    first (unless synthetic_only), then the copies in the order speed, VTLP,
    channel (speaker "<speaker>/<copy>"), then the balancing repeats of the
    real utterances (speaker "<speaker>/repeat"), then the synthetic voices
    (speaker "espeak/<voice>").
  """
  expansion.validate()
  labels, speakers = np.asarray(labels), np.asarray(speakers).astype(str)
  parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

  def add(feats: np.ndarray, copy: str | None) -> None:
    who = speakers if copy is None else np.char.add(speakers, "/" + copy)
    parts.append((feats, labels, who))

  if not expansion.synthetic_only:
    real = features(waveforms)
    add(real, None)
    for factor in expansion.speed_factors:
      add(features([perturb.speed(w, factor) for w in waveforms]),
          f"speed{factor}")
    for factor in expansion.vtlp_factors:
      add(features(waveforms, warp=factor), f"vtlp{factor}")
    for copy in range(expansion.channel_copies):
      rng = np.random.default_rng([seed, 7, copy])
      add(features([perturb.channel(w, sample_rate, rng)
                    for w in waveforms]), f"channel{copy}")
    if expansion.balance_corpora and corpora is not None:
      # (Without corpora the utterances are one corpus: nothing to add.)
      if len(corpora) != len(labels):
        raise ConfigError(f"--config.speech.balance_corpora: {len(corpora)} "
                          f"corpus names for {len(labels)} utterances")
      repeats = balancing_repeats(corpora, seed)
      parts.append((real[repeats], labels[repeats],
                    np.char.add(speakers[repeats], "/repeat")))
  if expansion.synthetic_voices:
    bank = voices.voice_bank(expansion.synthetic_voices, num_classes,
                             sample_rate=sample_rate, seed=seed,
                             cache_dir=expansion.cache_dir or None)
    parts.append((features(bank.waveforms), bank.labels, bank.speakers))
  return (np.concatenate([p[0] for p in parts]),
          np.concatenate([p[1] for p in parts]).astype(np.int32),
          np.concatenate([p[2] for p in parts]))


def log_mel(feature_cfg, waveforms: Sequence[np.ndarray], sample_rate: int,
            warp: float = 1.0) -> np.ndarray:
  """`features.log_mel` with a config's `features` section."""
  f = feature_cfg
  return features_lib.log_mel(
      waveforms, sample_rate, backend=f.get("backend", "jax"),
      num_bins=f.num_bins, num_frames=f.num_frames, cmn=f.cmn,
      cvn=f.get("cvn", False), warp=warp)


def trim(feature_cfg, speech: SpeechSet) -> SpeechSet:
  """`speech` with every utterance's silence cut when `features.trim`."""
  if not feature_cfg.get("trim", False):
    return speech
  return dataclasses.replace(speech, waveforms=[
      perturb.trim_silence(w, speech.sample_rate) for w in speech.waveforms])


def training_set(cfg, speech: SpeechSet, indices: np.ndarray, *, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Features and labels of the training utterances `indices` of `speech`,
  expanded as `cfg.speech` asks and, with `features.speaker_norm`,
  normalised per speaker (each copy counting as its own speaker)."""
  feats, labels, speakers = expand(
      Expansion.from_config(cfg.speech, cfg.data.get("cache_dir", "")),
      [speech.waveforms[i] for i in indices], speech.labels[indices],
      speech.speakers[indices], sample_rate=speech.sample_rate,
      num_classes=speech.num_classes, seed=seed,
      corpora=None if speech.corpus is None else speech.corpus[indices],
      features=lambda waves, warp=1.0: log_mel(cfg.features, waves,
                                               speech.sample_rate, warp))
  if cfg.features.get("speaker_norm", False):
    feats = features_lib.speaker_normalise(feats, speakers)
  return feats, labels
