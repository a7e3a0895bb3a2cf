"""``python -m parareg ...`` runs the ``parareg`` command (as ``python -m parareg.cli`` does)."""

from .cli.main import run

if __name__ == "__main__":
    run()
