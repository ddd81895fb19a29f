"""Shared test fixtures: the real-data directory, when there is one."""

import os
import pathlib

import pytest

_REPO = pathlib.Path(__file__).resolve().parents[1]


def _real_data_dir() -> pathlib.Path | None:
  for candidate in (os.environ.get("AVDIGITS_DATA_DIR"),
                    _REPO.parent / "shared" / "data"):
    if candidate and (pathlib.Path(candidate) / "fsdd").is_dir():
      return pathlib.Path(candidate)
  return None


REAL_DATA_DIR = _real_data_dir()

requires_real_data = pytest.mark.skipif(
    REAL_DATA_DIR is None,
    reason="needs ../shared/data or AVDIGITS_DATA_DIR (real MNIST/FSDD)")


@pytest.fixture
def real_data_dir() -> pathlib.Path:
  if REAL_DATA_DIR is None:
    pytest.skip("needs ../shared/data or AVDIGITS_DATA_DIR")
  return REAL_DATA_DIR
