"""Adaptive resolution, barriers and zones in the cell stage."""

import h3
import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
from shapely.geometry import LineString, box

from gridengine.cells import build_cells, cell_adjacency, cell_to_parent_vec, cells_to_polygon


def customers(lat, lon, w=None):
    n = len(lat)
    return pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "lat": lat, "lon": lon,
                         "workload": np.ones(n) if w is None else w, "row": np.arange(1, n + 1)})


def test_vectorised_parent_matches_h3():
    rng = np.random.default_rng(0)
    cells = np.array([h3i.latlng_to_cell(22.5 + a, 114 + b, 13) for a, b in rng.random((50, 2)) / 10], dtype="uint64")
    for r in range(0, 13):
        assert cell_to_parent_vec(cells, r).tolist() == [h3i.cell_to_parent(int(c), r) for c in cells]


def test_dense_cells_are_refined_until_light_enough():
    rng = np.random.default_rng(1)
    # a dense core: 3000 customers spread over ~300 m, plus a sparse ring
    lat = np.r_[22.54 + rng.normal(0, 0.0015, 3000), 22.54 + rng.normal(0, 0.02, 500)]
    lon = np.r_[114.06 + rng.normal(0, 0.0015, 3000), 114.06 + rng.normal(0, 0.02, 500)]
    df = customers(lat, lon)
    index, kept, _ = build_cells(df, res=9, max_cell_workload=60, max_refine=3)
    res = np.array([h3.get_resolution(h3.int_to_str(int(c))) for c in index.cells["cell"]])
    assert res.min() == 9 and res.max() > 9
    heavy = index.cells["workload"] > 60
    assert (res[heavy.to_numpy()] == 12).all()  # only cells already at the finest allowed level stay heavy
    # every customer sits in exactly one cell of the tiling, and that cell is an ancestor-or-self of its point
    assert index.cells["workload"].sum() == len(df)
    cell_of = index.cells["cell"].to_numpy()[index.customer_cell]
    fine = np.array([h3i.latlng_to_cell(a, b, 12) for a, b in zip(kept["lat"], kept["lon"])], dtype="uint64")  # res + max_refine
    r_of = np.array([h3i.get_resolution(int(c)) for c in cell_of])
    assert all(h3i.cell_to_parent(int(f), int(r)) == int(c) for f, r, c in zip(fine, r_of, cell_of))
    # no cell of the tiling is the ancestor of another (no overlap by index)
    cells = set(index.cells["cell"].tolist())
    for c, r in zip(index.cells["cell"].tolist(), res):
        for rr in range(9, int(r)):
            assert h3i.cell_to_parent(int(c), rr) not in cells
    # the mixed tiling is one connected piece, as the land is
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components
    n = len(index.cells)
    a, b = index.edges
    assert connected_components(csr_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)[0] == 1


def test_single_point_is_not_refined_pointlessly():
    df = customers(np.full(500, 22.54), np.full(500, 114.06))
    index, _, _ = build_cells(df, res=9, max_cell_workload=50, max_refine=3, buffer_m=300)
    assert index.cells["workload"].max() == 500
    assert {h3.get_resolution(h3.int_to_str(int(c))) for c in index.cells["cell"]} == {9}


def test_mixed_adjacency_links_fine_cells_to_coarse_neighbours():
    c = h3i.latlng_to_cell(22.54, 114.06, 9)
    ring = [x for x in h3i.grid_disk(c, 1) if x != c]
    cells = np.array(sorted(ring + h3i.cell_to_children(c, 10)), dtype="uint64")
    a, b = cell_adjacency(cells)
    pos = {int(v): i for i, v in enumerate(cells.tolist())}
    children = [pos[x] for x in h3i.cell_to_children(c, 10)]
    linked = {(i, j) for i, j in zip(a.tolist(), b.tolist())}
    # every coarse neighbour touches at least one child
    for nb in ring:
        j = pos[nb]
        assert any((min(i, j), max(i, j)) in linked for i in children)


def test_polygon_of_mixed_cells_has_no_slivers():
    c = h3i.latlng_to_cell(22.54, 114.06, 9)
    ring = [h3.int_to_str(x) for x in h3i.grid_disk(c, 1) if x != c]
    kids = [h3.int_to_str(x) for x in h3i.cell_to_children(c, 10)]
    poly = cells_to_polygon(ring + kids)
    assert poly.geom_type == "Polygon" and len(poly.interiors) == 0


def test_barrier_line_cuts_adjacency_and_zones_separate():
    rng = np.random.default_rng(2)
    lat = 22.54 + rng.uniform(-0.01, 0.01, 400)
    lon = 114.06 + rng.uniform(-0.01, 0.01, 400)
    df = customers(lat, lon)
    river = LineString([(114.00, 22.54), (114.12, 22.54)])  # west-east through the middle (lon, lat)
    index, kept, _ = build_cells(df, res=9, buffer_m=400, barriers=river)
    assert index.n_barrier_cuts > 0
    # a cell's side is its customers' side (one per cell: straddling cells are split finer), else its centre's
    north = index.cells["lat"].to_numpy() > 22.54
    cust_north = kept["lat"].to_numpy() > 22.54
    assert pd.Series(cust_north).groupby(index.customer_cell).nunique().max() == 1
    north[index.customer_cell] = cust_north
    a, b = index.edges
    assert not np.any(north[a] != north[b])  # no edge crosses the line
    zones = [box(113.9, 22.3, 114.06, 22.8), box(114.06, 22.3, 114.3, 22.8)]
    index2, kept2, _ = build_cells(df, res=9, buffer_m=400, zones=zones)
    zone = index2.cells["zone"].to_numpy()
    assert (zone[index2.customer_cell] == (kept2["lon"].to_numpy() > 114.06)).all()  # each customer's own zone
    a, b = index2.edges
    assert not np.any(zone[a] != zone[b])


def test_barrier_polygon_drops_empty_cells_keeps_customers():
    df = customers(np.array([22.54, 22.545]), np.array([114.06, 114.061]))
    lake = box(114.055, 22.535, 114.065, 22.5435)  # holds the first customer
    index, kept, _ = build_cells(df, res=9, buffer_m=600, barriers=lake)
    lat_c, lon_c = index.cells["lat"].to_numpy(), index.cells["lon"].to_numpy()
    inside = (lon_c > 114.055) & (lon_c < 114.065) & (lat_c > 22.535) & (lat_c < 22.5435)
    assert (index.cells["n_customers"].to_numpy()[inside] > 0).all()
    assert len(kept) == 2
