"""Road-graph travel: readers (GraphML, CSV), snapping, directed shortest paths, haversine."""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from gridengine.errors import InputError
from gridengine.travel import RoadGraph, haversine_km, read_road_graph, travel_matrix

LAT0, LON0 = 22.54, 114.06
SPACING_M = 200.0
SECONDS = 24.0  # per 200 m block (30 km/h)
DLAT = math.degrees(SPACING_M / 6371008.8)
DLON = DLAT / math.cos(math.radians(LAT0))


def lattice(n: int = 10) -> nx.MultiDiGraph:
    """An n x n street lattice (200 m blocks, every street two-way), node (i, j) at row i, column j."""
    g = nx.MultiDiGraph()
    for i in range(n):
        for j in range(n):
            g.add_node(f"{i}_{j}", y=LAT0 + i * DLAT, x=LON0 + j * DLON)
    for i in range(n):
        for j in range(n):
            for di, dj in ((0, 1), (1, 0)):
                if i + di < n and j + dj < n:
                    a, b = f"{i}_{j}", f"{i + di}_{j + dj}"
                    g.add_edge(a, b, length=SPACING_M, travel_time=SECONDS)
                    g.add_edge(b, a, length=SPACING_M, travel_time=SECONDS)
    return g


def node_xy(g: nx.Graph, *names: str) -> tuple[np.ndarray, np.ndarray]:
    return np.array([g.nodes[n]["y"] for n in names]), np.array([g.nodes[n]["x"] for n in names])


def write_graphml(g: nx.Graph, path: Path, *, as_strings: bool = False) -> Path:
    if as_strings:  # osmnx save_graphml writes every attribute as a string
        g = g.copy()
        for _, d in g.nodes(data=True):
            d.update({k: str(v) for k, v in d.items()})
        for *_, d in g.edges(data=True):
            d.update({k: str(v) for k, v in d.items()})
    nx.write_graphml(g, path)
    return path


def write_csv(g: nx.Graph, path: Path, *, time: bool = True) -> Path:
    """Edge list of ``g`` (directed arcs, each row one-way) plus ``<stem>_nodes.csv``."""
    rows = [{"u": a, "v": b, "length_m": d["length"], "oneway": 1,
             **({"travel_time_s": d["travel_time"]} if time else {})} for a, b, d in g.edges(data=True)]
    pd.DataFrame(rows).to_csv(path, index=False)
    pd.DataFrame([{"id": n, "lat": d["y"], "lon": d["x"]} for n, d in g.nodes(data=True)]).to_csv(
        path.with_name(f"{path.stem}_nodes.csv"), index=False)
    return path


def write_rows(path: Path, edges: str, nodes: str | None = None) -> Path:
    path.write_text(edges)
    if nodes is not None:
        path.with_name(f"{path.stem}_nodes.csv").write_text(nodes)
    return path


NODES_CSV = "id,lat,lon\nA,22.540,114.060\nB,22.541,114.060\nC,22.541,114.061\nD,22.540,114.061\n"


def random_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return LAT0 + rng.uniform(-0.5, 9.5, n) * DLAT, LON0 + rng.uniform(-0.5, 9.5, n) * DLON


def test_haversine_mode():
    m = travel_matrix([0.0, 10.0], [0.0, 20.0], [1.0, 0.0, 10.0], [0.0, 0.0, 20.0])
    assert m.shape == (2, 3) and m.dtype == np.float64
    assert m[0, 0] == pytest.approx(111.19, abs=0.01)
    assert m[0, 1] == 0.0 and m[1, 2] == 0.0
    assert m[1, 0] == pytest.approx(haversine_km(10.0, 20.0, 1.0, 0.0))
    assert travel_matrix(22.5, 114.0, [], []).shape == (1, 0)


def test_graphml_and_csv_readers_agree(tmp_path):
    g = lattice()
    graphs = [read_road_graph(write_graphml(g, tmp_path / "city.graphml")),
              read_road_graph(write_graphml(g, tmp_path / "osm.graphml", as_strings=True)),
              read_road_graph(write_csv(g, tmp_path / "city.csv"))]
    olat, olon = random_points(60, 1)
    dlat, dlon = random_points(40, 2)
    ms = [travel_matrix(olat, olon, dlat, dlon, graph=rg) for rg in graphs]
    for rg in graphs:
        assert rg.unit == "min" and rg.n_nodes == 100 and len(rg.src) == 360
    assert graphs[2].name == "city.csv"
    assert np.isfinite(ms[0]).all() and ms[0].shape == (60, 40)
    np.testing.assert_array_equal(ms[0], ms[1])
    np.testing.assert_allclose(ms[0], ms[2], rtol=1e-12)
    np.testing.assert_array_equal(ms[0], travel_matrix(olat, olon, dlat, dlon, graph=graphs[0]))  # deterministic


def test_manhattan_distance_and_time(tmp_path):
    g = lattice()
    path = write_graphml(g, tmp_path / "city.graphml")
    km, minutes = read_road_graph(path, weight="length"), read_road_graph(path)
    assert (km.unit, minutes.unit) == ("km", "min")
    lat, lon = node_xy(g, "0_0", "3_4", "9_9")
    m = travel_matrix(lat, lon, lat, lon, graph=km)
    assert m[0, 1] == pytest.approx(1.4, abs=1e-9) and m[1, 0] == pytest.approx(1.4, abs=1e-9)
    assert m[0, 2] == pytest.approx(3.6, abs=1e-9)
    assert np.diag(m).tolist() == [0.0, 0.0, 0.0]
    assert travel_matrix(lat, lon, lat, lon, graph=minutes)[0, 1] == pytest.approx(7 * SECONDS / 60, abs=1e-9)


def test_snap_legs_are_added_in_graph_units(tmp_path):
    path = write_graphml(lattice(), tmp_path / "city.graphml")
    south = 0.05 / 6371.0088 * 180 / math.pi  # 50 m south of node 0_0, outside the lattice
    olat, olon = [LAT0 - south], [LON0]
    dlat, dlon = [LAT0 + DLAT], [LON0 + DLON]  # node 1_1: two blocks away
    km = travel_matrix(olat, olon, dlat, dlon, graph=read_road_graph(path, weight="length"))
    assert km[0, 0] == pytest.approx(0.05 + 0.4, abs=1e-9)
    minutes = travel_matrix(olat, olon, dlat, dlon, graph=read_road_graph(path), snap_penalty_kmh=30.0)
    assert minutes[0, 0] == pytest.approx(0.05 / 30 * 60 + 2 * SECONDS / 60, abs=1e-9)


@pytest.mark.parametrize("fmt", ["graphml", "csv"])
def test_one_way_arc_makes_matrix_asymmetric(tmp_path, fmt):
    g = lattice(3)
    g.remove_edges_from([("0_1", "0_0")] * 1)  # 0_0 -> 0_1 stays; back is round the block
    rg = (read_road_graph(write_graphml(g, tmp_path / "c.graphml"), weight="length") if fmt == "graphml"
          else read_road_graph(write_csv(g, tmp_path / "c.csv"), weight="length"))
    lat, lon = node_xy(g, "0_0", "0_1")
    m = travel_matrix(lat, lon, lat, lon, graph=rg)
    assert m[0, 1] == pytest.approx(0.2, abs=1e-9)
    assert m[1, 0] == pytest.approx(0.6, abs=1e-9)


def test_csv_oneway_column_and_parallel_arcs(tmp_path):
    path = write_rows(tmp_path / "ring.csv",
                      "u,v,length_m,oneway\nA,B,100,1\nB,C,100,0\nC,D,100,\nD,A,100,0\nA,B,90,1\nA,B,500,0\n",
                      NODES_CSV)
    rg = read_road_graph(path)
    assert rg.unit == "km" and len(rg.src) == 8  # A->B kept once (cheapest), B->A from the 500 m row
    lat, lon = np.array([22.540, 22.541]), np.array([114.060, 114.060])
    m = travel_matrix(lat, lon, lat, lon, graph=rg)
    assert m[0, 1] == pytest.approx(0.09, abs=1e-12)
    assert m[1, 0] == pytest.approx(0.3, abs=1e-12)


def test_undirected_graphml_gives_arcs_both_ways(tmp_path):
    g = nx.Graph()
    g.add_node("a", y=22.54, x=114.06)
    g.add_node("b", y=22.55, x=114.06)
    g.add_edge("a", "b", length=1500.0)
    rg = read_road_graph(write_graphml(g, tmp_path / "u.graphml"))
    assert rg.unit == "km" and sorted(zip(rg.src.tolist(), rg.dst.tolist())) == [(0, 1), (1, 0)]
    m = travel_matrix([22.54, 22.55], [114.06, 114.06], [22.54, 22.55], [114.06, 114.06], graph=rg)
    np.testing.assert_allclose(m, [[0.0, 1.5], [1.5, 0.0]], atol=1e-12)


def test_disconnected_component_is_inf(tmp_path):
    g = lattice(3)
    far = LAT0 + 0.05  # about 5.5 km north
    g.add_node("p", y=far, x=LON0)
    g.add_node("q", y=far, x=LON0 + 0.003)
    g.add_edge("p", "q", length=300.0, travel_time=30.0)
    g.add_edge("q", "p", length=300.0, travel_time=30.0)
    rg = read_road_graph(write_graphml(g, tmp_path / "c.graphml"), weight="length")
    lat, lon = np.array([LAT0, far, far]), np.array([LON0, LON0, LON0 + 0.003])
    m = travel_matrix(lat, lon, lat, lon, graph=rg)
    assert np.isinf(m[0, 1]) and np.isinf(m[2, 0]) and m[1, 2] == pytest.approx(0.3)


@pytest.mark.parametrize("n_orig", [3, 40])  # fewer or more distinct origin nodes than destination nodes
def test_matches_networkx_on_weighted_directed_graph(tmp_path, n_orig):
    g = lattice(6)
    rng = np.random.default_rng(7)
    for *_, d in g.edges(data=True):
        d["length"] = float(rng.uniform(50, 400))
    g.remove_edges_from([("2_2", "2_3"), ("3_3", "2_3"), ("1_4", "1_3")])
    rg = read_road_graph(write_graphml(g, tmp_path / "w.graphml"), weight="length")
    names = sorted(g.nodes)
    oi, di = rng.choice(len(names), n_orig), rng.choice(len(names), 12)
    olat, olon = node_xy(g, *[names[i] for i in oi])
    dlat, dlon = node_xy(g, *[names[i] for i in di])
    m = travel_matrix(olat, olon, dlat, dlon, graph=rg)
    dist = dict(nx.all_pairs_dijkstra_path_length(g, weight="length"))
    want = np.array([[dist[names[a]].get(names[b], np.inf) / 1000 for b in di] for a in oi])
    np.testing.assert_allclose(m, want, rtol=1e-12, atol=1e-12)


def test_weight_selection(tmp_path):
    g = lattice(3)
    assert read_road_graph(write_csv(g, tmp_path / "t.csv")).unit == "min"
    assert read_road_graph(tmp_path / "t.csv", weight="length").unit == "km"
    assert read_road_graph(write_csv(g, tmp_path / "n.csv", time=False)).unit == "km"
    path = write_rows(tmp_path / "gap.csv", "u,v,length_m,travel_time_s\nA,B,100,10\nB,C,100,\n", NODES_CSV)
    assert read_road_graph(path).unit == "km"  # travel time not on every edge
    with pytest.raises(InputError) as err:
        read_road_graph(path, weight="travel_time")
    assert (err.value.row, err.value.field) == (2, "travel_time_s")
    with pytest.raises(InputError, match="travel_time_s"):
        read_road_graph(tmp_path / "n.csv", weight="travel_time")
    with pytest.raises(ValueError, match="weight"):
        read_road_graph(tmp_path / "n.csv", weight="speed")


@pytest.mark.parametrize(
    ("edges", "nodes", "bad_file", "row", "field"),
    [
        ("u,v,length\nA,B,100\n", NODES_CSV, "roads.csv", None, "length_m"),
        ("u,length_m\nA,100\n", NODES_CSV, "roads.csv", None, "v"),
        ("u,v,length_m\nA,B,100\nB,C,100\nC,D,-5\n", NODES_CSV, "roads.csv", 3, "length_m"),
        ("u,v,length_m\nA,B,100\nB,C,abc\n", NODES_CSV, "roads.csv", 2, "length_m"),
        ("u,v,length_m\nA,B,100\nB,Z,100\n", NODES_CSV, "roads.csv", 2, "v"),
        ("u,v,length_m\nA,B,100\nY,C,100\n", NODES_CSV, "roads.csv", 2, "u"),
        ("u,v,length_m,travel_time_s\nA,B,100,-1\n", NODES_CSV, "roads.csv", 1, "travel_time_s"),
        ("u,v,length_m,oneway\nA,B,100,2\n", NODES_CSV, "roads.csv", 1, "oneway"),
        ("u,v,length_m\nA,B,100\n", "id,lat,lon\nA,22.54,114.06\nB,95,114.06\n", "roads_nodes.csv", 2, "lat"),
        ("u,v,length_m\nA,B,100\n", "id,lat,lon\nA,22.54,114.06\nA,22.55,114.06\n", "roads_nodes.csv", 2, "id"),
        ("u,v,length_m\nA,B,100\n", "id,lat\nA,22.54\n", "roads_nodes.csv", None, "lon"),
        ("u,v,length_m\n", NODES_CSV, "roads.csv", None, None),
        ("u,v,length_m\nA,A,100\n", NODES_CSV, "roads.csv", None, None),
        ("u,v,length_m\nA,B,100\n", None, "roads.csv", None, None),
    ],
)
def test_bad_csv_names_file_row_and_column(tmp_path, edges, nodes, bad_file, row, field):
    path = write_rows(tmp_path / "roads.csv", edges, nodes)
    with pytest.raises(InputError) as err:
        read_road_graph(path)
    e = err.value
    assert Path(e.path).name == bad_file and bad_file in str(e)
    assert (e.row, e.field) == (row, field)
    if row is not None:
        assert f"row {row}" in str(e) and f"'{field}'" in str(e)


def test_bad_graphml_and_missing_files(tmp_path):
    g = lattice(2)
    g.nodes["0_1"].pop("y")
    with pytest.raises(InputError, match="0_1.*y") as err:
        read_road_graph(write_graphml(g, tmp_path / "nolat.graphml"))
    assert err.value.field == "y" and "nolat.graphml" in str(err.value)
    g = lattice(2)
    g["0_0"]["0_1"][0]["length"] = "far"
    with pytest.raises(InputError, match="not a number") as err:
        read_road_graph(write_graphml(g, tmp_path / "badlen.graphml"), weight="length")
    assert err.value.field == "length"
    empty = nx.DiGraph()
    empty.add_node("a", y=22.5, x=114.0)
    with pytest.raises(InputError, match="no edges"):
        read_road_graph(write_graphml(empty, tmp_path / "empty.graphml"))
    (tmp_path / "junk.graphml").write_text("<graphml><graph")
    with pytest.raises(InputError, match="junk.graphml"):
        read_road_graph(tmp_path / "junk.graphml")
    with pytest.raises(InputError, match="not found"):
        read_road_graph(tmp_path / "absent.graphml")
    (tmp_path / "roads.shp").write_text("")
    with pytest.raises(InputError, match="unsupported"):
        read_road_graph(tmp_path / "roads.shp")


def test_argument_checks():
    rg = RoadGraph(np.array([22.5, 22.51]), np.array([114.0, 114.0]), np.array([0]), np.array([1]),
                   np.array([1.0]), "km", "mem")
    assert travel_matrix([], [], [22.5], [114.0], graph=rg).shape == (0, 1)
    with pytest.raises(ValueError, match="equal length"):
        travel_matrix([22.5, 22.6], [114.0], [22.5], [114.0])
    with pytest.raises(ValueError, match="NaN"):
        travel_matrix([np.nan], [114.0], [22.5], [114.0], graph=rg)
    with pytest.raises(ValueError, match="snap_penalty_kmh"):
        travel_matrix([22.5], [114.0], [22.5], [114.0], graph=rg, snap_penalty_kmh=0.0)
    with pytest.raises(ValueError, match="costs"):
        RoadGraph(rg.node_lat, rg.node_lon, rg.src, rg.dst, np.array([-1.0]), "km", "mem")


def test_parallel_graphml_edges_and_zero_cost_arcs(tmp_path):
    g = nx.MultiDiGraph()
    for name, lat in (("a", 22.540), ("b", 22.541), ("c", 22.542)):
        g.add_node(name, y=lat, x=114.06)
    g.add_edge("a", "b", length=900.0)
    g.add_edge("a", "b", length=0.0)  # zero-length arc (e.g. a bridge split): still an arc
    g.add_edge("b", "c", length=250.0)
    g.add_edge("c", "a", length=400.0)
    rg = read_road_graph(write_graphml(g, tmp_path / "p.graphml"))
    assert len(rg.src) == 3 and rg.cost.min() == 0.0
    lat, lon = node_xy(g, "a", "b", "c")
    want = np.array([[0.0, 0.0, 0.25], [0.65, 0.0, 0.25], [0.4, 0.4, 0.0]])
    np.testing.assert_allclose(travel_matrix(lat, lon, lat, lon, graph=rg), want, atol=1e-12)
    # more distinct origins than destinations: computed on the reversed arcs
    np.testing.assert_allclose(travel_matrix(lat, lon, lat[:1], lon[:1], graph=rg), want[:, :1], atol=1e-12)
    np.testing.assert_allclose(travel_matrix(lat[:1], lon[:1], lat, lon, graph=rg), want[:1], atol=1e-12)


def test_osmnx_style_graphml_fixture():
    """String-typed attributes, parallel keyed edges and a one-way street, as osmnx writes them."""
    path = Path(__file__).resolve().parent / "data" / "roads" / "osmnx_small.graphml"
    km, minutes = read_road_graph(path, weight="length"), read_road_graph(path)
    assert (km.unit, minutes.unit, km.n_nodes, len(km.src)) == ("km", "min", 4, 7)
    lat, lon = np.array([22.54, 22.54, 22.541, 22.541]), np.array([114.06, 114.061, 114.061, 114.06])
    m = travel_matrix(lat, lon, lat, lon, graph=km)
    assert m[0, 1] == pytest.approx(0.1031, abs=1e-12)  # the cheaper of the two parallel edges
    assert m[0, 2] == pytest.approx(0.2143, abs=1e-12)
    assert m[2, 1] == pytest.approx(0.3262, abs=1e-12)  # 102 -> 103 is one-way: back round the block
    assert travel_matrix(lat[:1], lon[:1], lat[2:3], lon[2:3], graph=minutes)[0, 0] == pytest.approx(22.4 / 60)
