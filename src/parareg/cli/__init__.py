"""The ``parareg`` command line: ``parareg register``, ``parareg apply``, ``parareg demo``.

Each command is a module with ``_get_parser()`` and ``main(argv=None) -> int``
(0 on success, 2 on bad input with one ``parareg: error: ...`` line on
stderr); :mod:`parareg.cli.main` dispatches between them (the ``parareg``
entry point is ``parareg.cli.main:run``: ``main``, then a
fast exit). The library never prints:
everything a person reads is written here.
"""
