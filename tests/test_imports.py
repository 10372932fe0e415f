"""The package's import graph: built from the source with `ast`, every import counted, also
those inside functions (a cycle through a lazy import still couples two modules both ways).

The packages follow the flow, config -> data -> training -> results -> run -> study, and each may
import only the stages it builds on (ALLOWED); `regexp.cli` sits on top and nothing imports it."""

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = "regexp"
# Process-wide plumbing that any stage may import: the error types, the console filter, the
# quiet TensorFlow import, and the package root (its version).
BASE = {"regexp", "regexp.errors", "regexp.console", "regexp.tf_runtime"}
ALLOWED = {
    "config": set(),
    "data": {"config"},
    "results": {"config"},
    "training": {"config", "data", "results"},
    "study": {"config", "results"},
    "run": {"config", "data", "results", "training", "study"},
}
TOP = {"regexp.cli", "regexp.__main__"}  # the command line: may import every stage


def module_files() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name)."""
    modules = {}
    for path in sorted((REPO / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module `name` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from a import b` imports the submodule a.b when there is one, else a name from a.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in modules and target != name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a list of nodes (first repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "regexp.run.ray_backend" in graph["regexp.run.sweep"]  # imported inside make_executor only
    assert "regexp.run.executors" in graph["regexp.run.ray_backend"]


def test_no_module_of_the_package_imports_itself_back_through_others():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def stage(module: str) -> str | None:
    """The stage (package) a module belongs to; None for the base modules and the command line."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that goes against the flow, as 'importer -> imported'."""
    bad = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if target in TOP and module != "regexp.__main__":
                bad.append(f"{module} -> {target} (nothing imports the command line)")
                continue
            if module in TOP or target in BASE:
                continue
            mine, theirs = stage(module), stage(target)
            if mine is None:  # a base module importing a stage
                bad.append(f"{module} -> {target} (base modules import no stage)")
            elif theirs != mine and theirs not in ALLOWED[mine]:
                bad.append(f"{module} -> {target} ({mine} may import {sorted(ALLOWED[mine]) or 'no other stage'})")
    return bad


def test_every_module_belongs_to_a_stage_the_base_or_the_command_line():
    stray = [m for m in import_graph() if stage(m) is None and m not in BASE | TOP]
    assert stray == [], f"modules outside the stages: {stray}"


def test_the_layering_check_names_an_import_against_the_flow():
    graph = {
        "regexp.study.report": {"regexp.training.model", "regexp.results.store"},
        "regexp.results.store": {"regexp.config.schema"},
        "regexp.config.schema": {"regexp.cli"},
        "regexp.errors": {"regexp.run.runner"},
    }
    assert layering_violations(graph) == [
        "regexp.config.schema -> regexp.cli (nothing imports the command line)",
        "regexp.errors -> regexp.run.runner (base modules import no stage)",
        "regexp.study.report -> regexp.training.model (study may import ['config', 'results'])",
    ]


def test_each_stage_imports_only_the_stages_it_builds_on():
    assert layering_violations(import_graph()) == []
