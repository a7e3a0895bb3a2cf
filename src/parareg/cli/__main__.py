"""``python -m parareg.cli ...`` runs the ``parareg`` command."""

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
