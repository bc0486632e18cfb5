"""Shared fixtures: the bundled sample city and its plan (computed once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import gridengine as ge

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=40, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def sample_paths() -> dict[str, Path]:
    return {
        "customers": SAMPLE / "customers.csv",
        "specialists": SAMPLE / "specialists.csv",
        "service_area": SAMPLE / "service_area.geojson",
    }


@pytest.fixture(scope="session")
def sample_plan(sample_paths) -> ge.Plan:
    return ge.plan_city(sample_paths["customers"], sample_paths["specialists"], ge.Config(),
                        service_area=sample_paths["service_area"])


@pytest.fixture(scope="session")
def sample_plan_dir(sample_plan, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plans") / "sample"
    sample_plan.write(out)
    return out
