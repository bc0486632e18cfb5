"""CLI polish: stage progress, --quiet / --verbose, help with examples."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

import gridengine as ge
from gridengine.cli import main
from gridengine.progress import PLAN_STAGES, RolloutProgress, StageBar


def test_plan_city_reports_every_stage_in_order(sample_paths):
    seen: list[str] = []
    ge.plan_city(sample_paths["customers"], sample_paths["specialists"], ge.Config(),
                 service_area=sample_paths["service_area"], progress=seen.append)
    assert seen == [s for s in PLAN_STAGES if s != "write"]


def test_stage_bar_draws_on_a_terminal_only():
    tty = io.StringIO()
    with StageBar(("a", "b"), stream=tty, enabled=True) as bar:
        bar("a")
        assert "a" in tty.getvalue() and "0/2" in tty.getvalue()  # drawn when the stage starts
        bar("b")
        assert bar.line().startswith("1/2 b")
        assert "1/2" in tty.getvalue()
    out = tty.getvalue()
    assert "\x1b[?25h" in out and out.endswith("\x1b[2K")  # the cursor is shown again and the bar erased
    piped = io.StringIO()  # StringIO.isatty() is False: a log file or pipe gets nothing
    with StageBar(("a",), stream=piped) as bar:
        bar("a")
    assert piped.getvalue() == ""


def test_rollout_progress_lines_and_rich():
    log = io.StringIO()
    rp = RolloutProgress("lines", log, verbose=True)
    rp.line("splitting")
    rp.start(2)
    rp.stage("x", "cells")
    rp.stage("x", "ingest")  # told late: ignored
    rp.done({"city": "x", "status": "planned", "seconds": 1.0, "customers": 10, "grids": 2})
    rp.done({"city": "y", "status": "failed", "message": "bad roster"})
    rp.close()
    lines = [ln.split(" ", 1)[1] for ln in log.getvalue().splitlines()]  # without the time stamp
    assert lines == ["rollout: splitting", "rollout: x: cells", "rollout: [1/2] x: planned in 1.0s (10 customers, 2 grids)",
                     "rollout: [2/2] y: FAILED: bad roster"]
    tty = io.StringIO()
    rp = RolloutProgress("rich", tty)
    rp.start(1)
    rp.stage("x", "partition")
    rp.done({"city": "x", "status": "failed", "message": "bad roster"})
    rp.close()
    assert "x: FAILED: bad roster" in tty.getvalue() and "overall: 0 planned, 1 failed" in tty.getvalue()
    with pytest.raises(ValueError, match="mode"):
        RolloutProgress("bars", tty)


def test_quiet_prints_nothing_and_verbose_prints_timings(sample_paths, tmp_path, capsys):
    args = ["plan", "--customers", str(sample_paths["customers"]), "--specialists", str(sample_paths["specialists"]),
            "--service-area", str(sample_paths["service_area"])]
    assert main([*args, "--out", str(tmp_path / "q"), "-q"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    assert main([*args, "--out", str(tmp_path / "v"), "-v"]) == 0
    out, err = capsys.readouterr()
    assert "stage timings" in out and "partition" in out and "coverage         100.00%" in out
    assert "INFO gridengine.partition" in err  # the log tells each stage
    assert "map.html" in out and "report.html" in out
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path / "x"), "-q", "-v"])  # one or the other
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", [[], ["plan"], ["staff"], ["diff"], ["synth"]])
def test_help_has_an_example(cmd):
    r = subprocess.run([sys.executable, "-m", "gridengine", *cmd, "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0
    assert "example" in r.stdout and "gridengine " in r.stdout.split("example", 1)[1]
