"""Scoring for the benchmark scripts: the functions live in :mod:`parareg.bench.scoring`.

Kept so that ``import scoring`` in the scripts of this folder goes on working.
"""

from parareg.bench.scoring import *  # noqa: F401,F403
from parareg.bench.scoring import __all__  # noqa: F401
