import h3
import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
from shapely.geometry import box

from gridengine.cells import build_cells, cell_adjacency, haversine_km, points_to_cells, tile_service_area


def test_haversine_known_distance():
    # one degree of latitude is ~111.2 km
    assert abs(haversine_km(22.0, 114.0, 23.0, 114.0) - 111.19) < 0.05


def test_adjacency_matches_h3():
    c = h3i.latlng_to_cell(22.54, 114.06, 9)
    cells = np.array(sorted(h3i.grid_disk(c, 4)), dtype="uint64")
    a, b = cell_adjacency(cells)
    assert (a < b).all()
    pairs = set(zip(a.tolist(), b.tolist()))
    expect = {(i, j) for i in range(len(cells)) for j in range(i + 1, len(cells))
              if h3i.are_neighbor_cells(int(cells[i]), int(cells[j]))}
    assert pairs == expect


def test_buffer_tiling_contains_occupied_and_rings():
    c = h3i.latlng_to_cell(22.54, 114.06, 9)
    tiled = tile_service_area(np.array([c], dtype="uint64"), res=9, buffer_m=700)
    assert c in set(tiled.tolist())
    assert len(tiled) == len(h3i.grid_disk(c, 3))  # 700 m / (sqrt(3) * 200.8 m) -> 3 rings
    assert (np.diff(tiled.astype("float64")) > 0).all()


def test_build_cells_with_service_area_rejects_outside_and_tiles_empty_land():
    area = box(114.00, 22.50, 114.05, 22.55)
    df = pd.DataFrame({"customer_id": ["in1", "in2", "out"], "lat": [22.52, 22.521, 22.60],
                       "lon": [114.02, 114.021, 114.10], "workload": [1.0, 2.0, 1.0], "row": [1, 2, 3]})
    index, kept, rej = build_cells(df, res=9, service_area=area)
    assert kept["customer_id"].tolist() == ["in1", "in2"]
    assert rej["customer_id"].tolist() == ["out"] and rej["reason"].iat[0] == "outside the service area"
    assert index.cells["workload"].sum() == 3.0
    assert (index.cells["n_customers"] == 0).sum() > 100  # empty land is tiled too
    # every customer's cell is a cell of the tiling
    assert (index.cells["cell"].to_numpy()[index.customer_cell] == kept["cell"].to_numpy()).all()
    expect = points_to_cells(kept["lat"].to_numpy(), kept["lon"].to_numpy(), 9)
    assert (kept["cell"].to_numpy() == expect).all()
    assert h3.get_resolution(h3.int_to_str(int(index.cells["cell"].iat[0]))) == 9
