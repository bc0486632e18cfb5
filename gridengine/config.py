"""One configuration object for a whole run, grouped by pipeline stage.

Each group is a frozen dataclass that validates itself on construction (as
PyVRP's parameter groups do), so an invalid value fails at the door with the
name of the setting. :meth:`Config.from_toml` reads the same structure from a
TOML file and rejects unknown keys and wrong types; :meth:`Config.to_dict`
is what the manifest records.

Example TOML::

    seed = 0

    [input]
    coord_system = "wgs84"

    [cells]
    resolution = 9

    [partition]
    capacity = 1000.0
    target_fill = 0.9

    [assign]
    require_full_staffing = false
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["InputConfig", "GeocodeConfig", "CellConfig", "PartitionConfig", "AssignConfig", "Config"]

COORD_SYSTEMS = ("wgs84", "gcj02", "bd09")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True)
class InputConfig:
    """How input tables are read.

    Parameters
    ----------
    coord_system
        Coordinate system of ``lat``/``lon`` in the customers file (and of every other input
        not given a system of its own): ``"wgs84"`` (default), ``"gcj02"`` or ``"bd09"``;
        converted to WGS-84 on reading.
    specialists_coord_system, zones_coord_system, barriers_coord_system
        The coordinate system of the roster's bases, of the zones file and of the barriers
        file, where it differs from ``coord_system`` (``""``: the same as ``coord_system``).
        The summary prints what each input was taken to be.
    sheet, specialists_sheet
        The worksheet of an ``.xlsx`` customers / specialists file to read: its name, or its
        number from 1 (``""``: the first sheet).
    columns
        Extra header mapping, ``"customer_id=保单号,lat=Y坐标"``: the file's column on the right
        is read as gridengine's column on the left. Common Chinese and English header names
        (客户编号, 纬度, 经度, 工作量, 专员编号, 产能 …) are recognised without it.
    zone_name_column
        The column of the zones file naming each zone (``""``: the first of ``name``, ``名称``,
        ``district`` … present, else "zone 1", "zone 2" …).
    encoding
        Text encoding of CSV files; ``"auto"`` tries UTF-8 (with or without BOM), then GB18030.
    max_reject_share
        If more than this share of customer rows is rejected, the file is judged
        unusable (wrong file, swapped columns) and the run stops with an error.
    max_distance_km
        A customer farther than this from the median customer location is rejected
        (a geocoding error or a customer of another city).
    """

    coord_system: str = "wgs84"
    encoding: str = "auto"
    max_reject_share: float = 0.5
    max_distance_km: float = 150.0
    specialists_coord_system: str = ""
    zones_coord_system: str = ""
    barriers_coord_system: str = ""
    sheet: str = ""
    specialists_sheet: str = ""
    columns: str = ""
    zone_name_column: str = ""

    def __post_init__(self) -> None:
        _check(
            self.coord_system in COORD_SYSTEMS,
            f"input.coord_system must be one of {', '.join(COORD_SYSTEMS)}, got {self.coord_system!r}",
        )
        _check(isinstance(self.encoding, str) and self.encoding != "", "input.encoding must be a non-empty string")
        for name in ("specialists_coord_system", "zones_coord_system", "barriers_coord_system"):
            v = getattr(self, name)
            _check(v == "" or v in COORD_SYSTEMS,
                   f"input.{name} must be one of {', '.join(COORD_SYSTEMS)} (or empty: as coord_system), got {v!r}")
        _check(isinstance(self.sheet, str), f"input.sheet must be a string, got {self.sheet!r}")
        _check(isinstance(self.specialists_sheet, str), f"input.specialists_sheet must be a string, got {self.specialists_sheet!r}")
        _check(isinstance(self.columns, str), f"input.columns must be a string, got {self.columns!r}")
        _check(isinstance(self.zone_name_column, str), f"input.zone_name_column must be a string, got {self.zone_name_column!r}")

    def coord_system_of(self, kind: str) -> str:
        """The coordinate system of one input: ``"customers"``, ``"specialists"``, ``"zones"`` or ``"barriers"``."""
        if kind == "customers":
            return self.coord_system
        own = getattr(self, f"{kind}_coord_system")
        return own or self.coord_system
        _check(0.0 < self.max_reject_share <= 1.0, f"input.max_reject_share must be in (0, 1], got {self.max_reject_share}")
        _check(self.max_distance_km > 0, f"input.max_distance_km must be positive, got {self.max_distance_km}")


@dataclass(frozen=True)
class CellConfig:
    """How customers are indexed into H3 cells and how the service area is tiled.

    Parameters
    ----------
    resolution
        H3 resolution of the cells (9: about 0.1 km² per cell, edge ~174 m).
    service_area_buffer_m
        Without a planner-given service area, the tiled area is every cell within
        this distance of an occupied cell.
    max_cell_share
        Adaptive resolution: a cell holding more than this share of a grid's target
        workload is split into finer cells (``None``: fixed resolution).
    max_refine
        At most this many resolutions finer than ``resolution``.
    """

    resolution: int = 9
    service_area_buffer_m: float = 1000.0
    max_cell_share: float | None = 0.2
    max_refine: int = 3

    def __post_init__(self) -> None:
        _check(isinstance(self.resolution, int) and 0 <= self.resolution <= 15,
               f"cells.resolution must be an integer in [0, 15], got {self.resolution!r}")
        _check(0.0 <= self.service_area_buffer_m <= 50_000.0,
               f"cells.service_area_buffer_m must be in [0, 50000], got {self.service_area_buffer_m}")
        _check(self.max_cell_share is None or 0.0 < self.max_cell_share <= 1.0,
               f"cells.max_cell_share must be in (0, 1], got {self.max_cell_share}")
        _check(isinstance(self.max_refine, int) and 0 <= self.max_refine <= 6,
               f"cells.max_refine must be an integer in [0, 6], got {self.max_refine!r}")


@dataclass(frozen=True)
class PartitionConfig:
    """How cells are merged into grids.

    Parameters
    ----------
    capacity
        Without a roster: the workload a grid may hold at most (one specialist's capacity), which
        is required. With a roster, grids are sized to each specialist's own capacity and this is
        ``None``; a value caps every specialist's capacity at it, with a warning that says what it
        does to coverage.
    k
        Number of grids. ``None``: with a roster, one grid per specialist the workload needs (all
        of them unless the roster holds more than ``target_fill`` of capacity needs: then the
        least needed are spare); without one, ``ceil(total workload / (target_fill * capacity))``,
        counted per disconnected area. With a roster, ``k`` below the roster's size leaves
        specialists spare and ``k`` above it leaves grids unstaffed (both said in the plan).
    target_fill
        Mean grid workload as a share of capacity when ``k`` is derived: without a roster, the
        design fill; with one, the fill below which specialists are left spare (and the fill of a
        short roster, whose remaining workload is drawn as unstaffed grids).
    tolerance
        Balance goal: grids within ``±tolerance`` of the mean workload of their area.
    n_trees
        Candidate spanning trees tried per bisection (more: better balance, slower).
    bridge_share
        A disconnected area whose workload is below this share of a grid's target
        workload is joined to the nearest grid with room, through a reported bridge,
        instead of getting a grid of its own.
    refine_passes
        Maximum passes of the boundary-move refinement.
    churn_weight
        Re-runs: what moving a customer to another grid costs, in grid spans of extra distance per
        unit of workload. Higher keeps more customers with their specialist at some cost in
        compactness; balance and capacity still move customers when they must.
    max_churn
        Re-runs: the largest share of continuing customers whose specialist may change. When the
        first re-partition exceeds it, the churn weight is raised (x4, up to 3 times); if balance
        still forces more, the plan says so.
    """

    capacity: float | None = None
    k: int | None = None
    target_fill: float = 0.9
    tolerance: float = 0.05
    n_trees: int = 6
    bridge_share: float = 0.5
    refine_passes: int = 60
    churn_weight: float = 5.0
    max_churn: float | None = None

    def __post_init__(self) -> None:
        _check(self.capacity is None or (math.isfinite(self.capacity) and self.capacity > 0),
               f"partition.capacity must be a positive number, got {self.capacity!r}")
        _check(self.k is None or (isinstance(self.k, int) and self.k >= 1),
               f"partition.k must be a positive integer, got {self.k!r}")
        _check(0.1 <= self.target_fill <= 1.0, f"partition.target_fill must be in [0.1, 1], got {self.target_fill}")
        _check(0.0 < self.tolerance < 1.0, f"partition.tolerance must be in (0, 1), got {self.tolerance}")
        _check(isinstance(self.n_trees, int) and 1 <= self.n_trees <= 100,
               f"partition.n_trees must be an integer in [1, 100], got {self.n_trees!r}")
        _check(0.0 <= self.bridge_share < 1.0, f"partition.bridge_share must be in [0, 1), got {self.bridge_share}")
        _check(self.churn_weight >= 0, f"partition.churn_weight must be >= 0, got {self.churn_weight}")
        _check(self.max_churn is None or 0.0 <= self.max_churn <= 1.0,
               f"partition.max_churn must be in [0, 1], got {self.max_churn}")
        _check(isinstance(self.refine_passes, int) and self.refine_passes >= 0,
               f"partition.refine_passes must be a non-negative integer, got {self.refine_passes!r}")


@dataclass(frozen=True)
class AssignConfig:
    """How specialists are assigned to grids.

    Parameters
    ----------
    continuity_bonus_km
        A specialist staying on their ``current_grid`` counts as this much less travel (km, or
        minutes with a time-weighted road graph).
    require_full_staffing
        Raise :class:`~gridengine.errors.CapacityShortfallError` instead of reporting
        unstaffed grids.
    max_base_distance_km
        A specialist whose base is farther than this from every grid centre is reported (km,
        or minutes with a time-weighted road graph).
    rules
        Hard staffing rules (:class:`~gridengine.assign.Rule`): in TOML, ``[[assign.rules]]``
        tables with ``customer_column``, ``specialist_column`` and optional ``min_share``.
    """

    continuity_bonus_km: float = 50.0
    require_full_staffing: bool = False
    max_base_distance_km: float = 30.0
    rules: tuple = ()

    def __post_init__(self) -> None:
        _check(self.continuity_bonus_km >= 0, f"assign.continuity_bonus_km must be >= 0, got {self.continuity_bonus_km}")
        _check(self.max_base_distance_km > 0, f"assign.max_base_distance_km must be > 0, got {self.max_base_distance_km}")
        from .assign import Rule

        rules = []
        for i, r in enumerate(self.rules):
            if isinstance(r, Rule):
                rules.append(r)
                continue
            _check(isinstance(r, dict), f"assign.rules[{i}] must be a table, got {type(r).__name__}")
            unknown = sorted(set(r) - {"customer_column", "specialist_column", "min_share"})
            _check(not unknown, f"assign.rules[{i}]: unknown key(s) {', '.join(unknown)}")
            for key in ("customer_column", "specialist_column"):
                _check(isinstance(r.get(key), str) and r[key] != "", f"assign.rules[{i}].{key} must be a column name")
            share = r.get("min_share", 0.2)
            _check(isinstance(share, (int, float)) and not isinstance(share, bool),
                   f"assign.rules[{i}].min_share must be a number")
            rules.append(Rule(r["customer_column"], r["specialist_column"], float(share)))
        object.__setattr__(self, "rules", tuple(rules))


#: Precision levels of a placed address, most precise first (``gridengine.geocode``).
PRECISION_LEVELS = ("building", "house_number", "nearest_house_number", "compound", "road", "community", "district")

#: Geocoders a run may chain, in ``geocode.order``.
GEOCODERS = ("coordinates", "gazetteer", "online")

#: Online providers ``geocode.provider`` may name (through geopy).
GEOCODE_PROVIDERS = ("nominatim", "arcgis", "baidu", "baiduv3", "photon", "opencage", "mapbox", "tomtom", "here")


@dataclass(frozen=True)
class GeocodeConfig:
    """How customers with an address only are placed (the ``[geocode]`` section).

    Parameters
    ----------
    order
        Geocoders tried in order, from ``coordinates``, ``gazetteer``, ``online``; one
        without its settings (no ``gazetteer`` file, no ``provider``) is skipped.
    gazetteer
        CSV with columns ``address``, ``lat``, ``lon`` and optionally ``coord_system``.
    gazetteer_coord_system
        Coordinate system of the gazetteer rows without a ``coord_system`` of their own.
    min_score
        Lowest gazetteer ``geo_score`` accepted, 0-100 (see the module docstring): 100 accepts
        names only as written, 95 also a compound named by another kind, 85 (default) also one
        typo. Online answers are not held to it (providers score on scales of their own).
    accept
        Precisions accepted, among ``building`` (the building itself), ``house_number`` (the
        centre of the buildings of the road + number), ``nearest_house_number`` (between the two
        nearest numbers on the same side of the road), ``compound`` (the compound's centre),
        ``road``, ``community``, ``district``; a row placed only at a precision not listed is
        rejected with the reason (the next geocoder may still place it).
    max_radius_m
        A point is accepted only if the true one lies within this many metres of it by the
        gazetteer's own evidence: the farthest building of the number or compound from its
        centre, half the gap between the two numbers of an interpolation.
    max_reject_share
        If more than this share of the rows is rejected by the geocoders, the run stops with an
        error naming the commonest reasons (see :func:`check_reject_share`).
    provider, provider_url, api_key_env
        Online geocoder (``nominatim``, ``arcgis``, ``baidu``, ``baiduv3``, ``photon``,
        ``opencage``, ``mapbox``, ``tomtom``, ``here``; Baidu's BD-09 answers are converted,
        the others are taken as WGS-84), an endpoint overriding the provider's (scheme, host,
        port), and the name of the environment variable holding its key.
    cache
        SQLite file of online answers (default ``~/.cache/gridengine/geocode.sqlite``).
    rate_per_s, timeout_s, retries
        Requests per second at most, seconds before a request times out, retries after a
        failed request (back-off doubling from ``1 / rate_per_s``).
    """

    order: tuple[str, ...] = ("coordinates", "gazetteer", "online")
    gazetteer: str | None = None
    gazetteer_coord_system: str = "wgs84"
    min_score: float = 85.0
    accept: tuple[str, ...] = ("building", "house_number", "nearest_house_number", "compound")
    max_radius_m: float = 150.0
    max_reject_share: float = 0.2
    provider: str | None = None
    provider_url: str | None = None
    api_key_env: str | None = None
    cache: str | None = None
    rate_per_s: float = 1.0
    timeout_s: float = 10.0
    retries: int = 3

    def __post_init__(self) -> None:
        for name in ("order", "accept"):
            v = getattr(self, name)
            _check(isinstance(v, (tuple, list)) and all(isinstance(x, str) for x in v),
                   f"geocode.{name} must be a list of strings, got {v!r}")
            object.__setattr__(self, name, tuple(v))
        _check(len(self.order) > 0 and set(self.order) <= set(GEOCODERS) and len(set(self.order)) == len(self.order),
               f"geocode.order must list distinct geocoders among {', '.join(GEOCODERS)}, got {list(self.order)}")
        _check(len(self.accept) > 0 and set(self.accept) <= set(PRECISION_LEVELS),
               f"geocode.accept must list precisions among {', '.join(PRECISION_LEVELS)}, got {list(self.accept)}")
        for name in ("gazetteer", "provider", "provider_url", "api_key_env", "cache"):
            v = getattr(self, name)
            _check(v is None or (isinstance(v, str) and v != ""), f"geocode.{name} must be a non-empty string, got {v!r}")
        _check(self.gazetteer_coord_system in COORD_SYSTEMS, f"geocode.gazetteer_coord_system must be one of "
               f"{', '.join(COORD_SYSTEMS)}, got {self.gazetteer_coord_system!r}")
        _check(self.provider is None or self.provider in GEOCODE_PROVIDERS,
               f"geocode.provider must be one of {', '.join(GEOCODE_PROVIDERS)}, got {self.provider!r}")
        _check(self.provider_url is None or self.provider_url.startswith(("http://", "https://")),
               f"geocode.provider_url must start with http:// or https://, got {self.provider_url!r}")
        for name in ("max_radius_m", "max_reject_share"):
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and (name != "max_reject_share" or v <= 1)
            _check(ok, f"geocode.{name} must be a number {'in (0, 1]' if name == 'max_reject_share' else '> 0'}, got {v!r}")
        for name, lo, hi in (("min_score", 0.0, 100.0), ("rate_per_s", 0.0, math.inf), ("timeout_s", 0.0, math.inf)):
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi and (name == "min_score" or v > 0)
            _check(ok, f"geocode.{name} must be a number {'in [0, 100]' if name == 'min_score' else '> 0'}, got {v!r}")
        _check(isinstance(self.retries, int) and not isinstance(self.retries, bool) and self.retries >= 0,
               f"geocode.retries must be a non-negative integer, got {self.retries!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "GeocodeConfig":
        """Build from a mapping (a TOML ``[geocode]`` table); unknown keys are a :class:`ConfigError`."""
        _check(isinstance(d, dict), f"geocode must be a table, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        _check(not unknown, f"geocode: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return cls(**d)



_GROUPS: dict[str, type] = {
    "input": InputConfig,
    "geocode": GeocodeConfig,
    "cells": CellConfig,
    "partition": PartitionConfig,
    "assign": AssignConfig,
}


def _hint(unknown: list[str], known: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for a misspelt key, or ''."""
    import difflib

    near = difflib.get_close_matches(unknown[0], list(known), n=1, cutoff=0.7)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _coerce(group: str, cls: type, values: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"[{group}] must be a table, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if group == "partition" and "mode" in unknown:
        raise ConfigError("partition.mode was removed: with a specialists file, grids are always sized to the roster "
                          "(one grid per specialist, within their own capacity); without one, to partition.capacity")
    if unknown:
        raise ConfigError(
            f"unknown key(s) in [{group}]: {', '.join(unknown)}{_hint(unknown, fields)}; known keys: {', '.join(fields)}"
        )
    out: dict[str, Any] = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        expected = type(default) if default is not None else None
        if name in ("capacity", "max_cell_share", "max_churn"):
            expected = float
        if name in ("k",):
            expected = int
        if name == "rules":  # a list of tables, checked by AssignConfig itself
            _check(isinstance(value, (list, tuple)), f"[{group}] rules must be a list of tables")
            out[name] = tuple(value)
            continue
        if value is None and default is None:  # optional settings (capacity, k) may be unset
            out[name] = value
            continue
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is not None and not isinstance(value, expected) or isinstance(value, bool) and expected is not bool:
            raise ConfigError(
                f"[{group}] {name} must be of type {expected.__name__ if expected else 'any'}, "
                f"got {type(value).__name__} {value!r}"
            )
        out[name] = value
    return cls(**out)


def read_toml(path: Path, kind: str) -> dict[str, Any]:
    """Read a TOML file; a missing file, a folder or bad TOML is a :class:`ConfigError` naming it.

    ``kind`` names the file in messages ("config" gives "config file not found").
    """
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {kind} file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected a {kind} TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


@dataclass(frozen=True)
class Config:
    """The whole run's configuration: one group per stage plus the seed."""

    input: InputConfig = field(default_factory=InputConfig)
    geocode: GeocodeConfig = field(default_factory=GeocodeConfig)
    cells: CellConfig = field(default_factory=CellConfig)
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    assign: AssignConfig = field(default_factory=AssignConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        _check(isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed < 2**31,
               f"seed must be an integer in [0, 2**31), got {self.seed!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        """Build a config from nested dicts, rejecting unknown keys and wrong types."""
        if not isinstance(data, dict):
            raise ConfigError("config must be a table")
        unknown = sorted(set(data) - set(_GROUPS) - {"seed"})
        if unknown:
            raise ConfigError(
                f"unknown key(s) in config: {', '.join(unknown)}{_hint(unknown, ['seed', *_GROUPS])}; "
                f"known: seed, {', '.join(_GROUPS)}"
            )
        kwargs: dict[str, Any] = {}
        for group, gcls in _GROUPS.items():
            if group in data:
                if group == "geocode":
                    if not isinstance(data[group], dict):
                        raise ConfigError(f"[geocode] must be a table, got {type(data[group]).__name__}")
                    kwargs[group] = GeocodeConfig.from_dict(data[group])
                else:
                    kwargs[group] = _coerce(group, gcls, data[group])
        if "seed" in data:
            if not isinstance(data["seed"], int) or isinstance(data["seed"], bool):
                raise ConfigError(f"seed must be an integer, got {data['seed']!r}")
            kwargs["seed"] = data["seed"]
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | Path) -> "Config":
        """Read a config from a TOML file.

        Raises
        ------
        ConfigError
            If the file is missing, is not valid TOML, or has unknown keys or wrong types;
            the message starts with the file name.
        """
        path = Path(path)
        data = read_toml(path, "config")
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """All settings as plain nested dicts (what the manifest records)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "Config":
        """A copy with some groups or the seed replaced."""
        return dataclasses.replace(self, **changes)
