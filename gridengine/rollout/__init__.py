"""City-by-city rollout at national scale: many per-city plans in parallel on Dask distributed.

:func:`rollout` plans every city of a rollout spec with :func:`gridengine.plan_city`, one Dask task
per city, on a ``LocalCluster`` (worker processes, one thread each) by default or on an existing
cluster (``scheduler="tcp://HOST:PORT"``). Each city's plan is written atomically to
``OUT/cities/<name>/`` by the worker that planned it; the national summary goes to
``OUT/summary.csv`` (and ``OUT/rollout.json``).

* **Failure isolation**: a city whose input is bad (or whose worker dies) fails alone, with its
  message in the summary; the other cities finish.
* **Resume**: a city whose plan folder is complete (has ``manifest.json``) and whose input file
  SHA-256 hashes, config and gridengine version equal the manifest's is skipped. A killed rollout
  leaves each city either complete or absent (plans are written to a hidden temporary folder and
  renamed), so re-running the same command finishes the rest.
* **Re-runs**: a city whose inputs or config changed is re-planned *from its existing plan*
  (``previous``, as ``gridengine plan --previous``), so customers stay with their specialist and
  the summary reports churn (``continuity = false`` plans from scratch).

Rollout TOML
------------
Paths are relative to the TOML file's folder. Every key but ``[[city]]`` ``name`` is optional::

    out = "out/rollout-2026-11"   # rollout folder (default: "<spec stem>-out" beside the spec)
    config = "base.toml"          # base config file, or an inline [config] table (below)
    workers = 2                   # LocalCluster workers (default: CPU count); CLI --workers wins
    scheduler = "tcp://10.0.0.5:8786"  # an existing cluster; CLI --scheduler wins
    continuity = true             # changed cities re-plan from their previous plan (churn)

    # one national customers file (CSV or Parquet) split by a city column (optional):
    customers = "national/customers.parquet"
    specialists = "national/specialists.csv"   # a national roster, also split (optional)
    city_column = "city"

    [config]                      # the base config, as in a config TOML (seed, [config.partition], ...)
    seed = 0
    [config.partition]
    capacity = 1000.0

    [[city]]
    name = "shanghai"             # folder name of the plan: letters, digits, '-', '_' and '.'
    customers = "shanghai/customers.parquet"   # omitted: the city's rows of the national file
    specialists = "shanghai/specialists.csv"   # omitted: the national roster's rows, else no roster
    service_area = "shanghai/service_area.geojson"
    barriers = "shanghai/rivers.geojson"
    zones = "shanghai/streets.geojson"
    locked = "shanghai/locks.csv"  # grids kept as in the previous plan (gridengine.locks)
    road_graph = "shanghai/roads.graphml"      # travel on the road network (gridengine.travel)
    config = "shanghai.toml"      # this city's config file instead of the base
    capacity = 800.0              # overrides of the city's config
    resolution = 10
    k = 120
    seed = 3

With a national file and no ``[[city]]`` table, every value of the city column is a city.
The national file is split once into ``OUT/work/<name>/customers.parquet`` (streamed in batches,
never whole in memory; reused while the national file's hash is unchanged): workers read their
city's file from disk, so no large table goes through the scheduler. Reject rows then number the
rows of the city's split file.

On a multi-machine cluster, every worker needs gridengine installed (same version) and must see
the input files and ``OUT`` at the same paths (a shared file system); start the scheduler with
``dask scheduler``, workers with ``dask worker tcp://HOST:8786 --nthreads 1`` (one thread per
process: planning is CPU-bound Python), then run ``gridengine rollout spec.toml --scheduler
tcp://HOST:8786``.

The package's modules: :mod:`.spec` (the rollout TOML and its cities), :mod:`.split` (a national
file split per city), :mod:`.run` (the per-city task and the Dask scheduling) and :mod:`.summary`
(the national summary table and :class:`RolloutResult`).
"""

from __future__ import annotations

from .run import plan_city_job as plan_city_job
from .run import rollout as rollout
from .spec import CitySpec as CitySpec
from .spec import RolloutSpec as RolloutSpec
from .split import split_national as split_national
from .summary import SUMMARY_COLUMNS as SUMMARY_COLUMNS
from .summary import RolloutResult as RolloutResult
from .summary import format_table as format_table

__all__ = ["CitySpec", "RolloutSpec", "RolloutResult", "rollout", "split_national", "SUMMARY_COLUMNS"]
