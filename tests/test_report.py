"""The report's statistics: means and 95% t-intervals over seeds."""

import numpy as np
import pytest
from scipy import stats

from avdigits import summary
from avdigits.digits import report


def test_mean_ci_is_the_t_interval_half_width():
  values = [0.8, 0.6, 0.9, 0.7]
  out = summary.mean_ci(values)
  assert out["values"] == values
  assert out["mean"] == pytest.approx(0.75)
  # By hand: sd = sqrt(0.05 / 3), t(0.975, 3) = 3.182446, n = 4.
  assert out["ci95"] == pytest.approx(3.182446 * np.sqrt(0.05 / 3) / 2,
                                      rel=1e-6)
  low, high = stats.t.interval(0.95, df=3, loc=0.75,
                               scale=stats.sem(values))
  assert out["ci95"] == pytest.approx((high - low) / 2, rel=1e-9)
  assert out["mean"] - out["ci95"] == pytest.approx(low)


def test_mean_ci_two_seeds_by_hand():
  out = summary.mean_ci([0.5, 0.7])
  # sd = 0.1 * sqrt(2), t(0.975, 1) = 12.706205.
  assert out["mean"] == pytest.approx(0.6)
  assert out["ci95"] == pytest.approx(12.706205 * 0.1 * np.sqrt(2)
                                      / np.sqrt(2), rel=1e-6)


def test_one_seed_has_no_interval():
  out = summary.mean_ci([np.float32(0.25)])
  assert out == {"mean": 0.25, "ci95": 0.0, "values": [0.25]}
  assert type(out["values"][0]) is float      # JSON-ready
  assert summary.mean_ci([0.4, 0.4, 0.4])["ci95"] == pytest.approx(0, abs=1e-12)


def _run(seed, annotation, retrieval, image, speech):
  per_class = [annotation] * 10
  return {"seed": seed, "image_test_accuracy": image,
          "speech_test_accuracy": speech,
          "annotation": {"accuracy": annotation, "per_class": per_class,
                         "confusion": np.eye(10, 11, dtype=int).tolist()},
          "retrieval": {"accuracy": retrieval, "per_class": [retrieval] * 11,
                        "confusion": np.eye(11, 10, dtype=int).tolist()},
          "recall": {"image_to_speech": {"R@1": annotation}}}


def test_aggregate_uses_the_same_statistics_per_task():
  runs = [_run(0, 0.8, 0.7, 0.99, 0.9), _run(1, 0.6, 0.5, 0.98, 0.8),
          _run(2, 0.7, 0.9, 0.97, 0.7)]
  out = report.aggregate(runs, data={}, config={"align": {"speech_hidden":
                                                          64}},
                         seed=0, timings={})
  assert out["seeds"] == [0, 1, 2]
  for task, values in (("annotation", [0.8, 0.6, 0.7]),
                       ("retrieval", [0.7, 0.5, 0.9])):
    m = summary.mean_ci(values)
    assert out[task]["accuracy"] == pytest.approx(np.mean(values))
    assert out[task]["accuracy_ci95"] == pytest.approx(
        stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / np.sqrt(3))
    assert out[task]["accuracy_ci95"] == m["ci95"]
    assert out[task]["per_seed"] == values
  assert out["annotation"]["confusion"] == (
      3 * np.eye(10, 11, dtype=int)).tolist()
  assert out["image_classifier"]["test_accuracy"] == pytest.approx(0.98)
  assert out["speech_classifier"]["test_accuracy_ci95"] == pytest.approx(
      stats.t.ppf(0.975, 2) * 0.1 / np.sqrt(3))
  assert out["recall"]["image_to_speech"]["R@1"]["mean"] == pytest.approx(
      0.7)


def test_aggregate_of_one_seed_has_zero_intervals():
  out = report.aggregate([_run(4, 0.8, 0.7, 0.99, 0.9)], data={},
                         config={"align": {"speech_hidden": 64}}, seed=4,
                         timings={})
  assert out["seeds"] == [4]
  assert (out["annotation"]["accuracy"],
          out["annotation"]["accuracy_ci95"]) == (0.8, 0.0)
  assert (out["retrieval"]["accuracy"],
          out["retrieval"]["accuracy_ci95"]) == (0.7, 0.0)
  assert out["image_classifier"]["test_accuracy_ci95"] == 0.0
  assert summary.pct(0.8, out["annotation"]["accuracy_ci95"]) == "80.00%"
  assert summary.pct(0.75, 0.0123) == "75.00% ± 1.23"


def test_report_md_gives_every_paper_figure_in_percent():
  heads = {h: {"test_accuracy": 0.9, "history": []}
           for h in ("512", "1024")}
  recall = {k: 0.5 for k in ("R@1", "R@5", "R@10")}
  runs = [dict(_run(seed, 0.8, 0.7, 0.99, 0.9), speech_classifiers=heads,
               image_classifier={"history": []},
               recall={"image_to_speech": recall,
                       "speech_to_image": recall})
          for seed in (0, 1)]
  data = {"speakers": {"test": []}, "image_source": "i", "image_split": "s",
          "speech_source": "a", "speech_split": "s", "counts": {}}
  out = report.aggregate(runs, data=data, config={"align": {
      "speech_hidden": 1024}}, seed=0, timings={})
  rows = [line.split(" | ") for line in report.markdown(out, "cmd")
          .splitlines() if line.startswith("| ") and "%" in line]
  paper = {row[0][2:]: row[2].rstrip(" |") for row in rows
           if len(row) == 3}
  assert paper == {
      "Image convnet (test acc.)": "99.30%",
      "Speech convnet N=512 (test acc.)": "89.30-89.60%",
      "Speech convnet N=1024 (test acc.)": "94.70-95.30%",
      "Image annotation": "88.50%", "Image retrieval": "87.60%"}
