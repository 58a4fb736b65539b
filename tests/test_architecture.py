"""The package stack imports downward only: every `moeplace` import (module level or inside a function),
read with `ast`, goes to a package in the same layer or a lower one, and no two packages import each other.

The order is written once, here, and drawn in docs/architecture.md.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import moeplace

ROOT = Path(moeplace.__file__).parent

# Lowest first. A module may import its own package and any package of its layer or below; packages of one
# layer must still not import each other both ways. Top-level modules count as packages of their own.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "version", "interrupts"),
    ("fileio",),
    ("topologies",),
    ("traces",),
    ("placement",),
    ("evaluation", "solvers"),
    ("peers",),
    ("costmodel",),
    ("launch", "report"),
    ("ep",),
    ("planner",),
    ("runmodel",),
    ("runtime",),
    ("api",),
    ("console",),
    ("commands",),
    ("cli", "__main__"),
    ("moeplace",),  # moeplace/__init__.py: the front door, above everything it re-exports
)
RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "moeplace"


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported moeplace module, line) for every import statement in the file, at any depth."""
    this = module_name(path)
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = this.split(".")[: None if is_package else -1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from moeplace import api` names a module; `from moeplace import solve` the front door itself
            names = [f"{target}.{a.name}" if target == "moeplace" and _is_module(a.name) else target
                     for a in node.names]
        else:
            continue
        out += [(n, node.lineno) for n in names if n == "moeplace" or n.startswith("moeplace.")]
    return out


def _is_module(name: str) -> bool:
    return (ROOT / f"{name}.py").is_file() or (ROOT / name / "__init__.py").is_file()


def package_edges() -> dict[tuple[str, str], list[str]]:
    """{(importer package, imported package): ["file:line -> module", ...]} across packages."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(ROOT.rglob("*.py")):
        src = package_of(module_name(path))
        for target, line in imports_of(path):
            dst = package_of(target)
            if dst != src:
                edges[(src, dst)].append(f"{path.relative_to(ROOT.parent)}:{line} -> {target}")
    return edges


def test_every_package_has_a_layer():
    found = {package_of(module_name(p)) for p in ROOT.rglob("*.py")}
    assert found - set(RANK) == set(), "add the new package to LAYERS (and docs/architecture.md)"
    assert set(RANK) - found == set(), "LAYERS names a package that no longer exists"


def upward(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    return [f"{where} ({src} is below {dst})" for (src, dst), lines in sorted(edges.items())
            if RANK[dst] > RANK[src] for where in lines]


def cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """One cycle (a path that ends where it starts) for each back edge of a depth-first walk."""
    graph: dict[str, list[str]] = defaultdict(list)
    for src, dst in sorted(edges):
        graph[src].append(dst)
    done: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in graph[node]:
            if nxt in path:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            visit(node, [node])
    return found


def test_imports_run_downward():
    assert upward(package_edges()) == []


def test_no_cycle_between_packages():
    assert cycles(package_edges()) == []


def test_the_checks_catch_what_they_are_for():
    """An upward arrow and a same-layer cycle are reported, so the two tests above can fail."""
    edges = {("topologies", "placement"): ["moeplace/topologies/x.py:3 -> moeplace.placement.problem"],
             ("launch", "report"): ["a"], ("report", "launch"): ["b"], ("placement", "topologies"): ["c"]}
    assert upward(edges) == ["moeplace/topologies/x.py:3 -> moeplace.placement.problem (topologies is below "
                             "placement)"]
    assert sorted(map(tuple, cycles(edges))) == [("launch", "report", "launch"),
                                                 ("placement", "topologies", "placement")]


def test_the_reader_sees_imports_inside_functions():
    """Lazy imports count: builder imports replication inside `build_problem`."""
    found = imports_of(ROOT / "placement" / "builder.py")
    assert "moeplace.placement.replication" in [t for t, _ in found]
    assert "moeplace.placement.replication" not in [
        n.module for n in ast.parse((ROOT / "placement" / "builder.py").read_text()).body
        if isinstance(n, ast.ImportFrom)]


def test_docs_draw_the_same_layers():
    """docs/architecture.md's table lists LAYERS, in order."""
    text = (ROOT.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = [line.split("|")[2] for line in text.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
    drawn = [tuple(name.strip("`/ ").removesuffix(".py").replace("moeplace/__init__", "moeplace")
                   for name in row.split(",")) for row in rows]
    assert drawn == list(LAYERS)


def flow_name_branches(path: Path, names: set[str]) -> list[str]:
    """`x == "chain"`, `flow != "ep"`, `flow in ("chain", "ep")`: comparisons against a flow's name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Compare):
            continue
        consts = [n.value for side in [node.left, *node.comparators] for n in ast.walk(side)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        if set(consts) & names:
            found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    return found


def test_no_flow_name_branch_outside_the_flows_package(monkeypatch):
    """What differs between flows is a field of `FlowModel` (the runtime reads `hidden_at`)."""
    from moeplace.placement.flows import FLOWS

    skip = (ROOT / "placement" / "flows",)
    found = [hit for p in sorted(ROOT.rglob("*.py")) if not any(p.is_relative_to(s) for s in skip)
             for hit in flow_name_branches(p, set(FLOWS))]
    assert found == []
    probe = ROOT / "placement" / "probe.py"           # the check sees one (a path inside the package)
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: 'if x.flow in ("a", "ep"):\n    pass\n')
    assert flow_name_branches(probe, set(FLOWS)) == ["moeplace/placement/probe.py:1"]
