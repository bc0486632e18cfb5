"""The CLI end to end on the sample city, in-process (main(argv) -> exit code) and as a subprocess."""

import json
import subprocess
import sys

import pytest

from gridengine.cli import main


def plan_args(paths, out, *extra):
    return ["plan", "--customers", str(paths["customers"]), "--specialists", str(paths["specialists"]),
            "--service-area", str(paths["service_area"]), "--out", str(out), *extra]


def test_plan_end_to_end_subprocess(sample_paths, tmp_path):
    out = tmp_path / "sample"
    r = subprocess.run([sys.executable, "-m", "gridengine", *plan_args(sample_paths, out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "coverage         100.00%" in r.stdout and f"plan written to {out}" in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["coverage"] == 1.0 and m["capacity_violations"] == 0 and m["contiguous_share"] == 1.0


def test_existing_plan_not_overwritten_without_force(sample_paths, sample_plan_dir, capsys):
    before = (sample_plan_dir / "manifest.json").read_bytes()
    assert main(plan_args(sample_paths, sample_plan_dir)) == 2
    err = capsys.readouterr().err
    assert "already holds files" in err and "--force" in err
    assert (sample_plan_dir / "manifest.json").read_bytes() == before


def one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("gridengine: error: ")
    return err[0]


@pytest.mark.parametrize("content, needles", [
    ("customer_id,lat\nA,22.5\n", ["bad.csv", "required column 'lon' is missing"]),
    ("customer_id,lat,lon\nA,x,114\nB,y,114\n", ["bad.csv", "2 of 2 rows", "first at row 1",
                                                 "column 'lat': value 'x' is not a number"]),
])
def test_bad_customers_exit_2_with_file_row_column(sample_paths, tmp_path, capsys, content, needles):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    paths = dict(sample_paths, customers=bad)
    assert main(plan_args(paths, tmp_path / "out")) == 2
    line = one_line_error(capsys)
    for n in needles:
        assert n in line
    assert not (tmp_path / "out").exists()


def test_bad_specialist_exit_2(sample_paths, tmp_path, capsys):
    bad = tmp_path / "spec.csv"
    bad.write_text("specialist_id,lat,lon,capacity\nS1,22.5,114.0,1000\nS1,22.6,114.0,1000\n")
    assert main(plan_args(dict(sample_paths, specialists=bad), tmp_path / "out")) == 2
    line = one_line_error(capsys)
    assert "spec.csv: row 2: duplicate specialist_id 'S1' (first at row 1)" in line


def test_bad_config_exit_2(sample_paths, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[partition]\ncapcity = 10\n")
    assert main(plan_args(sample_paths, tmp_path / "out", "--config", str(cfg))) == 2
    assert "c.toml: unknown key(s) in [partition]: capcity" in one_line_error(capsys)


def test_rejected_rows_do_not_stop_the_run(sample_paths, tmp_path, capsys):
    import pandas as pd

    df = pd.read_csv(sample_paths["customers"], dtype=str, keep_default_na=False)
    df.loc[3, "lat"] = "not-a-number"
    df = pd.concat([df, df.iloc[[10]]])  # an identical duplicate
    f = tmp_path / "c.csv"
    df.to_csv(f, index=False)
    assert main(plan_args(dict(sample_paths, customers=f), tmp_path / "out", "-q")) == 0
    rej = pd.read_csv(tmp_path / "out" / "rejects.csv")
    assert "column 'lat': value 'not-a-number' is not a number" in set(rej["reason"])
    assert any(r.startswith("duplicate of row 11") for r in rej["reason"])


def test_synth_command(tmp_path, capsys):
    assert main(["synth", "--customers", "500", "--seed", "3", "--out", str(tmp_path / "city")]) == 0
    assert {p.name for p in (tmp_path / "city").iterdir()} >= {"customers.csv", "specialists.csv", "service_area.geojson"}


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["plan", "--help"])
    assert "example:" in capsys.readouterr().out


def test_same_plan_under_another_hash_seed(sample_paths, sample_plan_dir, tmp_path):
    """Determinism does not hang on Python's string hashing (sets and dicts iterated into files)."""
    import hashlib
    import os

    from gridengine.plan import DATA_FILES

    out = tmp_path / "h"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    r = subprocess.run([sys.executable, "-m", "gridengine", *plan_args(sample_paths, out), "-q"],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    for f in DATA_FILES:
        assert hashlib.sha256((out / f).read_bytes()).digest() == hashlib.sha256((sample_plan_dir / f).read_bytes()).digest(), f


def test_plan_from_addresses_alone_with_gazetteer(sample_paths, tmp_path):
    from gridengine.cli import main as cli_main

    root = sample_paths["customers"].parent
    out = tmp_path / "addr"
    args = ["plan", "--customers", str(root / "customers_addresses.csv"), "--gazetteer", str(root / "gazetteer.csv"),
            "--specialists", str(sample_paths["specialists"]), "--service-area", str(sample_paths["service_area"]),
            "--out", str(out), "-q"]
    assert cli_main(args) == 0
    import pandas as pd

    a = pd.read_csv(out / "assignments.csv", dtype={"customer_id": str})
    r = pd.read_csv(out / "rejects.csv", dtype={"customer_id": str})
    truth = pd.read_csv(sample_paths["customers"], dtype={"customer_id": str}).set_index("customer_id")
    assert len(a) + len(r) == len(truth) and len(r) <= 0.02 * len(truth)
    from gridengine.cells import haversine_km

    t = truth.loc[a["customer_id"]]
    err_m = haversine_km(a["lat"].to_numpy(), a["lon"].to_numpy(), t["lat"].to_numpy(), t["lon"].to_numpy()) * 1000
    assert (err_m <= 50).mean() >= 0.98
    assert all(r["reason"].str.len() > 0)
