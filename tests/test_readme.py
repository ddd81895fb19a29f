"""The README's "Use the pieces" snippet runs, and the README stays a front
door whose generated tables live on their docs pages."""

import pathlib
import re

import numpy as np

from experiments import cli

REPO = pathlib.Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def _section(text: str, heading: str) -> str:
  """The text under `## heading`, up to the next `## ` heading."""
  _, found, rest = text.partition(f"\n## {heading}\n")
  assert found, f"README.md has no '## {heading}' section"
  return rest.split("\n## ", 1)[0]


def test_use_the_pieces_snippet_trains():
  blocks = re.findall(r"```python\n(.*?)```",
                      _section(README.read_text(), "Use the pieces"),
                      re.DOTALL)
  assert len(blocks) == 1, "one fenced python block under 'Use the pieces'"
  namespace = {"__name__": "readme_snippet"}
  exec(compile(blocks[0], "README.md (Use the pieces)", "exec"), namespace)
  history = np.asarray(namespace["history"])
  assert len(history) == 20 and np.isfinite(history).all()
  # The step learns: the loss falls, to under half its first value.
  assert history[-1] < 0.5 * history[0], history


def test_readme_is_a_front_door():
  text = README.read_text()
  assert len(text.splitlines()) <= 250
  assert "pip install -e '.[test]' && python -m pytest -q -n 2 --dist " \
         "loadfile tests" in text
  assert "../shared" not in text
  assert not re.search(r"<!-- \w+:begin -->", text), (
      "generated tables belong on their docs pages")


def test_every_generated_table_has_its_docs_page():
  for markers, page in cli.DOCS_PAGES.items():
    text = (REPO / page).read_text()
    for end in ("begin", "end"):
      assert text.count(f"<!-- {markers}:{end} -->") == 1, (page, markers)
    assert f"--readme={page}" in text, (page, markers)
