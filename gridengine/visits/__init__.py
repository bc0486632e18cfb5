"""Lapse-risk home visits: each specialist's week of visits to the at-risk customers of their own grid.

>>> import gridengine as ge
>>> res = ge.plan_visits("out/city", "risk.csv", ge.VisitsConfig(start="2026-12-07"))  # doctest: +SKIP
>>> res.write("out/city-visits")  # doctest: +SKIP
"""

from __future__ import annotations

from .config import VisitsConfig as VisitsConfig
from .core import VisitsResult as VisitsResult
from .core import plan_visits as plan_visits

__all__ = ["VisitsConfig", "VisitsResult", "plan_visits"]
