"""A city's inputs, described once: what :func:`gridengine.plan_city` plans, what the manifest
records and hashes, and what a rollout compares to decide whether a city's plan is still current.

Every input is a file path, a table or a geometry (or ``None`` when not given). The gazetteer of
the geocoding stage is a path in the config (``geocode.gazetteer``) and is recorded beside them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd
import shapely

from .config import Config
from .ingest import file_sha256, table_sha256

__all__ = ["CityInputs", "INPUT_KINDS", "input_record"]

#: The inputs of a city plan besides the config, in the manifest's order.
INPUT_KINDS = ("customers", "specialists", "service_area", "barriers", "zones", "locked", "road_graph")


def input_record(obj: Any, kind: str) -> dict[str, Any]:
    """How the manifest records one input: its name and SHA-256.

    Parameters
    ----------
    obj
        A path (the file's bytes are hashed; ``sha256`` is None when no file is there), a table
        (its content hashed) or a shapely geometry (its WKB hashed).
    kind
        The input's kind, for the name of a table or geometry (``"<zones geometry>"``).

    Returns
    -------
    dict
        ``{"name": ..., "sha256": ...}``.
    """
    if isinstance(obj, (str, Path)):
        p = Path(obj)
        return {"name": p.name, "sha256": file_sha256(p) if p.is_file() else None}
    if isinstance(obj, pd.DataFrame):
        return {"name": f"<{kind} table>", "sha256": table_sha256(obj)}
    if kind == "road graph" and obj is not None and not isinstance(obj, (shapely.Geometry,)):
        return {"name": f"<{kind}>", "sha256": None}
    return {"name": f"<{kind} geometry>", "sha256": None if obj is None else
            hashlib.sha256(shapely.to_wkb(obj)).hexdigest()}


@dataclass(frozen=True)
class CityInputs:
    """The inputs of one city's plan (see :func:`gridengine.plan_city` for each).

    Parameters
    ----------
    customers
        Customers file or table.
    specialists
        Roster file or table; ``None``: grids only, the staffing need at ``partition.capacity``.
    service_area, barriers, zones
        Optional geometry files or shapely geometries.
    locked
        Optional locks file or table (:mod:`gridengine.locks`).
    road_graph
        Optional road network file or graph (:mod:`gridengine.travel`).
    """

    customers: Any
    specialists: Any = None
    service_area: Any = None
    barriers: Any = None
    zones: Any = None
    locked: Any = None
    road_graph: Any = None

    def record(self, config: Config) -> dict[str, dict[str, Any] | None]:
        """The manifest's ``inputs``: name and SHA-256 of every input given (``None`` for those not
        given; the road graph appears only when given), and of ``config.geocode.gazetteer``.

        Parameters
        ----------
        config
            The run's config (for the gazetteer).

        Returns
        -------
        dict
            Input kind → :func:`input_record` or ``None``.
        """
        names = {"service_area": "service area", "road_graph": "road graph"}
        out: dict[str, dict[str, Any] | None] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "road_graph" and value is None:
                continue  # recorded only when given (plans without one keep their manifest)
            always = f.name in ("customers", "specialists")
            out[f.name] = input_record(value, names.get(f.name, f.name)) if (value is not None or always) else None
            if f.name == "locked":
                out["gazetteer"] = input_record(config.geocode.gazetteer, "gazetteer") \
                    if config.geocode.gazetteer else None
        return out

    def unchanged_since(self, recorded: dict[str, Any], config: Config) -> bool:
        """Whether a manifest's ``inputs`` (``recorded``) describe these same inputs, byte for byte.

        Every input counts, the gazetteer named by ``config`` included: a file given now and not
        then (or the reverse), or a file whose SHA-256 differs, is a change. Tables and geometries
        are compared by content too.

        Parameters
        ----------
        recorded
            ``manifest["inputs"]`` of an earlier plan.
        config
            The config of the plan to make now.

        Returns
        -------
        bool
        """
        now = self.record(config)
        for kind in (*INPUT_KINDS, "gazetteer"):
            given = config.geocode.gazetteer if kind == "gazetteer" else getattr(self, kind)
            a, b = now.get(kind), recorded.get(kind)
            if given is None or (isinstance(given, str) and not given):  # not given now: nor then (a record without a hash is how "none" was kept)
                if b is not None and b.get("sha256") is not None:
                    return False
                continue
            if a is None or b is None or a.get("sha256") is None or a.get("sha256") != b.get("sha256"):
                return False
        return True
