"""The project's structure: the import graph is a DAG that follows the data flow, each
subpackage imports only the layers its `__init__` docstring allows, and the docs the code
cites are in the repository."""

import re

from tests import import_graph

REPO = import_graph.REPO
# Subpackage of dvbpr_tf -> what else of the project it may import ("datasets" is the
# builders' package dvbpr_tf_datasets). Each __init__ docstring says the same in words.
ALLOWED = {
    "core": {"datasets"},
    "data": {"core", "config", "datasets"},
    "models": {"core", "config"},
    "baselines": {"core", "data", "models"},
    "features": {"core", "data"},
    "design": {"core", "data", "models", "config"},
    "serving": {"core", "data", "models"},
    "evaluation": {"core", "data", "features", "datasets"},
    "reporting": {"core", "datasets"},
    "config": {"core"},
    "training": {"core", "config", "data", "models", "baselines", "evaluation"},
}


def _layer(module: str) -> str:
  parts = module.split(".")
  if parts[0] == "dvbpr_tf_datasets":
    return "datasets"
  if parts[0] == "dvbpr_tf":
    return parts[1] if len(parts) > 1 else "dvbpr_tf"
  return parts[0]


def test_no_import_cycle():
  assert import_graph.cycles(import_graph.graph()) == []


def test_cycle_finder_finds_a_cycle():
  assert import_graph.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
      ["a", "b", "c"]]


def test_each_layer_imports_only_what_it_may():
  wrong = []
  for module, imported in import_graph.graph().items():
    top = module.split(".")[0]
    for other in imported:
      layer, other_layer = _layer(module), _layer(other)
      if other_layer in (layer, "dvbpr_tf"):
        continue
      if top == "dvbpr_tf_datasets" and other.split(".")[0] != "dvbpr_tf_datasets":
        wrong.append((module, other))  # The builders stand alone.
      elif top == "dvbpr_tf" and other.split(".")[0] in ("experiments", "benchmarks"):
        wrong.append((module, other))
      elif top == "dvbpr_tf" and other_layer not in ALLOWED[layer]:
        wrong.append((module, other))
  assert wrong == []


def test_the_package_top_level_holds_a_handful_of_modules():
  top = sorted(p.name for p in (REPO / "dvbpr_tf").glob("*.py"))
  assert top == ["__init__.py", "config.py"]
  for folder in sorted(p for p in (REPO / "dvbpr_tf").iterdir() if p.is_dir()
                       and not p.name.startswith("__")):
    docstring = (folder / "__init__.py").read_text()
    assert docstring.startswith('"""') and "import" in docstring, folder


def test_the_cited_docs_are_in_the_repository_and_no_history_in_code():
  assert (REPO / "docs" / "reproduction.md").is_file()
  sections = set(re.findall(r"^## (§\d)", (REPO / "docs" / "reproduction.md").read_text(),
                            re.M))
  problems = []
  for folder in ("dvbpr_tf", "datasets", "experiments", "benchmarks", "tools"):
    for path in (REPO / folder).rglob("*.py"):
      text = path.read_text()
      if "REFERENCE section" in text:
        problems.append(f"{path}: cites REFERENCE")
      for cited in re.findall(r"reproduction\.md (§\d)", text):
        if cited not in sections:
          problems.append(f"{path}: cites {cited}, not in docs/reproduction.md")
      if re.search(r"\b(issue|session) \d+\b", text, re.I):
        problems.append(f"{path}: project history in a comment")
  assert problems == []


def test_the_configuration_tree_imports_no_tensorflow():
  """The command line checks every flag against the tree before TensorFlow loads."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  done = subprocess.run(
      [sys.executable, "-c", "import sys, dvbpr_tf.config as c; c.preset('demo'); "
       "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"],
      capture_output=True, text=True, timeout=60, cwd=REPO, check=True)
  assert done.stdout.strip() == "[]", done.stdout
