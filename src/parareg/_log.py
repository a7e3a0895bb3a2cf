"""The library's log records: progress goes through :mod:`logging`, never ``print``.

Loggers are named after their modules (``parareg.registration.affine``,
``parareg.registration.syn``), children of ``"parareg"``, which has a
:class:`logging.NullHandler`: a program that does not configure logging sees
nothing. To see each pyramid level's summary::

    import logging
    logging.basicConfig(level=logging.INFO)   # or logging.getLogger("parareg").setLevel(...)

``DEBUG`` adds one record per iteration. Progress records carry their numbers
as a dict in the attribute ``progress`` (the ``parareg`` command draws its
progress display from them); a record that ends a pyramid level also has
``level_done = True``.

Examples
--------
>>> import logging
>>> logger = get_logger("parareg.example")
>>> logger.name, logging.getLogger("parareg").handlers
('parareg.example', [<NullHandler (NOTSET)>])
"""

from __future__ import annotations

import logging

__all__ = ["LOGGER_NAME", "get_logger", "log_progress"]

#: the package logger; every parareg logger is a child of it
LOGGER_NAME = "parareg"

logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """The logger called ``name`` (a module's ``__name__``, under ``"parareg"``)."""
    return logging.getLogger(name)


def log_progress(logger: logging.Logger, level: int, message: str, *args,
                 progress: dict, level_done: bool = False) -> None:
    """Log ``message % args`` with ``progress`` (and ``level_done``) attached to the record.

    Nothing is built when ``logger`` is not enabled for ``level``.
    """
    if logger.isEnabledFor(level):
        logger.log(level, message, *args, stacklevel=2,
                   extra={"progress": progress, "level_done": level_done})
