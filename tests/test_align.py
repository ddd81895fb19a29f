"""Alignment training: sampling, the fast SGD path, resumable chunks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avdigits.errors import ConfigError, DataError
from avdigits.models import convnets
from avdigits.training import align
from avdigits.training.optim import make_optimizer


def _problem(seed=0, classes=11):
  rng = np.random.default_rng(seed)
  w = np.abs(rng.normal(size=(300, 512))).astype(np.float32)
  v = (np.abs(rng.normal(size=(220, 64)))
       * (rng.random((220, 64)) < 0.3)).astype(np.float32)
  digits = rng.integers(0, 10, 300).astype(np.int32)
  labels = (np.arange(220) % classes).astype(np.int32)
  return w, digits, v, labels


def test_class_index_table_and_missing_class():
  table, counts = align.class_index_table(np.array([0, 2, 2, 1]), 3)
  assert counts.tolist() == [1, 1, 2]
  assert sorted(table[2, :2].tolist()) == [1, 2]
  with pytest.raises(DataError, match=r"\[3\]"):
    align.class_index_table(np.array([0, 1, 2]), 4)


def test_sampling_is_seeded_by_chunk_and_in_class():
  labels = np.arange(50) % 5
  table, counts = align.class_index_table(labels, 5)
  a = align.sample_chunk(jax.random.key(0), 3, 100, 40, jnp.asarray(table),
                         jnp.asarray(counts))
  b = align.sample_chunk(jax.random.key(0), 3, 100, 40, jnp.asarray(table),
                         jnp.asarray(counts))
  c = align.sample_chunk(jax.random.key(0), 4, 100, 40, jnp.asarray(table),
                         jnp.asarray(counts))
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.array_equal(a[1], c[1])
  assert (labels[np.asarray(a[1])] == np.arange(5)).all()
  assert np.asarray(a[0]).max() < 40


@pytest.mark.parametrize("clamp", [True, False])
def test_fast_sgd_matches_plain_sgd(clamp):
  w, digits, v, labels = _problem()
  iterations = 256
  schedule = align.AlignSchedule(steps=iterations, steps_per_chunk=iterations,
                                 clamp=clamp, learning_rate=1e-4,
                                 init_std=0.05)
  model = convnets.Aligner(embed_dim=schedule.embed_dim,
                         init_std=schedule.init_std)
  tx = make_optimizer("sgd", schedule.learning_rate, iterations)
  params = model.init(jax.random.key(0), w[:1], v[None, :11])["params"]
  table, counts = align.class_index_table(labels, 11)
  args = [jnp.asarray(a) for a in (w, digits, v, table, counts)]
  outs = []
  for fn in (align.make_align_chunk_fn(model, tx, schedule, 11),
             align.make_fast_sgd_chunk_fn(schedule, 11, block=16)):
    state = {"params": jax.tree.map(jnp.array, params),
             "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
    outs.append(fn(state, *args, jax.random.key(1), 0, iterations))
  (plain, plain_costs), (fast, fast_costs) = outs
  assert float(plain_costs[0]) > 0 and float(plain_costs[-32:].mean()) < float(
      plain_costs[:32].mean())  # it learns, so the comparison means something
  np.testing.assert_allclose(fast_costs, plain_costs, rtol=1e-4, atol=1e-4)
  for a, b in zip(jax.tree.leaves(fast["params"]),
                  jax.tree.leaves(plain["params"]), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_fast_path_selection_and_errors():
  assert align.AlignSchedule(steps=32, steps_per_chunk=16).use_fast()
  assert not align.AlignSchedule(steps=30, steps_per_chunk=15).use_fast()
  assert not align.AlignSchedule(optimizer="adam").use_fast()
  with pytest.raises(ConfigError, match="impl=fast"):
    align.AlignSchedule(optimizer="adam", impl="fast").use_fast()
  with pytest.raises(ConfigError, match="align.steps_per_chunk"):
    align.AlignSchedule(steps_per_chunk=0).validate()
