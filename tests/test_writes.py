"""Final writes of the entry points: process 0 only, through unique
temporary files."""

import os
import pathlib
import types

import pytest

from avdigits.training import devices
from experiments import cli
from tests.conftest import entry_point

PAGE = "# x\n<!-- {0}:begin -->\nold\n<!-- {0}:end -->\ntail\n"


def _flags(monkeypatch, module, **values):
  for holder, value in values.items():
    monkeypatch.setattr(module, holder, types.SimpleNamespace(value=value))


def _write_study(module, monkeypatch, tmp_path):
  page = tmp_path / "page.md"
  page.write_text(PAGE.format("study"))
  _flags(monkeypatch, module, _FIGURES=None, _README=str(page),
         _MARKERS=None, _SUITE="study")
  module.write_outputs(tmp_path / "work", [], "new table\n", {"a": 1},
                       link_figures=True)
  return [tmp_path / "work" / "study.json", tmp_path / "work" / "study.md"]


def _write_draws(module, monkeypatch, tmp_path):
  page = tmp_path / "page.md"
  page.write_text(PAGE.format("draws"))
  _flags(monkeypatch, module, _README=str(page))
  module.write_outputs(tmp_path / "work", "cmd", [], "new table\n")
  return [tmp_path / "work" / "draws.json", tmp_path / "work" / "draws.md"]


def _write_output(module, monkeypatch, tmp_path):
  (tmp_path / "page.md").write_text(PAGE.format("none"))
  _flags(monkeypatch, module, _OUTPUT=str(tmp_path / "out.json"))
  module.write_output({"a": 1})
  return [tmp_path / "out.json"]


@pytest.mark.parametrize("name, write", [
    ("experiments.study", _write_study),
    ("experiments.draws", _write_draws),
    ("experiments.evaluate", _write_output),
    ("experiments.benchmark", _write_output)])
@pytest.mark.parametrize("writer", [False, True])
def test_only_process_zero_writes_final_files(name, write, writer,
                                              monkeypatch, tmp_path):
  monkeypatch.setattr(devices, "is_writer", lambda: writer)
  with entry_point(name) as module:
    written = write(module, monkeypatch, tmp_path)
  page = (tmp_path / "page.md").read_text()
  if writer:
    assert all(path.is_file() for path in written)
    if "none" not in page:
      assert "new table" in page and "old" not in page
  else:
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.md"]
    assert "old" in page


def test_readme_update_uses_a_unique_temporary_in_the_page_directory(
    tmp_path, monkeypatch):
  page = tmp_path / "page.md"
  page.write_text(PAGE.format("study"))
  sources = []
  real_replace = os.replace

  def replace(source, target):
    sources.append(pathlib.Path(source))
    real_replace(source, target)

  monkeypatch.setattr(os, "replace", replace)
  cli.update_readme(page, "first\n", [])
  cli.update_readme(page, "second\n", [])
  assert len(sources) == 2 and sources[0] != sources[1]
  assert all(s.parent == tmp_path and s.name != ".page.md.tmp"
             for s in sources)
  assert "second" in page.read_text() and "first" not in page.read_text()
  assert sorted(p.name for p in tmp_path.iterdir()) == ["page.md"]
