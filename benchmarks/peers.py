"""Peer adapters for the benchmark scripts: they live in :mod:`parareg.bench.peers`.

Kept so that ``import peers`` in the scripts of this folder goes on working.
"""

from parareg.bench.peers import *  # noqa: F401,F403
from parareg.bench.peers import __all__  # noqa: F401
