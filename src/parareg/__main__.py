"""``python -m parareg ...`` runs the ``parareg`` command (as ``python -m parareg.cli`` does)."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
