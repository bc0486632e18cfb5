"""Settings of the visits stage (``gridengine visits``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["VisitsConfig"]


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def parse_hhmm(value: str, what: str) -> int:
    """``"09:30"`` -> minutes after midnight (0..1440); ConfigError naming ``what`` otherwise."""
    try:
        h, m = str(value).strip().split(":")[:2]
        h, m = int(h), int(m)
    except ValueError:
        raise ConfigError(f"{what} must be a time of day HH:MM, got {value!r}") from None
    _check(0 <= h <= 24 and 0 <= m < 60 and h * 60 + m <= 1440, f"{what} must be a time of day HH:MM, got {value!r}")
    return h * 60 + m


@dataclass(frozen=True)
class VisitsConfig:
    """How a risk list becomes a week of home visits.

    Parameters
    ----------
    start
        First day of the horizon, ISO date (``"2026-12-07"``). Required for reproducible
        output; ``None`` takes today's date.
    days
        Working days in the horizon (Saturdays and Sundays are skipped unless ``weekends``).
    weekends
        Count Saturdays and Sundays as working days.
    day_start
        When the specialist leaves the base, ``HH:MM``.
    day_hours
        Length of the working day: the specialist is back at the base within it.
    visit_minutes
        Default time spent at a customer's home (a ``visit_minutes`` column overrides it per row).
    speed_kmh
        Travel speed between homes (and from/to the base).
    detour
        Road distance per straight-line distance, used without a road graph.
    iterations
        Most iterations of the routing search per specialist (counted, not timed: the result is reproducible).
    patience
        The search also stops after this many iterations without a better solution (0: never).
    seed
        Random seed of the routing search.
    jobs
        Worker processes for the specialists' problems (Dask local cluster); ``None``: the CPU count;
        1 solves in this process.
    include_pii
        Carry name / address / phone columns of the risk list into the pages and visits.csv.
    """

    start: str | None = None
    days: int = 5
    weekends: bool = False
    day_start: str = "09:00"
    day_hours: float = 8.0
    visit_minutes: float = 30.0
    speed_kmh: float = 20.0
    detour: float = 1.3
    iterations: int = 1000
    patience: int = 100
    seed: int = 0
    jobs: int | None = None
    include_pii: bool = False

    def __post_init__(self) -> None:
        if self.start is not None:
            try:
                dt.date.fromisoformat(str(self.start))
            except ValueError:
                raise ConfigError(f"visits.start must be a date YYYY-MM-DD, got {self.start!r}") from None
        _check(isinstance(self.days, int) and 1 <= self.days <= 31, f"visits.days must be 1..31, got {self.days!r}")
        start = parse_hhmm(self.day_start, "visits.day_start")
        _check(math.isfinite(self.day_hours) and 0.5 <= self.day_hours <= 16,
               f"visits.day_hours must be between 0.5 and 16, got {self.day_hours!r}")
        _check(start + self.day_hours * 60 <= 1440, "visits.day_start + day_hours must end by midnight")
        _check(math.isfinite(self.visit_minutes) and 1 <= self.visit_minutes <= self.day_hours * 60,
               f"visits.visit_minutes must be 1..day length in minutes, got {self.visit_minutes!r}")
        _check(math.isfinite(self.speed_kmh) and 1 <= self.speed_kmh <= 200,
               f"visits.speed_kmh must be 1..200, got {self.speed_kmh!r}")
        _check(math.isfinite(self.detour) and 1 <= self.detour <= 3, f"visits.detour must be 1..3, got {self.detour!r}")
        _check(isinstance(self.iterations, int) and self.iterations >= 1,
               f"visits.iterations must be a positive integer, got {self.iterations!r}")
        _check(isinstance(self.patience, int) and self.patience >= 0,
               f"visits.patience must be a non-negative integer, got {self.patience!r}")
        _check(self.jobs is None or (isinstance(self.jobs, int) and self.jobs >= 1),
               f"visits.jobs must be a positive integer, got {self.jobs!r}")

    def replace(self, **changes: Any) -> "VisitsConfig":
        """A copy with some settings changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (recorded in the manifest)."""
        return dataclasses.asdict(self)

    def start_date(self) -> dt.date:
        """The first day of the horizon."""
        return dt.date.fromisoformat(self.start) if self.start else dt.date.today()

    def dates(self) -> list[dt.date]:
        """The working days of the horizon, in order."""
        out, d = [], self.start_date()
        while len(out) < self.days:
            if self.weekends or d.weekday() < 5:
                out.append(d)
            d += dt.timedelta(days=1)
        return out

    @property
    def day_start_min(self) -> int:
        """Start of the day in minutes after midnight."""
        return parse_hhmm(self.day_start, "visits.day_start")

    @property
    def day_end_min(self) -> int:
        """End of the day (back at the base) in minutes after midnight."""
        return self.day_start_min + int(round(self.day_hours * 60))
