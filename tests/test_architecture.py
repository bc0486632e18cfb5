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


def _private_imports() -> list[tuple[str, str, str]]:
    """(importing module, imported-from module, name) for every ``from X import _name`` in the package, at
    module level or inside a function, where ``_name`` is defined in X (importing a private *module*, such
    as ``from . import _kernels``, is allowed)."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        mod = _module(path)
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("gridengine"):
                continue
            for alias in node.names:
                name = alias.name
                if name.startswith("_") and not name.startswith("__") and not _is_module(f"{target}.{name}"):
                    found.append((mod, target, name))
    return found


#: Private names that modules still import from other modules, in the partition stage and the pipeline
#: only; every other module uses public names (a helper two modules share is public where it lives).
PRIVATE_IMPORTS_ALLOWED = {
    ("gridengine.partition.h3cells", "gridengine.partition.core", "_match_by_overlap"),
    *(("gridengine.partition.rerun", "gridengine.partition.core", n) for n in (
        "_allocate_grids", "_areas_and_bridges", "_csr", "_Graph", "_grow_region", "_quality_key",
        "_recursive_bisection", "_redraw_region", "_refine", "_tidy_empty_units")),
    ("gridengine.partition.rerun", "gridengine._kernels", "_connected_without"),
    *(("gridengine.partition.roster", "gridengine.partition.core", n) for n in (
        "_areas_and_bridges", "_csr", "_Graph", "_quality_key", "_recursive_bisection", "_refine",
        "_refine_portfolio", "_tidy_empty_units")),
    *(("gridengine.partition.roster", "gridengine.partition.rerun", n) for n in (
        "_flow_rebalance", "_flood_fill", "_keep_main_pieces")),
    ("gridengine.partition.roster", "gridengine._kernels", "_connected_without"),
}


def test_no_module_imports_another_modules_private_names():
    found = set(_private_imports())
    assert all(m == "gridengine.pipeline" or m.startswith("gridengine.partition.") for m, _, _ in PRIVATE_IMPORTS_ALLOWED)
    new = sorted(found - PRIVATE_IMPORTS_ALLOWED)
    assert not new, "import a public name instead (make the helper public where it is defined): " + "; ".join(
        f"{m} imports {n} from {t}" for m, t, n in new)


def test_the_private_import_check_sees_imports_inside_functions():
    found = _private_imports()
    # imported inside roster._repair
    assert ("gridengine.partition.roster", "gridengine.partition.rerun", "_flow_rebalance") in found
    assert not [f for f in found if f[1] == "gridengine" or f[2] in ("_kernels", "_dask", "_address")]
