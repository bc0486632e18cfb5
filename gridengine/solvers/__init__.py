"""Optimisation solvers on plain arrays, public on their own for analysts and for comparison with the
literature; none knows about H3 cells or plan folders.

- :mod:`.districting`: :func:`district_units`, k contiguous districts within population bounds,
  minimising the Hess moment of inertia (measured against published optima);
- :mod:`.pmedian`: :func:`capacitated_p_median`, p medians among the points with single-source
  assignment within capacity (the LP start uses HiGHS through ``highspy``);
- :mod:`.facility`: :func:`capacitated_facility_location`, which candidate sites open and which serves
  each point (the core of :func:`gridengine.site_service_points`).

``gridengine.plan_city`` uses none of them.
"""

from .districting import DistrictingResult as DistrictingResult
from .districting import district_units as district_units
from .facility import FacilityLocationResult as FacilityLocationResult
from .facility import capacitated_facility_location as capacitated_facility_location
from .pmedian import PMedianResult as PMedianResult
from .pmedian import capacitated_p_median as capacitated_p_median
from .pmedian import cpmp_check as cpmp_check
from .pmedian import cpmp_objective as cpmp_objective

__all__ = [
    "district_units", "DistrictingResult", "capacitated_p_median", "PMedianResult", "cpmp_check", "cpmp_objective",
    "capacitated_facility_location", "FacilityLocationResult",
]
