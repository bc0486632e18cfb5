"""Interrupted runs and process-level determinism: ``gridengine plan`` as a subprocess.

SIGKILL gives a process no chance to clean up, so these tests check what the *file system*
looks like afterwards: the earlier plan in the folder is intact and loadable, and nothing that
looks like a complete plan is left anywhere else (hidden ``.{name}.tmp-*`` leftovers may exist
until the next run removes them; they are never read as plans).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gridengine as ge
from gridengine.plan import DATA_FILES

ROOT = Path(__file__).resolve().parents[1]


def digest(folder: Path) -> dict[str, str]:
    return {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in DATA_FILES}


def plan_cmd(paths, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gridengine", "plan", "--customers", str(paths["customers"]),
            "--specialists", str(paths["specialists"]), "--service-area", str(paths["service_area"]),
            "--out", str(out), "-q", *extra]


def _tmp_siblings(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.tmp-*"))


def _files_in_tmp(target: Path) -> set[str]:
    names: set[str] = set()
    for d in _tmp_siblings(target):
        try:
            names |= {p.name for p in d.iterdir()}
        except OSError:  # renamed away between glob and listing
            pass
    return names


def _kill_when(proc: subprocess.Popen, target: Path, moment) -> bool:
    """SIGKILL ``proc`` at ``moment`` (seconds after start, or a predicate on the temporary folder's files).

    Returns True if the kill landed while the process was still running.
    """
    t0 = time.monotonic()
    while proc.poll() is None:
        if isinstance(moment, float):
            hit = time.monotonic() - t0 >= moment
        else:
            hit = bool(_tmp_siblings(target)) and moment(_files_in_tmp(target))
        if hit:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            return proc.returncode == -signal.SIGKILL
        if time.monotonic() - t0 > 300:
            proc.kill()
            pytest.fail("gridengine plan did not finish in 300 s")
        time.sleep(0.0005)
    return False


MOMENTS = {
    "0.5s (start-up)": 0.5,
    "1.5s (ingest / cells)": 1.5,
    "2.5s (partition)": 2.5,
    "write: temporary folder created": lambda files: True,
    "write: some data files written": lambda files: len(files) >= 4,
    "write: map.html written": lambda files: "map.html" in files,
    "write: manifest written, before the swap": lambda files: "manifest.json" in files,
}


def test_sigkill_never_damages_the_earlier_plan(sample_paths, sample_plan_dir, tmp_path):
    target = tmp_path / "sample"
    shutil.copytree(sample_plan_dir, target)
    before = digest(target)
    manifest = (target / "manifest.json").read_bytes()
    landed = []
    for name, moment in MOMENTS.items():
        # --seed 1: the replacement plan's manifest differs, so a replaced folder is told from the earlier one
        proc = subprocess.Popen(plan_cmd(sample_paths, target, "--force", "--seed", "1"), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        killed = _kill_when(proc, target, moment)
        proc.stderr.close()
        replaced = (target / "manifest.json").read_bytes() != manifest
        if not replaced:
            # the earlier plan is untouched and loads
            assert digest(target) == before, name
            assert ge.Plan.read(target).metrics["n_customers"] == 20000
            if killed:
                landed.append(name)
            else:  # only a failed run may end without replacing the plan
                pytest.fail(f"{name}: run ended with {proc.returncode} without replacing the plan")
        else:
            # the run got past the swap before the kill (a timed kill can land while the finished process
            # is still exiting): then the folder holds its complete new plan; put the earlier one back
            assert proc.returncode in (0, -signal.SIGKILL), name
            assert ge.Plan.read(target).manifest["seed"] == 1
            shutil.rmtree(target)
            shutil.copytree(sample_plan_dir, target)
        # nothing that looks like a plan anywhere but the target; leftovers are hidden and refused
        for entry in tmp_path.iterdir():
            if entry.name == "sample":
                continue
            assert entry.name.startswith(".sample.tmp-"), entry.name
            with pytest.raises(ge.PlanWriteError, match="temporary folder"):
                ge.Plan.read(entry)
    # the kills did land before the swap, including during the write (the data files are all written
    # before the manifest, so the three earlier write moments always come before the swap)
    assert sum(n.startswith("write:") for n in landed) >= 3, landed
    # the next complete run replaces the plan and removes the leftovers of the killed ones
    r = subprocess.run(plan_cmd(sample_paths, target, "--force", "--seed", "1"), cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert ge.Plan.read(target).manifest["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["sample"]


def test_first_write_killed_leaves_no_folder_that_looks_like_a_plan(sample_paths, tmp_path):
    target = tmp_path / "fresh"
    proc = subprocess.Popen(plan_cmd(sample_paths, target), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert _kill_when(proc, target, lambda files: len(files) >= 6)
    assert not target.exists()  # complete or absent
    for entry in tmp_path.iterdir():
        assert entry.name.startswith(".fresh.tmp-")
        with pytest.raises(ge.PlanWriteError):
            ge.Plan.read(entry)


def test_interrupted_fallback_swap_is_repaired(sample_plan, sample_plan_dir, tmp_path):
    """Where the atomic exchange is unavailable the swap is two renames; killed between them, the
    target is missing and the earlier plan sits in ``.{name}.old-*/plan``: the next write puts it back
    (and, without overwrite, refuses to replace it)."""
    target = tmp_path / "sample"
    parked = tmp_path / ".sample.old-abc123"
    parked.mkdir()
    shutil.copytree(sample_plan_dir, parked / "plan")
    leftover = tmp_path / ".sample.tmp-def456"
    leftover.mkdir()
    (leftover / "grids.parquet").write_bytes(b"partial")
    past = time.time() - 3600
    for d in (parked, leftover):
        os.utime(d, (past, past))
    with pytest.raises(ge.PlanWriteError, match="already holds files"):
        sample_plan.write(target)
    assert digest(target) == digest(sample_plan_dir)
    assert [p.name for p in tmp_path.iterdir()] == ["sample"]


def test_fresh_temporary_folders_of_a_concurrent_writer_are_left_alone(sample_plan, tmp_path):
    target = tmp_path / "sample"
    busy = tmp_path / ".sample.tmp-busy"
    busy.mkdir()  # touched now, i.e. after this process started: maybe another writer's
    sample_plan.write(target)
    assert busy.is_dir()


# -- determinism across thread counts (numba / OpenMP / BLAS) ------------------------------------------

@pytest.mark.parametrize("threads", ["1", "3"])
def test_same_plan_with_other_thread_counts(sample_paths, sample_plan_dir, tmp_path, threads):
    """The partitioner's kernels are numba, the assignment OR-Tools min-cost flow (single-threaded);
    a different thread count must not change a byte of the data files."""
    out = tmp_path / "t"
    env = dict(os.environ, NUMBA_NUM_THREADS=threads, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
               MKL_NUM_THREADS=threads)
    r = subprocess.run(plan_cmd(sample_paths, out), cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    assert digest(out) == digest(sample_plan_dir)
