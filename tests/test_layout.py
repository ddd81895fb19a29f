"""The package layout: the library never imports a task, and no task
imports another (read from the source, so a lazy import counts too)."""

import ast
import pathlib

AVDIGITS = pathlib.Path(__file__).resolve().parents[1] / "avdigits"
TASKS = ("digits", "strings", "study")


def _module_name(path: pathlib.Path, root: pathlib.Path) -> str:
  parts = path.relative_to(root.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> set[str]:
  """Every avdigits module `path` imports, at any depth of its code."""
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      out.add(node.module)
      out.update(f"{node.module}.{a.name}" for a in node.names)
    elif isinstance(node, ast.Import):
      out.update(a.name for a in node.names)
  return {m for m in out if m.split(".")[0] == "avdigits"}


def _task(module: str) -> str | None:
  parts = module.split(".")
  return parts[1] if len(parts) > 1 and parts[1] in TASKS else None


def import_violations(root: pathlib.Path = AVDIGITS) -> list[str]:
  bad = []
  for path in sorted(root.rglob("*.py")):
    name = _module_name(path, root)
    own = _task(name)
    for imported in _imports(path):
      other = _task(imported)
      if other is not None and other != own:
        side = f"task {own}" if own else "the library"
        bad.append(f"{name} ({side}) imports {imported}")
  return bad


def test_library_never_imports_a_task_and_tasks_not_each_other():
  assert import_violations() == []


def test_the_check_sees_a_violation(tmp_path):
  """The check itself: a library module importing a task is caught."""
  fake = tmp_path / "avdigits"
  (fake / "digits").mkdir(parents=True)
  (fake / "digits" / "__init__.py").write_text("")
  (fake / "losses.py").write_text(
      "def f():\n  from avdigits.digits import report\n")
  (fake / "strings").mkdir()
  (fake / "strings" / "train.py").write_text(
      "from avdigits.digits.two_stage import run_all\n"
      "from avdigits.training import loop\n")
  assert sorted(import_violations(fake)) == [
      "avdigits.losses (the library) imports avdigits.digits",
      "avdigits.losses (the library) imports avdigits.digits.report",
      "avdigits.strings.train (task strings) imports avdigits.digits.two_stage",
      "avdigits.strings.train (task strings) imports "
      "avdigits.digits.two_stage.run_all",
  ]


def test_no_flat_module_left_where_a_package_took_its_place():
  names = {p.name for p in AVDIGITS.iterdir()}
  for moved in ("train.py", "two_stage.py", "strings_train.py",
                "study_report.py", "sequence_models.py", "prepare.py"):
    assert moved not in names


def test_readme_layout_names_every_part_of_the_package():
  readme = (AVDIGITS.parent / "README.md").read_text()
  layout = readme.split("## Layout", 1)[1].split("```")[1]
  parts = {p.name for p in AVDIGITS.iterdir()
           if p.name not in ("__init__.py", "__pycache__")}
  missing = {p for p in parts
             if (p + "/" if (AVDIGITS / p).is_dir() else p) not in layout}
  assert missing == set()
