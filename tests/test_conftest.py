"""The test suite's own fixtures: when real data counts as present."""

from tests.conftest import real_data_dir_among


def test_a_data_directory_without_mnist_is_not_real_data(tmp_path):
  only_fsdd, both = tmp_path / "only_fsdd", tmp_path / "both"
  (only_fsdd / "fsdd").mkdir(parents=True)
  for name in ("mnist", "fsdd"):
    (both / name).mkdir(parents=True)
  assert real_data_dir_among(None, only_fsdd) is None
  assert real_data_dir_among(only_fsdd, both) == both
