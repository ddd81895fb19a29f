"""Predictions of trained models: batched apply and the test figures."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from avdigits import evaluate
from avdigits.models import nets


@functools.lru_cache(maxsize=32)
def make_predict_fn(model: nn.Module, method: str | None = None,
                    batch_size: int = 1000):
  """Returns f(params, x) -> outputs, evaluated in fixed-size batches.

  Cached per (model, method, batch_size), so each compiles once per process.
  """

  @jax.jit
  def apply(params, x):
    kwargs = {"method": method} if method else {}
    return model.apply({"params": params}, x, **kwargs)

  def predict(params, x: np.ndarray) -> np.ndarray:
    outputs = []
    for start in range(0, len(x), batch_size):
      batch = x[start:start + batch_size]
      pad = batch_size - len(batch)
      if pad and len(x) > batch_size:  # keep one compiled shape
        batch = np.concatenate([batch, np.zeros((pad,) + batch.shape[1:],
                                                batch.dtype)])
      out = np.asarray(apply(params, batch))
      outputs.append(out[:len(out) - pad] if pad and len(x) > batch_size
                     else out)
    return np.concatenate(outputs)

  return predict


def test_outputs(cfg: ml_collections.ConfigDict, data: Any, image_params,
                 speech_params, align_params,
                 model_classes: int | None = None) -> dict[str, np.ndarray]:
  """The trained models' float32 outputs on the test data of `data`.

  Returns `image_logits`, `speech_logits` and `scores` (test image x test
  utterance), exactly as `evaluate_models` scores them.
  """
  model_classes = model_classes or data.num_speech_classes
  inet = nets.image_net(cfg.image)
  snet = nets.speech_net(cfg.speech, model_classes, cfg.align.speech_hidden)
  w = make_predict_fn(inet, method="embed")(image_params, data.test_images)
  v = make_predict_fn(snet, method="embed")(speech_params, data.test_speech)
  return {
      "image_logits": make_predict_fn(inet)(image_params, data.test_images),
      "speech_logits": make_predict_fn(snet)(speech_params, data.test_speech),
      "scores": np.asarray(nets.aligner(cfg.align).apply(
          {"params": align_params}, w, v, method="score_matrix")),
  }


def evaluate_models(cfg: ml_collections.ConfigDict, data: Any, image_params,
                    speech_params, align_params, *, seed: int,
                    model_classes: int | None = None) -> dict[str, Any]:
  """Classifier accuracies, annotation, retrieval and recall on the test
  data of `data` (a `prepare.Prepared`).

  Args:
    model_classes: speech classes the trained speech convnet has (default:
      the data's). Its accuracy counts only utterances of those classes.
  """
  model_classes = model_classes or data.num_speech_classes
  outputs = test_outputs(cfg, data, image_params, speech_params, align_params,
                         model_classes)
  out = evaluate.evaluate_scores(
      outputs["scores"], data.test_image_labels, data.test_speech_labels,
      data.num_speech_classes, trials=cfg.eval.trials, seed=seed)
  out["image_test_accuracy"] = float(
      (outputs["image_logits"].argmax(-1) == data.test_image_labels).mean())
  known = data.test_speech_labels < model_classes
  out["speech_test_accuracy"] = float(
      (outputs["speech_logits"].argmax(-1)[known]
       == data.test_speech_labels[known]).mean())
  corpus = getattr(data, "test_speech_corpus", None)
  if corpus is not None and len(set(corpus.tolist())) > 1:
    out["by_corpus"] = {
        name: _corpus_figures(outputs, data, corpus == name, known,
                              trials=cfg.eval.trials, seed=seed)
        for name in sorted(set(corpus.tolist()))}
  return out


def _corpus_figures(outputs: dict[str, np.ndarray], data: Any,
                    columns: np.ndarray, known: np.ndarray, *, trials: int,
                    seed: int) -> dict[str, Any]:
  """The speech figures of one corpus's test utterances (`columns`): its
  classifier accuracy, and annotation/retrieval against all test images
  where it has every speech class (else None, with the classes missing)."""
  labels = data.test_speech_labels[columns]
  keep = known[columns]
  out: dict[str, Any] = {
      "test_utterances": int(columns.sum()),
      "speech_test_accuracy": float(
          (outputs["speech_logits"][columns].argmax(-1)[keep]
           == labels[keep]).mean()),
  }
  missing = sorted(set(range(data.num_speech_classes))
                   - set(labels.tolist()))
  if missing:
    out["annotation"] = out["retrieval"] = None
    out["missing_classes"] = missing
    return out
  figures = evaluate.evaluate_scores(
      outputs["scores"][:, columns], data.test_image_labels, labels,
      data.num_speech_classes, trials=trials, seed=seed)
  out["annotation"] = figures["annotation"]["accuracy"]
  out["retrieval"] = figures["retrieval"]["accuracy"]
  return out
