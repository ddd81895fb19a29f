"""The offline config (no data directory, no network) trains models that
work: the README's offline command."""

from avdigits.digits import two_stage, validation
from experiments.configs import offline


def test_offline_config_trains_working_models(tmp_path, monkeypatch):
  monkeypatch.delenv("AVDIGITS_DATA_DIR", raising=False)
  cfg = offline.get_config()
  validation.validate_reproduce(cfg)
  by_split, summary = two_stage.run_all(cfg, None, tmp_path, [0],
                                       show_progress=False)
  (run,) = by_split["stratified"]
  assert summary["synthetic"]
  assert run["image_test_accuracy"] >= 0.9
  assert run["annotation"]["accuracy"] >= 0.8
  assert run["retrieval"]["accuracy"] >= 0.8
