"""Partition: merge units (H3 cells, or any areal units) into contiguous grids within capacity.

Rooms of this stage:

- :mod:`.core`: the array core, :func:`partition_units` (bisection on spanning trees, compiled
  refinement, areas and bridges, locked groups);
- :mod:`.roster`: :func:`partition_roster`, one grid per specialist sized to their capacity;
- :mod:`.rerun`: :func:`partition_from_previous`, re-runs that keep customers in their grid;
- :mod:`.h3cells`: :func:`partition_cells`, the adapter from the H3 cell layer, naming grids.
"""

from .core import CUT_SCORES as CUT_SCORES
from .core import REFINE_SCHEDULES as REFINE_SCHEDULES
from .core import Bridge as Bridge
from .core import PartitionResult as PartitionResult
from .core import grid_connectivity as grid_connectivity
from .core import partition_units as partition_units
from .h3cells import locked_groups as locked_groups
from .h3cells import partition_cells as partition_cells
from .h3cells import previous_grid_of_cells as previous_grid_of_cells
from .rerun import partition_from_previous as partition_from_previous
from .roster import partition_roster as partition_roster

__all__ = [
    "Bridge", "PartitionResult", "partition_units", "partition_roster", "partition_from_previous", "partition_cells",
    "grid_connectivity", "locked_groups", "previous_grid_of_cells", "CUT_SCORES", "REFINE_SCHEDULES",
]
