"""Entry point of a task process: ``python -m parareg.bench._task_main TASKDIR [PARENT_PID]``.

A module of its own (nothing imports it) so that ``-m`` does not run a module
the package has already imported; the work is in :func:`parareg.bench.task.main`.
"""

import sys

from parareg.bench.task import main

if __name__ == "__main__":
    sys.exit(main())
