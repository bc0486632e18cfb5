"""gridengine: plan field-service territories.

Customers are indexed into H3 cells, cells are merged into balanced, contiguous grids
within a specialist's capacity, and one specialist is assigned to each grid.

>>> import gridengine as ge
>>> plan = ge.plan_city("customers.csv", "specialists.csv", ge.Config())  # doctest: +SKIP
>>> plan.write("out/city")  # doctest: +SKIP
"""

from __future__ import annotations

import logging

from ._version import __version__ as __version__
from .assign import AssignmentResult as AssignmentResult
from .assign import assign_specialists as assign_specialists
from .cells import build_cells as build_cells
from .config import AssignConfig as AssignConfig
from .config import CellConfig as CellConfig
from .config import Config as Config
from .config import InputConfig as InputConfig
from .config import PartitionConfig as PartitionConfig
from .diff import PlanDiff as PlanDiff
from .diff import diff_plans as diff_plans
from .errors import CapacityShortfallError as CapacityShortfallError
from .errors import ConfigError as ConfigError
from .errors import GridEngineError as GridEngineError
from .errors import GridEngineWarning as GridEngineWarning
from .errors import InfeasibleError as InfeasibleError
from .errors import InputError as InputError
from .errors import PlanWriteError as PlanWriteError
from .errors import SolverError as SolverError
from .geocode import geocode_customers as geocode_customers
from .ingest import read_customers as read_customers
from .ingest import read_service_area as read_service_area
from .ingest import read_specialists as read_specialists
from .locks import read_locks as read_locks
from .metrics import compute_metrics as compute_metrics
from .metrics import rerun_metrics as rerun_metrics
from .partition import partition_cells as partition_cells
from .partition import partition_units as partition_units
from .pipeline import plan_city as plan_city
from .plan import Plan as Plan
from .rollout import RolloutResult as RolloutResult
from .rollout import RolloutSpec as RolloutSpec
from .rollout import rollout as rollout
from .sites import SitesConfig as SitesConfig
from .sites import SitesResult as SitesResult
from .sites import site_service_points as site_service_points
from .solvers import DistrictingResult as DistrictingResult
from .solvers import FacilityLocationResult as FacilityLocationResult
from .solvers import PMedianResult as PMedianResult
from .solvers import capacitated_facility_location as capacitated_facility_location
from .solvers import capacitated_p_median as capacitated_p_median
from .solvers import district_units as district_units
from .visits import VisitsConfig as VisitsConfig
from .visits import VisitsResult as VisitsResult
from .visits import plan_visits as plan_visits

__all__ = [
    "__version__", "plan_city", "Plan", "Config", "InputConfig", "CellConfig", "PartitionConfig", "AssignConfig",
    "read_customers", "read_specialists", "read_service_area", "read_locks", "geocode_customers", "build_cells",
    "partition_units", "partition_cells", "assign_specialists", "AssignmentResult", "compute_metrics", "rerun_metrics",
    "GridEngineError", "InputError", "ConfigError", "InfeasibleError", "CapacityShortfallError", "SolverError",
    "PlanWriteError", "GridEngineWarning", "diff_plans", "PlanDiff", "rollout", "RolloutSpec", "RolloutResult",
    "district_units", "DistrictingResult", "capacitated_p_median", "PMedianResult",
    "plan_visits", "VisitsConfig", "VisitsResult",
    "site_service_points", "SitesConfig", "SitesResult", "capacitated_facility_location", "FacilityLocationResult",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
