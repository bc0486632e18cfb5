"""The package's module-level import graph has no cycle (a module can be imported on its own)."""

import ast
from pathlib import Path

import networkx as nx

import gridengine

ROOT = Path(gridengine.__file__).resolve().parent


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    p = ROOT.parent / name.replace(".", "/")
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def import_graph() -> nx.DiGraph:
    """Edges module -> gridengine module it imports at module level (imports inside functions are lazy)."""
    g = nx.DiGraph()
    for path in sorted(ROOT.rglob("*.py")):
        mod = _module(path)
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        g.add_node(mod)
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("gridengine"):
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    g.add_edge(mod, sub if _is_module(sub) else target)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("gridengine"):
                        g.add_edge(mod, alias.name)
    return g


def test_no_import_cycle():
    g = import_graph()
    assert len(g) > 20
    cycles = list(nx.simple_cycles(g))
    assert not cycles, cycles


def test_config_is_a_leaf():
    g = import_graph()
    inside = {m for m in g.successors("gridengine.config") if m.startswith("gridengine")}
    assert inside <= {"gridengine.errors", "gridengine._version"}, inside


def test_geocode_providers_named_once():
    from gridengine.config import GEOCODE_PROVIDERS
    from gridengine.geocode import _PROVIDERS

    assert tuple(_PROVIDERS) == GEOCODE_PROVIDERS
