"""Registration benchmarks as a product feature: pairs, methods, Dask execution, reports.

>>> from parareg import bench
>>> sorted(bench.PARAREG_PRESETS)[:3]
['affine', 'rigid', 'syn']

A study is one call (or ``parareg bench ...`` on the command line)::

    from parareg import bench
    result = bench.run("data/images/*.nii.gz", "data/labels/*.nii.gz", out="study",
                       methods=["parareg:syn", "greedy", "ants"], n_pairs=20,
                       prealign="rigid", workers=2, timeout=1800)
    print(result.report)   # study/report.md

Modules: :mod:`~parareg.bench.datasets` (subjects and pairs),
:mod:`~parareg.bench.scoring` (Dice, Jaccard, NCC, NMI, folding),
:mod:`~parareg.bench.methods` (the registry), :mod:`~parareg.bench.peers`
(DIPY, ANTs, greedy adapters), :mod:`~parareg.bench.runner` (Dask),
:mod:`~parareg.bench.results` (atomic CSVs), :mod:`~parareg.bench.report`.
Dask (``distributed``) is imported only when a study runs.
"""

from .case import Case, MethodOutput
from .datasets import Pair, Subject, check_subjects, find_subjects, make_pairs, read_pairs_csv
from .methods import (
    METHODS,
    PARAREG_PRESETS,
    Method,
    available_methods,
    get_method,
    register_method,
    resolve_methods,
    unregister_method,
)
from .report import write_report
from .runner import Progress, StudyResult, run

__all__ = [
    "Case", "METHODS", "Method", "MethodOutput", "PARAREG_PRESETS", "Pair", "Progress",
    "StudyResult", "Subject", "available_methods", "check_subjects", "find_subjects",
    "get_method", "make_pairs", "read_pairs_csv", "register_method", "resolve_methods", "run",
    "unregister_method", "write_report",
]
