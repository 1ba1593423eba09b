"""The layers, checked on the source: the foundation (core/) imports nothing above it; jobs/ only core/;
commands/ only core/ and jobs/; the composition (bot/) anything. No first-party import hides inside a
function, and the module graph has no cycle. Reading the code's AST takes milliseconds."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "jobs", "commands", "bot")
MAY_IMPORT = {"core": {"core"}, "jobs": {"core", "jobs"}, "commands": {"core", "jobs", "commands"},
              "bot": set(PACKAGES)}


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def first_party(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def imports(path: Path, mod: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for each first-party import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    top = set(map(id, tree.body))
    found = []
    is_pkg = path.name == "__init__.py"

    def walk(node, level_top: bool):
        for child in ast.iter_child_nodes(node):
            at_top = level_top and id(child) in top
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if first_party(alias.name):
                        found.append((alias.name, child.lineno, at_top))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (child.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                if first_party(base):
                    for alias in child.names:
                        sub = f"{base}.{alias.name}"
                        found.append((sub if sub in MODULES else base, child.lineno, at_top))
            elif isinstance(child, ast.If) and _type_checking(child):
                continue                      # annotations only: no import at run time
            else:
                walk(child, at_top and isinstance(child, (ast.If, ast.Try)))
    walk(tree, True)
    return found


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


MODULES = modules()
GRAPH = {mod: imports(path, mod) for mod, path in MODULES.items()}


def test_no_import_points_up_a_layer():
    wrong = [f"{mod}:{line} imports {target}" for mod, found in GRAPH.items() for target, line, _ in found
             if target.split(".")[0] not in MAY_IMPORT[mod.split(".")[0]]]
    assert wrong == []


def test_no_first_party_import_hides_inside_a_function():
    hidden = [f"{mod}:{line} imports {target}" for mod, found in GRAPH.items() for target, line, top in found
              if not top]
    assert hidden == []


def test_the_module_graph_has_no_cycle():
    edges = {mod: {t for t, _, _ in found if t in MODULES and t != mod} for mod, found in GRAPH.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]) if nxt in path else f"{node}->{nxt}")
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for mod in sorted(edges):
        if mod not in state:
            visit(mod, [mod])
    assert cycles == []


def test_the_checker_sees_the_layers():
    """The test itself would pass on an empty tree: make sure it read the real one."""
    assert {"core.config", "core.queue", "jobs.worker", "commands", "bot.app"} <= set(MODULES)
    assert ("core.config", ) and any(t == "core.queue" for t, _, _ in GRAPH["jobs.runtime"])
