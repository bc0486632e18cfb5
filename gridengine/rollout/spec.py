"""The rollout spec: the cities of a rollout, where their inputs are, and the defaults (TOML format in
:mod:`gridengine.rollout`)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config, read_toml
from ..errors import ConfigError
from ..inputs import INPUT_KINDS

__all__ = ["CitySpec", "RolloutSpec", "CITY_NAME_RE", "INPUT_KINDS"]

#: A city's name: also its plan folder's name.
CITY_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")
_TOP_KEYS = {"out", "config", "workers", "scheduler", "continuity", "customers", "specialists", "city_column", "city"}
_CITY_KEYS = {"name", *INPUT_KINDS, "config", "capacity", "resolution", "k", "seed"}


@dataclass(frozen=True)
class CitySpec:
    """One city of a rollout.

    Parameters
    ----------
    name
        The city's name, also its plan folder's name.
    config
        The city's full config (base config with the city's overrides).
    customers
        Its customers file; ``None``: its rows of the rollout's national file.
    specialists
        Its roster file; ``None``: its rows of the national roster, or no roster (staffing need only).
    service_area, barriers, zones, locked, road_graph
        Optional files, as for :func:`gridengine.plan_city`.
    """

    name: str
    config: Config = field(default_factory=Config)
    customers: Path | None = None
    specialists: Path | None = None
    service_area: Path | None = None
    barriers: Path | None = None
    zones: Path | None = None
    locked: Path | None = None
    road_graph: Path | None = None


@dataclass(frozen=True)
class RolloutSpec:
    """A rollout: cities, where their inputs are, and the defaults.

    Parameters
    ----------
    cities
        The cities, in the order of the summary. Empty with a national file: every city in it.
    out
        The rollout folder (``cities/``, ``work/``, ``summary.csv``); ``None``: given to :func:`rollout`.
    customers, specialists
        Optional national files holding many cities' rows, told apart by ``city_column``.
    city_column
        The column naming each row's city in the national files.
    config
        Base config of cities built from the national file alone.
    continuity
        A city whose inputs changed is re-planned from its existing plan (churn reported).
    workers, scheduler
        Defaults for :func:`rollout`'s ``n_workers`` and ``scheduler``.
    source
        The TOML file it was read from, if any.
    """

    cities: tuple[CitySpec, ...] = ()
    out: Path | None = None
    customers: Path | None = None
    specialists: Path | None = None
    city_column: str = "city"
    config: Config = field(default_factory=Config)
    continuity: bool = True
    workers: int | None = None
    scheduler: str | None = None
    source: Path | None = None

    def __post_init__(self) -> None:
        names = [c.name for c in self.cities]
        for n in names:
            if not isinstance(n, str) or not CITY_NAME_RE.match(n) or n in (".", ".."):
                raise ConfigError(f"city name {n!r} cannot be a folder name (use letters, digits, '-', '_', '.')")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"city {dup[0]!r} is listed more than once")
        if not self.cities and self.customers is None:
            raise ConfigError("the rollout has no city: add [[city]] tables or a national customers file")
        for c in self.cities:
            if c.customers is None and self.customers is None:
                raise ConfigError(f"city {c.name!r}: no customers file, and the rollout has no national customers file")
        if self.workers is not None and (not isinstance(self.workers, int) or isinstance(self.workers, bool)
                                         or self.workers < 1):
            raise ConfigError(f"workers must be a positive integer, got {self.workers!r}")

    @classmethod
    def from_toml(cls, path: str | Path) -> "RolloutSpec":
        """Read a rollout TOML file (format in the :mod:`gridengine.rollout` docstring).

        Raises
        ------
        ConfigError
            Missing file, invalid TOML, unknown keys or wrong types; the message starts with the file name.
        """
        path = Path(path)
        data = read_toml(path, "rollout")
        try:
            return cls.from_dict(data, base=path.parent, source=path)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base: str | Path = ".", source: Path | None = None) -> "RolloutSpec":
        """Build a spec from the TOML structure; relative paths are taken from ``base``."""
        base = Path(base)
        if not isinstance(data, dict):
            raise ConfigError("a rollout spec must be a table")
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_TOP_KEYS))}")

        def path_of(value: Any, key: str, where: str = "") -> Path | None:
            if value is None:
                return None
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}{key} must be a file path (a string), got {value!r}")
            p = Path(value).expanduser()
            return p if p.is_absolute() else base / p

        def config_of(value: Any, where: str) -> Config:
            if isinstance(value, dict):
                return Config.from_dict(value)
            p = path_of(value, "config", where)
            return Config.from_toml(p) if p is not None else Config()

        base_cfg = config_of(data.get("config"), "")
        cities = []
        raw_cities = data.get("city", [])
        if not isinstance(raw_cities, list):
            raise ConfigError("city must be an array of tables ([[city]])")
        for i, c in enumerate(raw_cities):
            if not isinstance(c, dict):
                raise ConfigError(f"city #{i + 1} must be a table")
            where = f"city {c.get('name', '#' + str(i + 1))!r}: "
            unknown = sorted(set(c) - _CITY_KEYS)
            if unknown:
                raise ConfigError(f"{where}unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_CITY_KEYS))}")
            if "name" not in c:
                raise ConfigError(f"city #{i + 1} has no name")
            if not isinstance(c["name"], str):
                raise ConfigError(f"city #{i + 1}: name must be a string, got {c['name']!r}")
            try:
                cfg = config_of(c["config"], where) if "config" in c else base_cfg
                cfg = _override(cfg, capacity=c.get("capacity"), resolution=c.get("resolution"), k=c.get("k"),
                                seed=c.get("seed"))
            except ConfigError as exc:
                raise ConfigError(f"{where}{exc}") from None
            cities.append(CitySpec(name=c["name"], config=cfg, **{k: path_of(c.get(k), k, where) for k in INPUT_KINDS}))
        col = data.get("city_column", "city")
        if not isinstance(col, str) or not col:
            raise ConfigError(f"city_column must be a column name, got {col!r}")
        cont = data.get("continuity", True)
        if not isinstance(cont, bool):
            raise ConfigError(f"continuity must be true or false, got {cont!r}")
        sched = data.get("scheduler")
        if sched is not None and not isinstance(sched, str):
            raise ConfigError(f"scheduler must be an address string, got {sched!r}")
        return cls(cities=tuple(cities), out=path_of(data.get("out"), "out"), customers=path_of(data.get("customers"), "customers"),
                   specialists=path_of(data.get("specialists"), "specialists"), city_column=col, config=base_cfg,
                   continuity=cont, workers=data.get("workers"), scheduler=sched, source=source)


def _override(cfg: Config, *, capacity: Any = None, resolution: Any = None, k: Any = None, seed: Any = None) -> Config:
    """The config with a city's overrides (checked by the config classes)."""
    def number(v: Any, name: str, kind: type) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float) if kind is float else int):
            raise ConfigError(f"{name} must be {'a number' if kind is float else 'an integer'}, got {v!r}")
        return kind(v)

    if capacity is not None:
        cfg = cfg.replace(partition=dataclasses.replace(cfg.partition, capacity=number(capacity, "capacity", float)))
    if k is not None:
        cfg = cfg.replace(partition=dataclasses.replace(cfg.partition, k=number(k, "k", int)))
    if resolution is not None:
        cfg = cfg.replace(cells=dataclasses.replace(cfg.cells, resolution=number(resolution, "resolution", int)))
    if seed is not None:
        cfg = cfg.replace(seed=number(seed, "seed", int))
    return cfg
