"""The faithful paper config: Gaussian and mirrored aligner starts, the
dead level and cost units, TensorFlow's MNIST schedule, the speech pool
readings, and TIDIGITS at 20 kHz end to end."""

import collections
import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from avdigits.data import sources
from avdigits.data.synthetic import synthetic_speech
from avdigits.digits import draws, report, two_stage, validation
from avdigits.errors import ConfigError, DataError
from avdigits.inputs import prepare
from avdigits.models import convnets, nets
from avdigits.training import align
from avdigits.training.classifier import ClassifierSchedule, dense_mask
from avdigits.training.optim import epoch_staircase, make_optimizer
from experiments.configs import default, paper
from tests.test_audio import riff_bytes


def _acts(seed=0, images=40, utterances=33, classes=11):
  rng = np.random.default_rng(seed)
  return (np.abs(rng.normal(size=(images, 512))).astype(np.float32),
          np.arange(images) % 10,
          np.abs(rng.normal(size=(utterances, 64))).astype(np.float32),
          np.arange(utterances) % classes)


def _schedule(init):
  return align.AlignSchedule(steps=32, steps_per_chunk=16, embed_dim=8,
                             init_std=0.1, init=init)


def test_gaussian_start_draws_the_biases_too():
  w, digits, v, labels = _acts()
  params, _ = align.initial_params(_schedule("gaussian"), w, digits, v,
                                   labels, seed=0)
  zero, _ = align.initial_params(_schedule("zero_bias"), w, digits, v,
                                 labels, seed=0)
  for part in ("image_map", "speech_map"):
    bias = np.asarray(params[part]["bias"])
    assert 0.05 < bias.std() < 0.2 and not np.any(zero[part]["bias"])
    np.testing.assert_array_equal(params[part]["kernel"],
                                  zero[part]["kernel"])


def test_mirrored_start_is_the_exact_negation_of_a_negative_draw():
  w, digits, v, labels = _acts()
  signs = {}
  for seed in range(12):
    plain, info = align.initial_params(_schedule("gaussian"), w, digits, v,
                                       labels, seed=seed)
    mirrored, minfo = align.initial_params(_schedule("gaussian_mirrored"), w,
                                           digits, v, labels, seed=seed)
    negative = info["mean_positive_score"] < 0
    signs[negative] = True
    assert minfo["mirrored"] is negative
    # The plain start is the draw as it came, a negative one included: its
    # score, by hand from the returned parameters, is the draw's.
    assert positive_score_by_hand(plain, w, digits, v, labels) == (
        pytest.approx(info["mean_positive_score"], rel=1e-4))
    assert minfo["mean_positive_score"] == pytest.approx(
        abs(info["mean_positive_score"]), rel=1e-5)
    np.testing.assert_array_equal(mirrored["image_map"]["kernel"],
                                  plain["image_map"]["kernel"])
    np.testing.assert_array_equal(mirrored["image_map"]["bias"],
                                  plain["image_map"]["bias"])
    for name in ("kernel", "bias"):
      expected = plain["speech_map"][name]
      np.testing.assert_array_equal(mirrored["speech_map"][name],
                                    -expected if negative else expected)
  assert signs == {True: True, False: True}  # both cases were reached


def positive_score_by_hand(params, w, digits, v, labels) -> float:
  """Mean y . x over (image, utterance) pairs of the same digit, by loops;
  speech class 10 ("oh") is the digit 0."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  x = np.maximum(w @ p["image_map"]["kernel"] + p["image_map"]["bias"], 0)
  y = v @ p["speech_map"]["kernel"] + p["speech_map"]["bias"]
  said = [0 if c == 10 else c for c in labels]
  return float(np.mean([x[i] @ y[j] for i in range(len(w))
                        for j in range(len(v)) if digits[i] == said[j]]))


def test_mean_positive_score_by_hand():
  w, digits, v, labels = _acts(images=6, utterances=4, classes=4)
  params, _ = align.initial_params(_schedule("gaussian"), w, digits, v,
                                   labels, seed=3)
  expected = positive_score_by_hand(params, w, digits, v, labels)
  got = align.mean_positive_score(params, w, digits, v, labels)
  assert got == pytest.approx(expected, rel=1e-4)


def test_dead_level_counts_the_negatives():
  digits = np.arange(100) % 10
  assert align.dead_level(digits, 10) == 9.0
  # TIDIGITS: "oh" (class 10) and "zero" both name digit 0.
  assert align.dead_level(digits, 11) == pytest.approx(9.9)
  assert align.dead_level(np.zeros(5, int), 11, margin=2.0) == 18.0


def test_cost_per_iteration_and_per_block_agree(tmp_path):
  from avdigits.training.workdir import Stage
  w, digits, v, labels = _acts(classes=10)
  schedule = dataclasses.replace(_schedule("gaussian_mirrored"),
                                 learning_rate=1e-2)
  out = align.train_alignment(w, digits, v, labels, 10, schedule, seed=0,
                              stage=Stage(tmp_path, "align", {}),
                              show_progress=False)
  # The start: seed 0's Gaussian draw, mirrored iff its mean matching-pair
  # score (by hand) is negative; the score reported after mirroring.
  plain, _ = align.initial_params(_schedule("gaussian"), w, digits, v,
                                  labels, seed=0)
  score = positive_score_by_hand(plain, w, digits, v, labels)
  assert out["start"]["mirrored"] == (score < 0)
  assert out["start"]["mean_positive_score"] == pytest.approx(abs(score),
                                                              rel=1e-4)
  assert out["dead_level"] == 9.0
  for row in out["history"]:
    assert row["cost_sum"] == pytest.approx(row["cost_mean"] * 16, rel=1e-5)
  cost = report.align_cost(out)["cost"]
  assert cost["step"] == [16, 32]
  np.testing.assert_allclose(cost["sum_per_50000"],
                             np.array(cost["mean_per_iteration"]) * 50_000)


def test_clamped_dead_start_stays_at_the_dead_level(tmp_path):
  """A start with every score <= 0 gets no gradient under the clamp."""
  from avdigits.training.workdir import Stage
  w, digits, v, labels = _acts(classes=10)
  schedule = dataclasses.replace(_schedule("zero_bias"), learning_rate=1e-2)
  _, info = align.initial_params(schedule, w, digits, v, labels, seed=0)
  assert np.isfinite(info["mean_positive_score"])
  # Silent utterances (v = 0) with zero b_m: every score is exactly 0.
  out = align.train_alignment(w, digits, np.zeros_like(v), labels, 10,
                              schedule, seed=0,
                              stage=Stage(tmp_path, "align", {}),
                              show_progress=False)
  assert [r["cost_mean"] for r in out["history"]] == [9.0, 9.0]


def test_epoch_staircase_is_tensorflows_exponential_decay():
  # convolutional.py: exponential_decay(0.01, batch * 64, 55000, 0.95,
  # staircase=True), i.e. 0.01 * 0.95 ** floor(step * 64 / 55000).
  schedule = epoch_staircase(0.01, 55000 / 64, 0.95)
  for step in (0, 858, 859, 860, 1718, 1719, 8592):
    expected = 0.01 * 0.95 ** (step * 64 // 55000)
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-6), step
  assert float(schedule(859)) == pytest.approx(0.01)  # 859*64 < 55000
  assert float(schedule(860)) == pytest.approx(0.0095)


def test_momentum_with_l2_on_dense_layers_matches_tensorflow():
  """Two steps of MomentumOptimizer(lr, 0.9) on loss + 5e-4 * sum of
  l2_loss over the dense layers' weights and biases, by hand."""
  net = convnets.ImageNet(widths=(2, 4), hidden=8)
  params = net.init(jax.random.key(0), jnp.zeros((1, 28, 28)))["params"]
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
  tx = make_optimizer("momentum", 0.01, 10, schedule="epoch_staircase",
                      steps_per_epoch=1.0, decay_rate=0.95, l2=5e-4,
                      l2_mask=dense_mask)
  state = tx.init(params)

  @jax.jit  # one compiled step, not every optax op compiled on its own
  def step(p, state):
    updates, state = tx.update(grads, state, p)
    return optax.apply_updates(p, updates), state

  p = params
  for _ in range(2):
    p, state = step(p, state)
  for layer in params:
    decay = 5e-4 if layer.startswith(("dense", "logits")) else 0.0
    for name in params[layer]:
      p0 = np.asarray(params[layer][name], np.float64)
      acc = 0.5 + decay * p0                       # step 0, lr 0.01
      p1 = p0 - 0.01 * acc
      acc = 0.9 * acc + 0.5 + decay * p1           # step 1, lr 0.0095
      p2 = p1 - 0.0095 * acc
      np.testing.assert_allclose(p[layer][name], p2, rtol=1e-5, atol=1e-8)


def test_image_steps_are_epochs_times_examples_over_batch():
  cfg = paper.get_config()
  s = ClassifierSchedule.from_config(cfg.image, 55_000)
  assert s.steps == 8593 and s.steps_per_epoch == pytest.approx(55000 / 64)
  assert (s.optimizer, s.learning_rate, s.l2_dense) == ("momentum", 0.01,
                                                         5e-4)
  assert ClassifierSchedule.from_config(default.get_config().image,
                                       6400).steps == 1000


@pytest.mark.parametrize("pool,flat,total", [("time_channel", 96 * 31,
                                              4_116_747),
                                             ("time", 96 * 64, 7_360_779)])
def test_speech_pool_readings(pool, flat, total):
  net = convnets.SpeechNet(hidden=1024, num_classes=11, pool=pool)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 100, 23)),
                  jnp.float32)
  params = net.init(jax.random.key(0), x)["params"]
  assert params["dense1"]["kernel"].shape == (flat, 1024)
  assert sum(a.size for a in jax.tree.leaves(params)) == total
  # By loops: "time", the max over 3 frames of each map; "time_channel",
  # over 3 frames x 4 maps, windows starting at every second map; then ReLU.
  conv = np.asarray(net.apply({"params": params}, x,
                              method=lambda m, x: m.conv(x)))
  frames, maps = conv.shape[1] - 2, conv.shape[2]
  windows = ([(c, c + 1) for c in range(maps)] if pool == "time"
             else [(c, c + 4) for c in range(0, maps - 3, 2)])
  pooled = np.zeros((2, frames, len(windows)), np.float32)
  for b in range(2):
    for t in range(frames):
      for k, (lo, hi) in enumerate(windows):
        pooled[b, t, k] = max(conv[b, t:t + 3, lo:hi].max(), 0.0)
  assert pooled.shape[1] * pooled.shape[2] == flat
  dense = np.maximum(pooled.reshape(2, -1) @ params["dense1"]["kernel"]
                     + params["dense1"]["bias"], 0)
  dense = np.maximum(dense @ params["dense2"]["kernel"]
                     + params["dense2"]["bias"], 0)
  np.testing.assert_allclose(net.apply({"params": params}, x,
                                       method="embed"), dense, rtol=1e-4,
                             atol=1e-4)


def test_bad_pool_and_init_are_config_errors():
  cfg = paper.get_config()
  cfg.speech.pool = "channel"
  with pytest.raises(ConfigError, match="speech.pool"):
    validation.validate_reproduce(cfg)
  with pytest.raises(ConfigError, match="align.init"):
    dataclasses.replace(align.AlignSchedule(), init="uniform").validate()


def test_paper_config_asks_for_tidigits_and_names_the_fallback(tmp_path):
  (tmp_path / "fsdd").mkdir()
  cfg = paper.get_config()
  assert (cfg.data.speech, cfg.data.sample_rate) == ("tidigits", 20000)
  cfg.data.images = "synthetic"
  cfg.data.synthetic_images_per_class = 2
  with pytest.raises(DataError, match=r"--config.data.speech=fsdd "
                     r"--config.data.sample_rate=8000"):
    prepare.load_corpora(cfg, tmp_path)
  assert sources.NATIVE_RATES["tidigits"] == 20000


def _tidigits_at_20khz(root: pathlib.Path) -> None:
  """Synthetic spoken digits at 20 kHz in TIDIGITS' layout: two adult
  training speakers and one test speaker, "z", "o", "1".."9"."""
  speech = synthetic_speech(6, sample_rate=20000, seed=0)
  names = {0: "z", 10: "o"}
  seen = collections.Counter()
  for wave, label in zip(speech.waveforms, speech.labels, strict=True):
    k = seen[int(label)]
    seen[int(label)] += 1
    subset, speaker = [("train", "man/aa"), ("train", "woman/bb"),
                       ("test", "man/cc")][k % 3]
    folder = root / "tidigits" / subset / speaker
    folder.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()
    name = f"{names.get(int(label), int(label))}{'ab'[k // 3]}.wav"
    (folder / name).write_bytes(riff_bytes(pcm, rate=20000))


def test_paper_config_runs_on_tidigits_at_20khz(tmp_path):
  _tidigits_at_20khz(tmp_path)
  cfg = paper.get_config()
  cfg.data.images = "synthetic"
  cfg.data.synthetic_images_per_class = 12
  cfg.image.epochs = 1
  cfg.speech.hidden_sizes = (64,)
  cfg.speech.steps = 4
  cfg.speech.steps_per_chunk = 2
  cfg.speech.batch_size = 8
  cfg.align.speech_hidden = 64
  cfg.align.embed_dim = 16
  cfg.align.steps = 64
  cfg.align.steps_per_chunk = 32
  cfg.eval.trials = 5
  by_split, summary = two_stage.run_all(cfg, tmp_path, tmp_path / "w", [0],
                                       show_progress=False)
  assert summary["sample_rate"] == 20000
  assert summary["speech_source"].startswith("tidigits")
  assert summary["num_speech_classes"] == 11
  assert summary["speakers"]["test"] == ["man/cc"]
  (run,) = by_split["upstream"]
  assert run["align"]["dead_level"] == pytest.approx(9.9)
  assert len(run["align"]["history"]) == 2
  data = prepare.prepare_data(cfg, tmp_path)
  image_params, speech_params, _ = two_stage.load_trained(
      cfg, tmp_path / "w", 0, 11)
  # The start it reports: the paper's Gaussian draw of seed 0 (never
  # mirrored), its mean matching-pair score by hand on the training
  # activations of the trained convnets.
  w = np.asarray(nets.image_net(cfg.image).apply(
      {"params": image_params}, data.train_images, method="embed"))
  v = np.asarray(nets.speech_net(cfg.speech, 11, 64).apply(
      {"params": speech_params}, data.train_speech, method="embed"))
  start, _ = align.initial_params(align.AlignSchedule.from_config(cfg.align), w,
                                  data.train_image_labels, v,
                                  data.train_speech_labels, seed=0)
  assert run["align"]["start"]["mirrored"] is False
  assert run["align"]["start"]["mean_positive_score"] == pytest.approx(
      positive_score_by_hand(start, w, data.train_image_labels, v,
                             data.train_speech_labels), rel=1e-3, abs=1e-6)
  # The draws: every (start, draw) trained, resumed on a second call.
  kwargs = dict(inits=["gaussian", "gaussian_mirrored"], draws=2)
  rows = draws.run_draws(cfg, data, tmp_path / "w", image_params,
                         speech_params, **kwargs)
  assert [(r["init"], r["draw"]) for r in rows] == [
      ("gaussian", 0), ("gaussian", 1), ("gaussian_mirrored", 0),
      ("gaussian_mirrored", 1)]
  for plain, mirrored in zip(rows[:2], rows[2:], strict=True):
    assert mirrored["mirrored"] == (plain["mean_positive_score"] < 0)
    assert mirrored["mean_positive_score"] == pytest.approx(
        abs(plain["mean_positive_score"]), rel=1e-5)
  again = draws.run_draws(cfg, data, tmp_path / "w", image_params,
                          speech_params, **kwargs)
  assert again == rows
  table = draws.summary_markdown(rows)
  assert "| `gaussian` | 2 |" in table and table.count("| `gaussian") == 6


def test_dead_digits_and_fates():
  scores = np.array([[1.0, 0.0, -1.0],     # digit 0 image
                     [0.0, 0.0, 2.0],      # digit 1 image
                     [0.0, 0.0, 0.0]])     # digit 2 image
  image_digits = np.array([0, 1, 2])
  speech_labels = np.array([0, 1, 2])       # utterance j says digit j
  assert draws.dead_digits(scores, image_digits, speech_labels) == [1, 2]
  row = {"dead": False, "dead_digits": [1, 2]}
  assert draws.fate(row) == "digit 1, 2 dead"
  assert draws.fate({"dead": False, "dead_digits": []}) == "alive"
  assert draws.fate({"dead": True, "dead_digits": [0, 1, 2]}) == "dead"


def test_tensorflow_validation_hold_out_needs_the_full_training_set():
  from avdigits.data import splits
  from avdigits.data.types import ImageSet
  n = splits.MNIST_TRAIN_SIZE + 10
  subset = np.array(["train"] * splits.MNIST_TRAIN_SIZE + ["test"] * 10)
  images = ImageSet(images=np.zeros((n, 1, 1), np.uint8),
                    labels=np.arange(n) % 10, subset=subset, source="toy")
  train, _ = splits.image_split(images, mode="official")
  kept = splits.hold_out_validation(images, train, 5000)
  np.testing.assert_array_equal(kept, np.arange(5000, 60000))
  assert len(splits.hold_out_validation(images, train, 0)) == 60000
  small = ImageSet(images=np.zeros((20, 1, 1), np.uint8),
                   labels=np.arange(20) % 10,
                   subset=np.array(["train"] * 10 + ["test"] * 10),
                   source="toy")
  train, _ = splits.image_split(small, mode="official")
  assert splits.hold_out_validation(small, train, 5000) is train
