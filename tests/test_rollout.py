"""National rollout on Dask (issue 8): a real LocalCluster, failure isolation, resume, summary."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gridengine.cells import _points_to_cells_loop, points_to_cells
from gridengine.errors import ConfigError
from gridengine.rollout import SUMMARY_COLUMNS, RolloutSpec, rollout, split_national
from gridengine.synth import generate_city, generate_nation, nation_city_sizes, write_city

pytest.importorskip("distributed")

CITIES = {"north": (3000, (31.23, 121.47)), "south": (2500, (23.13, 113.26)), "east": (2000, (30.27, 120.15))}


def _write_cities(root: Path, bad: str | None = None) -> Path:
    """Three small cities as files, and their rollout TOML (resolution 8 keeps the tests quick)."""
    lines = ['out = "out"', "", "[config]", "seed = 0", "[config.partition]", "capacity = 1000.0",
             "[config.cells]", "resolution = 8", ""]
    for i, (name, (n, centre)) in enumerate(CITIES.items()):
        city = generate_city(n, seed=i, center=centre)
        paths = write_city(city, root / name)
        if name == bad:  # a roster without the capacity column: this city fails, alone
            city.specialists.drop(columns=["capacity"]).to_csv(paths["specialists"], index=False)
        lines += ["[[city]]", f'name = "{name}"', f'customers = "{name}/customers.csv"',
                  f'specialists = "{name}/specialists.csv"', f'service_area = "{name}/service_area.geojson"']
        if name == "east":
            lines.append("capacity = 900.0  # a per-city override")
        lines.append("")
    spec = root / "rollout.toml"
    spec.write_text("\n".join(lines), encoding="utf-8")
    return spec


def test_three_cities_on_a_local_cluster_one_bad_then_resume_and_rerun(tmp_path):
    spec = _write_cities(tmp_path, bad="south")
    log = io.StringIO()
    res = rollout(spec, n_workers=2, progress="lines", stream=log)
    out = tmp_path / "out"
    assert res.out == out and res.n_workers == 2 and res.scheduler.startswith("tcp://")
    # failure isolation: the bad city fails with its message, the others finish
    assert sorted(res.planned) == ["east", "north"]
    assert list(res.failed) == ["south"]
    assert "capacity" in res.failed["south"] and "specialists.csv" in res.failed["south"]
    for name in ("north", "east"):
        assert (out / "cities" / name / "manifest.json").is_file()
    assert not (out / "cities" / "south").exists()
    assert not [p for p in (out / "cities").iterdir() if p.name.startswith(".")]  # no temporary leftovers
    text = log.getvalue()
    assert "south: FAILED" in text and "north: planned" in text
    # the per-city override reached the plan
    man = json.loads((out / "cities" / "east" / "manifest.json").read_text())
    assert man["config"]["partition"]["capacity"] == 900.0 and man["config"]["cells"]["resolution"] == 8

    # the national summary: per city and a total
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False, na_values=[""])
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert summary["city"].tolist() == ["north", "south", "east", "TOTAL"]
    assert summary["status"].tolist()[:3] == ["planned", "failed", "planned"]
    by = summary.set_index("city")
    assert by.at["north", "customers"] == 3000 and by.at["east", "customers"] == 2000
    assert by.at["TOTAL", "customers"] == 5000
    assert by.at["TOTAL", "grids"] == by.at["north", "grids"] + by.at["east", "grids"]
    assert by.at["TOTAL", "specialists_missing"] == by.at["north", "specialists_missing"] + by.at["east", "specialists_missing"]
    assert by.at["TOTAL", "balance_max_dev"] == max(by.at["north", "balance_max_dev"], by.at["east", "balance_max_dev"])
    assert by.at["TOTAL", "status"] == "2 planned, 0 skipped, 1 failed"
    assert "capacity" in by.at["south", "message"]
    assert res.table().splitlines()[-1].startswith("failed: south:")

    # fix the bad city, change one good city's input: unchanged is skipped, changed re-plans from its plan
    gen = generate_city(2500, seed=1, center=CITIES["south"][1])
    gen.specialists.to_csv(tmp_path / "south" / "specialists.csv", index=False)
    cust = pd.read_csv(tmp_path / "north" / "customers.csv", dtype=str, keep_default_na=False)
    cust.iloc[:2900].to_csv(tmp_path / "north" / "customers.csv", index=False)  # 100 customers left
    before = (out / "cities" / "east" / "manifest.json").stat().st_mtime_ns
    res2 = rollout(spec, n_workers=2, progress=False)
    assert res2.ok
    assert res2.skipped == ["east"] and sorted(res2.planned) == ["north", "south"]
    assert (out / "cities" / "east" / "manifest.json").stat().st_mtime_ns == before
    s2 = res2.summary.set_index("city")
    assert s2.at["north", "customers"] == 2900
    assert 0.0 <= s2.at["north", "churn"] <= 1.0  # re-planned from its previous plan: churn reported
    assert np.isnan(s2.at["south", "churn"])      # first plan of the city
    assert s2.at["TOTAL", "customers"] == 2900 + 2500 + 2000
    assert s2.at["TOTAL", "status"] == "2 planned, 1 skipped, 0 failed"


def _complete(out: Path) -> list[str]:
    """Cities with a complete plan folder (hidden temporary folders are not plans)."""
    d = out / "cities"
    return sorted(p.parent.name for p in d.glob("*/manifest.json") if not p.parent.name.startswith(".")) \
        if d.is_dir() else []


def test_resume_after_a_killed_rollout(tmp_path):
    spec = _write_cities(tmp_path)
    out = tmp_path / "out"
    # east's customers file is a named pipe nobody writes to: planning east blocks on reading it, so the
    # rollout is always caught with north and south planned and east running, however fast the machine
    east = tmp_path / "east" / "customers.csv"
    east_rows = east.read_bytes()
    east.unlink()
    os.mkfifo(east)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    err = tmp_path / "stderr.txt"
    with open(err, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "gridengine", "rollout", str(spec), "--workers", "1", "-q"],
                                cwd=tmp_path, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=fh)
    try:
        guard = time.monotonic() + 600  # only against a hang: east cannot finish, so the wait ends on the files
        while len(_complete(out)) < 2 and proc.poll() is None and time.monotonic() < guard:
            time.sleep(0.2)
        assert proc.poll() is None, err.read_text()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the rollout, its scheduler and its workers, mid-run
        except ProcessLookupError:
            pass
        proc.wait()
    complete = _complete(out)
    assert complete == ["north", "south"]  # the largest cities first, one worker
    east.unlink()
    east.write_bytes(east_rows)
    # no half-written city: every city folder is a complete plan (temporary folders are hidden)
    for d in (out / "cities").iterdir():
        assert d.name.startswith(".") or (d / "manifest.json").is_file()
    assert not (out / "summary.csv").exists()
    # a leftover of an interrupted write, as a kill during a plan's write leaves it
    stale = out / "cities" / ".east.tmp-leftover"
    stale.mkdir(exist_ok=True)
    (stale / "grids.parquet").write_bytes(b"partial")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))

    res = rollout(spec, n_workers=2, progress=False)
    assert res.ok
    assert sorted(res.skipped) == complete
    assert sorted(res.planned) == sorted(set(CITIES) - set(complete))
    assert not [p for p in (out / "cities").iterdir() if p.name.startswith(".")]
    statuses = pd.read_csv(out / "summary.csv")["status"].tolist()
    assert statuses[:3] == ["skipped" if c in complete else "planned" for c in CITIES]
    assert statuses[3] == f"{3 - len(complete)} planned, {len(complete)} skipped, 0 failed"


def test_split_national_streams_cities_and_ignores_unknown(tmp_path):
    rows = []
    for i, (name, n) in enumerate((("alpha", 500), ("beta", 300))):
        c = generate_city(max(n, 100), seed=i).customers.iloc[:n]
        rows.append(c.assign(city=name))
    other = rows[0].iloc[:7].assign(city="gamma")
    national = pd.concat([rows[0].iloc[:250], rows[1], other, rows[0].iloc[250:]], ignore_index=True)
    path = tmp_path / "national.parquet"
    pq.write_table(pa.Table.from_pandas(national, preserve_index=False), path, row_group_size=200)
    counts = split_national(path, tmp_path / "work", cities=["alpha", "beta"], batch_rows=128)
    assert counts == {"alpha": 500, "beta": 300}
    alpha = pd.read_parquet(tmp_path / "work" / "alpha" / "customers.parquet")
    assert "city" not in alpha.columns
    pd.testing.assert_frame_equal(alpha, rows[0].drop(columns=["city"]).reset_index(drop=True), check_dtype=False)
    assert not (tmp_path / "work" / "gamma").exists()
    # deterministic bytes: an unchanged city keeps its file hash (its plan is then not redone)
    first = (tmp_path / "work" / "beta" / "customers.parquet").read_bytes()
    split_national(path, tmp_path / "work", cities=["alpha", "beta"], batch_rows=128)
    assert (tmp_path / "work" / "beta" / "customers.parquet").read_bytes() == first
    # CSV: every column stays text, as the CSV reader would see it
    national.to_csv(tmp_path / "national.csv", index=False)
    counts = split_national(tmp_path / "national.csv", tmp_path / "csv", batch_rows=128)
    assert counts == {"alpha": 500, "beta": 300, "gamma": 7}
    beta = pd.read_parquet(tmp_path / "csv" / "beta" / "customers.parquet")
    assert beta["lat"].dtype != np.float64 and len(beta) == 300


def test_spec_errors_name_the_file_and_key(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('[[city]]\nname = "a"\ncustomers = "a.csv"\ncapacty = 5\n')
    with pytest.raises(ConfigError, match=r"r\.toml: city 'a': unknown key\(s\) capacty"):
        RolloutSpec.from_toml(p)
    p.write_text('[[city]]\nname = "a/b"\ncustomers = "a.csv"\n')
    with pytest.raises(ConfigError, match="cannot be a folder name"):
        RolloutSpec.from_toml(p)
    p.write_text('[[city]]\nname = "a"\n')
    with pytest.raises(ConfigError, match="no customers file"):
        RolloutSpec.from_toml(p)
    p.write_text('[[city]]\nname = "a"\ncustomers = "a.csv"\ncapacity = -1.0\n')
    with pytest.raises(ConfigError, match="partition.capacity"):
        RolloutSpec.from_toml(p)
    p.write_text('customers = "n.parquet"\n[config.partition]\ncapacity = 800\n[[city]]\nname = "x"\nk = 4\n')
    s = RolloutSpec.from_toml(p)
    assert s.customers == tmp_path / "n.parquet" and s.cities[0].config.partition.k == 4
    assert s.cities[0].config.partition.capacity == 800.0


def test_national_generator_sizes_and_layout(tmp_path):
    sizes = nation_city_sizes()
    assert len(sizes) == 51 and sizes.sum() == 30_000_000
    assert 2_000_000 <= sizes[0] <= 3_500_000 and (sizes >= 1_000_000).sum() >= 4
    assert ((sizes >= 100_000) & (sizes <= 600_000)).sum() >= 25
    info = generate_nation(tmp_path, total=6000, n_cities=3, seed=2, layout="national")
    table = pq.read_table(info["customers"])
    assert table.num_rows == 6000 and set(table.column("city").to_pylist()) == set(info["cities"])
    assert len(set(table.column("customer_id").to_pylist())) == 6000  # ids unique nationally
    spec = RolloutSpec.from_toml(info["spec"])
    assert spec.customers == info["customers"] and [c.name for c in spec.cities] == list(info["cities"])
    assert all(c.customers is None and c.specialists.is_file() for c in spec.cities)


def test_vectorised_h3_indexing_matches_h3_py():
    rng = np.random.default_rng(0)
    lat = np.r_[rng.uniform(-89.9, 89.9, 20000), 22.5 + rng.normal(0, 0.1, 20000)]
    lon = np.r_[rng.uniform(-180, 180, 20000), 114.0 + rng.normal(0, 0.1, 20000)]
    for res in (0, 7, 9, 12, 15):
        np.testing.assert_array_equal(points_to_cells(lat, lon, res), _points_to_cells_loop(lat, lon, res))
    assert points_to_cells(np.zeros(0), np.zeros(0), 9).dtype == np.uint64
