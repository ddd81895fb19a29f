"""Train/test splits as index arrays over an ImageSet or SpeechSet.

Every split returns `(train_idx, test_idx)`: sorted int64 index arrays,
disjoint, whose union is every example (except where a mode says otherwise),
and deterministic given `seed`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from avdigits.data.types import SPEECH_CLASS_NAMES, ImageSet, SpeechSet
from avdigits.errors import ConfigError, DataError

IMAGE_MODES = ("auto", "official", "stratified", "all")
SPEECH_MODES = ("upstream", "speakers", "loso", "fold", "stratified", "all")
SPEECH_SPEC_FORMS = ("upstream", "all", "stratified", "speakers:NAME[,NAME...]",
                     "loso:NAME", "fold:IofK")
# Run-level specs that expand into one split each, held out in turn.
IN_TURN_FORMS = ("loso", "folds:K")
_OFFICIAL = {"train", "test"}

Split = tuple[np.ndarray, np.ndarray]


def stratified_split(labels: np.ndarray, *, test_fraction: float = 0.2,
                     seed: int = 0) -> Split:
  """Seeded per-class split: round(test_fraction * n_c) test items per class."""
  if not 0.0 <= test_fraction <= 1.0:
    raise ConfigError(f"test_fraction={test_fraction!r}: must be in [0, 1]")
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  test = []
  for c in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == c))
    test.append(members[:int(np.floor(test_fraction * len(members) + 0.5))])
  return _complement(len(labels), np.concatenate(test, dtype=np.int64)
                     if test else np.zeros(0, np.int64))


def development_split(speech: SpeechSet, train: np.ndarray,
                      test: np.ndarray, *, fraction: float = 0.2,
                      seed: int = 0) -> Split:
  """A development part of a split's training utterances `train`, for
  choosing settings without its test part `test`.

  Like the split itself: when the test speakers are heard in training
  (upstream, stratified), a seeded round(fraction * n) of each class's
  utterances in `train`; when they are not (loso, folds, speakers), whole
  training speakers (every 1/fraction-th in sorted order, at least one).
  Returns (fit, dev) as indices into `speech`, both inside `train`.
  """
  train = np.asarray(train, np.int64)
  speakers = speech.speakers[train].astype(str)
  if set(speech.speakers[test].tolist()) <= set(speakers.tolist()):
    fit, dev = stratified_split(speech.labels[train], test_fraction=fraction,
                                seed=seed)
    return train[fit], train[dev]
  names = sorted(set(speakers.tolist()))
  if len(names) < 2:
    raise DataError(f"development split: {len(names)} training speaker(s) "
                    f"of {speech.source}; a speaker-independent dev part "
                    f"needs 2 or more")
  held = names[::max(int(round(1 / fraction)), 1)]
  is_dev = np.isin(speakers, held)
  return train[~is_dev], train[is_dev]


MNIST_TRAIN_SIZE = 60_000


def hold_out_validation(images: ImageSet, train_idx: np.ndarray,
                        size: int) -> np.ndarray:
  """TensorFlow's convolutional.py split: when `train_idx` is the full
  official MNIST training set (60,000 images in file order), its first
  `size` images are held out as validation and never trained on (55,000
  train for size 5,000); any other training set is returned unchanged."""
  official = np.flatnonzero(np.asarray(images.subset) == "train")
  if (size <= 0 or len(train_idx) != MNIST_TRAIN_SIZE
      or not np.array_equal(train_idx, official)):
    return train_idx
  return train_idx[size:]


def image_split(images: ImageSet, *, mode: str = "auto",
                test_fraction: float = 0.2, seed: int = 0) -> Split:
  """Splits images; see IMAGE_MODES.

  "auto" uses the source's own train/test subsets when every image has one
  and both occur, else "stratified"; "official" requires them; "all" makes
  every image test data.
  """
  if mode not in IMAGE_MODES:
    raise ConfigError(f"image split {mode!r}: choose one of "
                      f"{', '.join(IMAGE_MODES)}")
  if mode == "auto":
    mode = "official" if _has_official(images.subset) else "stratified"
  if mode == "official":
    return _by_subset(images.subset, images.source, "official")
  if mode == "stratified":
    return stratified_split(images.labels, test_fraction=test_fraction,
                            seed=seed)
  return _everything_test(len(images))


def speech_split(speech: SpeechSet, *, mode: str = "upstream",
                 held_out: Sequence[str] = (), test_fraction: float = 0.2,
                 seed: int = 0) -> Split:
  """Splits utterances; see SPEECH_MODES.

  "upstream" uses the corpus' own train/test subsets; "speakers" makes the
  `held_out` speakers test data; "loso" does the same for exactly one
  speaker; "fold" (`held_out` = ("IofK",)) makes fold I of K speaker folds
  test data (`speaker_fold`; the people of every corpus but the first, when
  there are several, so FSDD always trains); "stratified" is a seeded
  per-class split; "all" makes every utterance test data.
  """
  if mode not in SPEECH_MODES:
    raise ConfigError(f"speech split {mode!r}: choose one of "
                      f"{', '.join(SPEECH_MODES)}")
  held_out = tuple(held_out)
  if mode not in ("speakers", "loso", "fold") and held_out:
    raise ConfigError(f"speech split {mode!r} takes no speakers, got "
                      f"{','.join(held_out)}")
  if mode == "upstream":
    return _by_subset(speech.subset, speech.source, "upstream")
  if mode == "stratified":
    return stratified_split(speech.labels, test_fraction=test_fraction,
                            seed=seed)
  if mode == "all":
    return _everything_test(len(speech))
  if mode == "fold":
    return _fold(speech, *_fold_index(held_out[0] if held_out else ""))
  return _held_out_speakers(speech, mode, held_out)


def parse_speech_split(spec: str, *, flag: str = "--config.data.speech_split"
                       ) -> tuple[str, tuple[str, ...]]:
  """Parses "upstream", "all", "stratified", "speakers:a,b" or "loso:a".

  Returns:
    (mode, held-out speaker names).
  """
  mode, sep, rest = str(spec).strip().partition(":")
  names = tuple(n.strip() for n in rest.split(",")) if sep else ()
  valid = ((mode in ("upstream", "all", "stratified") and not sep)
           or (mode == "speakers" and names and all(names))
           or (mode == "loso" and len(names) == 1 and names[0])
           or (mode == "fold" and len(names) == 1
               and _fold_index(names[0], strict=False) is not None))
  if not valid:
    raise ConfigError(f"{flag}={spec!r}: not a speech split; valid forms: "
                      f"{', '.join(SPEECH_SPEC_FORMS)}")
  return mode, names


def fold_count(spec: str, *, flag: str = "--config.data.speech_split"
               ) -> int | None:
  """K of a run-level "folds:K" spec (K >= 2); None for any other spec."""
  mode, sep, rest = str(spec).strip().partition(":")
  if mode != "folds":
    return None
  if not (sep and rest.isdigit() and int(rest) >= 2):
    raise ConfigError(f"{flag}={spec!r}: 'folds:K' needs a whole number "
                      f"K >= 2 of speaker folds")
  return int(rest)


def check_run_split(spec: str, *, flag: str = "--config.data.speech_split"
                    ) -> None:
  """A config's speech split: one of SPEECH_SPEC_FORMS or IN_TURN_FORMS."""
  if spec != "loso" and fold_count(spec, flag=flag) is None:
    parse_speech_split(spec, flag=flag)


def in_turn_specs(speech_split: str, names: Sequence[str]) -> list[str]:
  """The split specs of a run that held out `names` in turn (the inverse of
  `held_out_in_turn`'s speaker names)."""
  mode = "fold" if fold_count(speech_split) is not None else "loso"
  return [f"{mode}:{name}" for name in names]


def speaker_fold(speaker: str, k: int) -> int:
  """The fold (0..k-1) of a speaker id: its SHA-1 modulo k, so a person's
  fold never depends on which other people a data directory holds."""
  return int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % k


def check_classes(labels: np.ndarray, split_name: str, num_classes: int,
                  what: str | Sequence[str] = "speech") -> None:
  """Raises DataError unless `labels` hold every class 0..num_classes-1.

  Args:
    labels: the split's labels.
    split_name: how the message names the split, e.g. "test split of FSDD".
    num_classes: the classes that must all occur.
    what: a word for the modality ("speech", "image"), with class names from
      SPEECH_CLASS_NAMES; or the class names themselves.
  """
  if isinstance(what, str):
    kind, names = f"{what} ", SPEECH_CLASS_NAMES
  else:
    kind, names = "", tuple(what)
  labels = np.asarray(labels)
  outside = np.unique(labels[(labels < 0) | (labels >= num_classes)])
  if outside.size:
    raise DataError(f"{split_name} has {kind}labels outside 0.."
                    f"{num_classes - 1}: {', '.join(map(str, outside))}")
  missing = np.setdiff1d(np.arange(num_classes), labels)
  if missing.size:
    listed = ", ".join(_class_name(int(c), names) for c in missing)
    plural = "es" if missing.size > 1 else ""
    raise DataError(f"{split_name} lacks {kind}class{plural} {listed}")


def _class_name(c: int, names: Sequence[str]) -> str:
  name = names[c] if c < len(names) else ""
  return f"{c} ({name})" if name and name != str(c) else str(c)


def _has_official(subset: np.ndarray) -> bool:
  return set(np.unique(subset).tolist()) == _OFFICIAL


def _by_subset(subset: np.ndarray, source: str, mode: str) -> Split:
  """The source's own "train"/"test" subsets, which must cover everything."""
  if not _has_official(subset):
    found = sorted(set(np.unique(subset).tolist()))
    shown = ", ".join(repr(s) for s in found) or "none"
    raise DataError(f"{source}: split {mode!r} needs the source's own train "
                    f"and test subsets on every example; its subsets are "
                    f"{shown} (use a stratified or speaker split instead)")
  return (np.flatnonzero(subset == "train").astype(np.int64),
          np.flatnonzero(subset == "test").astype(np.int64))


def _held_out_speakers(speech: SpeechSet, mode: str,
                       held_out: tuple[str, ...]) -> Split:
  available = sorted(set(speech.speakers.tolist()))
  if mode == "loso" and len(held_out) != 1:
    raise ConfigError(f"speech split 'loso' holds out exactly one speaker, "
                      f"got {len(held_out)}: {','.join(held_out)}")
  if not held_out:
    raise ConfigError("speech split 'speakers' needs speaker names "
                      f"(speakers:NAME[,NAME...]); available: "
                      f"{', '.join(available)}")
  unknown = [s for s in held_out if s not in available]
  if unknown:
    raise ConfigError(f"speech split {mode}:{','.join(held_out)}: unknown "
                      f"speaker(s) {', '.join(unknown)} in {speech.source}; "
                      f"available: {', '.join(available)}")
  if set(held_out) == set(available):
    raise ConfigError(f"speech split {mode}:{','.join(held_out)} holds out "
                      f"every speaker of {speech.source}; none left to train")
  test = np.flatnonzero(np.isin(speech.speakers, held_out)).astype(np.int64)
  return _complement(len(speech), test)


def _fold_index(name: str, *, strict: bool = True
                ) -> tuple[int, int] | None:
  """"IofK" -> (I, K) with 0 <= I < K, K >= 2."""
  match = re.fullmatch(r"(\d+)of(\d+)", name)
  if match and int(match[2]) >= 2 and int(match[1]) < int(match[2]):
    return int(match[1]), int(match[2])
  if strict:
    raise ConfigError(f"speech split fold:{name}: expected fold:IofK with "
                      f"0 <= I < K and K >= 2")
  return None


def first_corpus(speech: SpeechSet) -> np.ndarray:
  """True for the utterances of the first corpus (every one, for a set of
  one corpus): the corpus whose speakers "loso" holds out in turn and
  which "fold" splits always train on."""
  if speech.corpus is None or len(set(speech.corpus.tolist())) < 2:
    return np.ones(len(speech), bool)
  return speech.corpus == speech.corpus[0]


def fold_pool(speech: SpeechSet) -> np.ndarray:
  """True for the utterances whose speakers "fold" splits hold out: every
  corpus but the first when there are several, else every one."""
  first = first_corpus(speech)
  return first if first.all() else ~first


def _fold(speech: SpeechSet, index: int, k: int) -> Split:
  """Fold `index` of `k` speaker folds (`fold_pool`'s people) as test
  data."""
  pool = fold_pool(speech)
  folds = np.array([speaker_fold(s, k) for s in speech.speakers.tolist()])
  test = np.flatnonzero(pool & (folds == index)).astype(np.int64)
  if not len(test):
    raise DataError(f"speech split fold:{index}of{k}: no speaker of "
                    f"{speech.source} falls in this fold")
  return _complement(len(speech), test)


def _everything_test(n: int) -> Split:
  return np.zeros(0, np.int64), np.arange(n, dtype=np.int64)


def _complement(n: int, test: np.ndarray) -> Split:
  is_test = np.zeros(n, bool)
  is_test[test] = True
  return (np.flatnonzero(~is_test).astype(np.int64),
          np.flatnonzero(is_test).astype(np.int64))


def held_out_in_turn(speech_split: str, specs: list[str]) -> dict[str, Any]:
  """A data summary's split entries when each speaker of `specs`
  ("loso:<speaker>", ...) is held out in turn."""
  return {"speech_split": speech_split,
          "speakers": {"held_out_in_turn": [spec.partition(":")[2]
                                            for spec in specs]}}
