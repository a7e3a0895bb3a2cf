"""The parallel execution layer, modelled on ITKv4's DomainThreader.

Work units are fixed by the domain and a grain size, never by the thread
count, and per-unit results are reduced in unit order, so every result is
bit-identical at any number of threads and under any schedule.
"""

from .map import map_blocks, map_slices, parallel_map
from .partition import axis0_ranges, partition_items, partition_range, partition_slabs
from .pool import (
    get_num_threads,
    in_work_unit,
    resolve_num_threads,
    run_units,
    set_num_threads,
    threads,
)
from .schedule import SCHEDULES
from .threader import (
    DomainThreader,
    SlabThreader,
    for_each_slab,
    for_each_unit,
    reduce_units,
    unit_buffers,
)

__all__ = [
    "SCHEDULES",
    "DomainThreader",
    "SlabThreader",
    "axis0_ranges",
    "for_each_slab",
    "for_each_unit",
    "get_num_threads",
    "in_work_unit",
    "map_blocks",
    "map_slices",
    "parallel_map",
    "partition_items",
    "partition_range",
    "partition_slabs",
    "reduce_units",
    "resolve_num_threads",
    "run_units",
    "set_num_threads",
    "threads",
    "unit_buffers",
]
