"""The import graph of the project's own modules, read from the source (every `import` and
`from ... import`, also those inside functions), for the layout tests."""

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
# Source folder -> import name of its package.
ROOTS = {"dvbpr_tf": "dvbpr_tf", "experiments": "experiments", "datasets": "dvbpr_tf_datasets",
         "benchmarks": "benchmarks"}


def module_names() -> dict[str, pathlib.Path]:
  """Import name -> file, for every module of the project (tests excluded)."""
  names = {}
  for folder, package in ROOTS.items():
    for path in sorted((REPO / folder).rglob("*.py")):
      if "dummy_data" in path.parts:
        continue
      parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
      if parts[-1] == "__init__":
        parts = parts[:-1]
      names[".".join([package, *parts])] = path
  return names


def imports(path: pathlib.Path, known: set[str]) -> set[str]:
  """The project modules `path` imports (a `from package import module` counts as the
  module)."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      candidates = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      candidates = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
    else:
      continue
    for name in candidates:
      while name and name not in known:
        name = name.rpartition(".")[0]
      if name:
        found.add(name)
  return found


def graph() -> dict[str, set[str]]:
  names = module_names()
  known = set(names)
  return {name: imports(path, known) - {name} for name, path in names.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components with more than one module (Tarjan)."""
  index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

  def visit(node):
    index[node] = low[node] = counter[0]
    counter[0] += 1
    stack.append(node)
    on_stack.add(node)
    for other in sorted(edges.get(node, ())):
      if other not in index:
        visit(other)
        low[node] = min(low[node], low[other])
      elif other in on_stack:
        low[node] = min(low[node], index[other])
    if low[node] == index[node]:
      component = []
      while True:
        other = stack.pop()
        on_stack.discard(other)
        component.append(other)
        if other == node:
          break
      if len(component) > 1:
        out.append(sorted(component))

  for node in sorted(edges):
    if node not in index:
      visit(node)
  return out


if __name__ == "__main__":
  edges = graph()
  found = cycles(edges)
  print(f"{len(edges)} modules, {sum(map(len, edges.values()))} imports, {len(found)} cycles")
  for component in found:
    print("  cycle:", " <-> ".join(component))
