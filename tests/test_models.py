"""avdigits.models.convnets: shapes, parameters, and reference forms."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from avdigits.errors import ConfigError, DataError
from avdigits.models import convnets


def _count(variables):
  return sum(leaf.size for leaf in jax.tree.leaves(variables))


def _max_rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.abs(a - b).max() / np.abs(b).max()


def _tree_max_rel_err(a, b):
  return max(jax.tree.leaves(jax.tree.map(_max_rel_err, a, b)))


def _random_params(model, seed, *inputs, **kwargs):
  """Variables of model's shapes, every leaf (biases too) random ~ 1/sqrt(fan).

  Built with numpy from jax.eval_shape: fast, and independent of the model's
  own initialisers.
  """
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), *inputs,
                          **kwargs)
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda leaf: jnp.asarray(rng.standard_normal(leaf.shape, np.float32)
                               / np.sqrt(np.prod(leaf.shape[:-1]))), shapes)


@pytest.fixture(scope="module")
def images():
  return jax.random.uniform(jax.random.PRNGKey(1), (3, 28, 28),
                            minval=-0.5, maxval=0.5)


@pytest.fixture(scope="module")
def image_variables(images):
  return _random_params(convnets.ImageNet(), 2, images)


def _image_reference(params, x):
  """The convnet in the textbook order: conv+bias, ReLU, then max-pool."""
  x = x[..., None]
  for name in ("conv1", "conv2"):
    x = lax.conv_general_dilated(x, params[name]["kernel"], (1, 1), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    x = nn.max_pool(nn.relu(x + params[name]["bias"]), (2, 2), (2, 2))
  x = x.reshape(x.shape[0], -1)
  for name in ("dense1", "dense2"):
    x = nn.relu(x @ params[name]["kernel"] + params[name]["bias"])
  return x @ params["logits"]["kernel"] + params["logits"]["bias"]


def test_image_net_shapes_and_params(images, image_variables):
  model = convnets.ImageNet()
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), images)
  shapes = jax.tree.map(jnp.shape, variables["params"])
  assert shapes["conv1"] == {"kernel": (5, 5, 1, 32), "bias": (32,)}
  assert shapes["conv2"] == {"kernel": (5, 5, 32, 64), "bias": (64,)}
  assert shapes["dense1"]["kernel"] == (7 * 7 * 64, 512)
  assert shapes["dense2"]["kernel"] == (512, 512)
  assert shapes["logits"]["kernel"] == (512, 10)
  assert _count(variables) == 1_926_026
  apply = jax.jit(model.apply, static_argnames="method")
  logits = apply(image_variables, images)
  assert logits.shape == (3, 10)
  np.testing.assert_allclose(apply(image_variables, images[..., None]),
                             logits, rtol=1e-6)
  assert apply(image_variables, images, method="embed").shape == (3, 512)
  embed_only = jax.eval_shape(
      lambda x: model.init(jax.random.PRNGKey(0), x, method="embed"), images)
  assert "logits" not in embed_only["params"]


def test_image_net_matches_textbook_order(images, image_variables):
  logits = convnets.ImageNet().apply(image_variables, images)
  expected = _image_reference(image_variables["params"], images)
  assert _max_rel_err(logits, expected) < 1e-5


def test_image_net_conv_impls_agree(images, image_variables):
  labels = jnp.array([1, 5, 9])

  def loss(params, impl):
    logits = convnets.ImageNet(conv_impl=impl).apply(params, images)
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(3), labels])

  results = {}
  for impl in convnets.CONV_IMPLS:
    model = convnets.ImageNet(conv_impl=impl)
    init = jax.eval_shape(model.init, jax.random.PRNGKey(0), images)
    assert (jax.tree.map(jnp.shape, init)
            == jax.tree.map(jnp.shape, image_variables))
    embed = jax.jit(lambda v, x, m=model: m.apply(v, x, method="embed"))
    grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
    results[impl] = (embed(image_variables, images),
                     grad(image_variables, impl))
  reference = results.pop("xla")
  for impl, result in results.items():
    assert _tree_max_rel_err(result, reference) < 1e-5, impl


def test_image_net_rejects_bad_input_and_impl(images, image_variables):
  with pytest.raises(DataError, match="ImageNet input x"):
    convnets.ImageNet().apply(image_variables, images[:, :27])
  with pytest.raises(ConfigError, match="conv_impl"):
    convnets.ImageNet(conv_impl="cudnn").init(jax.random.PRNGKey(0), images)


def _speech_reference(params, x):
  """The documented mapping spelled out: a 2-D 5x23 conv on a 1-channel
  [frames, bins] map, then a 2-D 3x4 / 1x2 max-pool on the [frames, maps]
  map."""
  kernel = params["conv"]["kernel"]  # [5, 23, 64]
  y = lax.conv_general_dilated(x[..., None], kernel[:, :, None, :], (1, 1),
                               ((1, 1), (0, 0)),
                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
  y = nn.relu(y[:, :, 0, :] + params["conv"]["bias"])  # [B, 98, 64]
  y = nn.max_pool(y[..., None], (3, 4), (1, 2))  # [B, 96, 31, 1]
  assert y.shape[1:] == (96, 31, 1)
  y = y.reshape(y.shape[0], -1)
  for name in ("dense1", "dense2"):
    y = nn.relu(y @ params[name]["kernel"] + params[name]["bias"])
  return y @ params["logits"]["kernel"] + params["logits"]["bias"]


def test_speech_net_shapes_and_params():
  x = jnp.zeros((2, 100, 23))
  model = convnets.SpeechNet()
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
  shapes = jax.tree.map(jnp.shape, variables["params"])
  assert shapes["conv"]["kernel"] == (5, 23, 64)
  assert shapes["dense1"]["kernel"] == (96 * 31, 1024)
  assert shapes["logits"]["kernel"] == (1024, 11)
  assert _count(variables) == 4_116_747
  assert jax.eval_shape(model.apply, variables, x).shape == (2, 11)
  assert jax.eval_shape(model.apply, variables, x[..., None]).shape == (2, 11)
  embed = jax.eval_shape(lambda v, x: model.apply(v, x, method="embed"),
                         variables, x)
  assert embed.shape == (2, 1024)
  with pytest.raises(DataError, match="SpeechNet input x"):
    model.apply(variables, x[0])


def test_speech_net_matches_documented_mapping():
  x = jax.random.normal(jax.random.PRNGKey(3), (2, 100, 23))
  model = convnets.SpeechNet(hidden=32, num_classes=10)
  variables = _random_params(model, 4, x)

  @jax.jit
  def outputs(variables, x):
    return (model.apply(variables, x), model.apply(variables, x[..., None]),
            model.apply(variables, x, method="embed"),
            _speech_reference(variables["params"], x))

  logits, logits_4d, embedding, expected = outputs(variables, x)
  assert logits.shape == (2, 10) and embedding.shape == (2, 32)
  assert _max_rel_err(logits, expected) < 1e-5
  np.testing.assert_array_equal(logits_4d, logits)
  short = jax.eval_shape(model.init, jax.random.PRNGKey(0), x[:, :40])
  assert short["params"]["dense1"]["kernel"].shape == (36 * 31, 32)


@pytest.fixture(scope="module")
def aligner_case():
  key_w, key_v = jax.random.split(jax.random.PRNGKey(5))
  w = jax.nn.relu(jax.random.normal(key_w, (4, 512)))
  v = jax.nn.relu(jax.random.normal(key_v, (4, 6, 40)))
  model = convnets.Aligner(embed_dim=32, init_std=0.05)
  # Random biases too, so that the tests see them.
  return model, _random_params(model, 6, w, v), w, v


def _naive_scores(params, w, v, clamp):
  x = nn.relu(w @ params["image_map"]["kernel"] + params["image_map"]["bias"])
  y = v @ params["speech_map"]["kernel"] + params["speech_map"]["bias"]
  scores = jnp.einsum("bce,be->bc", y, x)
  return nn.relu(scores) if clamp else scores


def test_aligner_params_and_init():
  w, v = jnp.ones((2, 512)), jnp.ones((2, 11, 1024))
  variables = jax.jit(convnets.Aligner().init)(jax.random.PRNGKey(0), w, v)
  params = variables["params"]
  assert jax.tree.map(jnp.shape, params) == {
      "image_map": {"kernel": (512, 512), "bias": (512,)},
      "speech_map": {"kernel": (1024, 512), "bias": (512,)}}
  assert _count(variables) == 787_456
  kernel = np.asarray(params["speech_map"]["kernel"])
  assert abs(kernel.std() - 0.01) < 5e-4 and abs(kernel.mean()) < 2e-4
  assert not np.any(params["image_map"]["bias"])


@pytest.mark.parametrize("clamp", [True, False])
def test_aligner_efficient_equals_naive(aligner_case, clamp):
  model, variables, w, v = aligner_case

  def loss(variables, fn):
    scores = fn(variables)
    return jnp.sum(jnp.sin(scores) + scores ** 2)

  efficient = lambda var: model.apply(var, w, v, clamp=clamp)
  naive = lambda var: _naive_scores(var["params"], w, v, clamp)

  @jax.jit
  def both(variables):
    return [(fn(variables), jax.grad(loss)(variables, fn))
            for fn in (efficient, naive)]

  (scores, grads), (naive_scores, naive_grads) = both(variables)
  assert scores.shape == (4, 6)
  assert _max_rel_err(scores, naive_scores) < 1e-5
  if clamp:
    assert float(scores.min()) == 0.0 and float(scores.max()) > 0.0
  else:
    assert float(scores.min()) < 0.0
  assert _tree_max_rel_err(grads, naive_grads) < 1e-5


def test_aligner_embeddings_and_score_matrix(aligner_case):
  model, variables, w, v = aligner_case
  params = variables["params"]
  x = model.apply(variables, w, method="embed_image")
  y = model.apply(variables, v, method="embed_speech")
  assert x.shape == (4, 32) and y.shape == (4, 6, 32)
  assert float(x.min()) == 0.0
  utterances = v.reshape(-1, 40)
  matrix = jax.jit(lambda var, a, b: model.apply(
      var, a, b, method="score_matrix"))(variables, w, utterances)
  assert matrix.shape == (4, 24)
  naive = _naive_scores(params, w, jnp.broadcast_to(utterances, (4, 24, 40)),
                        clamp=False)
  assert _max_rel_err(matrix, naive) < 1e-5
  # Row b of the batched scores is columns 6b..6b+5 of the matrix.
  batched = model.apply(variables, w, v, clamp=False)
  for b in range(4):
    np.testing.assert_allclose(batched[b], matrix[b, 6 * b:6 * b + 6],
                               rtol=1e-5, atol=1e-6)
  clamped = model.apply(variables, w, utterances, clamp=True,
                        method="score_matrix")
  np.testing.assert_allclose(clamped, jnp.maximum(matrix, 0), rtol=1e-5,
                             atol=1e-6)
