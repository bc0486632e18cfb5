"""The package's module-level import graph has no cycle (a module can be imported on its own)."""

import ast
from pathlib import Path

import networkx as nx

import gridengine

ROOT = Path(gridengine.__file__).resolve().parent



def _import_target(node: ast.ImportFrom, pkg: str) -> str:
    """The module a ``from X import ...`` reads from, relative imports resolved against package ``pkg``."""
    if node.level:
        base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))
    return node.module or ""

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
                target = _import_target(node, pkg)
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


def _private_imports_in(source: str, mod: str, pkg: str) -> list[tuple[str, str, str]]:
    """(``mod``, imported-from module, name) for every ``from X import _name`` in ``source`` (module ``mod`` of
    package ``pkg``), at module level or inside a function, where ``_name`` is not itself a module of X
    (importing a private *module*, such as ``from . import _kernels``, is allowed)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        target = _import_target(node, pkg)
        if not target.startswith("gridengine"):
            continue
        for alias in node.names:
            name = alias.name
            if name.startswith("_") and not name.startswith("__") and not _is_module(f"{target}.{name}"):
                found.append((mod, target, name))
    return found


def _private_imports() -> list[tuple[str, str, str]]:
    """Every private-name import of the package's modules (see :func:`_private_imports_in`)."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        mod = _module(path)
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        found.extend(_private_imports_in(path.read_text(encoding="utf-8"), mod, pkg))
    return found


#: Private names a module may import from another: none (a helper two modules share is public where it
#: lives, or in a small private module of shared parts such as ``partition/_graph.py``).
PRIVATE_IMPORTS_ALLOWED: set[tuple[str, str, str]] = set()


def test_no_module_imports_another_modules_private_names():
    found = set(_private_imports())
    new = sorted(found - PRIVATE_IMPORTS_ALLOWED)
    assert not new, "import a public name instead (make the helper public where it is defined): " + "; ".join(
        f"{m} imports {n} from {t}" for m, t, n in new)


def test_the_private_import_check_sees_imports_inside_functions():
    source = "def repair():\n    from .rerun import _flow_rebalance, flow_rebalance\n    from . import _graph\n"
    found = _private_imports_in(source, "gridengine.partition.roster", "gridengine.partition")
    assert found == [("gridengine.partition.roster", "gridengine.partition.rerun", "_flow_rebalance")]
    found = _private_imports()
    assert not [f for f in found if f[1] == "gridengine" or f[2] in ("_kernels", "_dask", "_address")]


#: Modules that still write Earth constants of their own: GCJ-02's datum is defined on the Krasovsky
#: ellipsoid (a coordinate system, not a distance model); synth.py draws synthetic cities with the WGS-84
#: degree lengths (110.574 / 111.320 km), and every synthetic city depends on them; sites.py keeps its own
#: copy of the mean radius and of the haversine.
EARTH_CONSTANTS_ALLOWED = {"gridengine.geocode", "gridengine.synth", "gridengine.sites"}


def test_one_earth_model():
    """Earth radii and degree lengths are written once, in ``_geo.py``; other modules import them."""
    import re

    pattern = re.compile(r"\b(6_?371|6_?378|111[._]?32|110[._]?574)")
    found = sorted(_module(p) for p in ROOT.rglob("*.py")
                   if pattern.search(p.read_text(encoding="utf-8")) and _module(p) != "gridengine._geo")
    assert set(found) <= EARTH_CONSTANTS_ALLOWED, found
