"""``python -m parareg.cli ...`` runs the ``parareg`` command."""

import sys

from .main import main

sys.exit(main())
