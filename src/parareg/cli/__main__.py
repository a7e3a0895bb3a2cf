"""``python -m parareg.cli ...`` runs the ``parareg`` command."""

from .main import run

if __name__ == "__main__":
    run()
