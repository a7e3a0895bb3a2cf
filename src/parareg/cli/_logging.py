"""How a command shows the library's log records (:mod:`parareg._log`): configured by
:func:`parareg.cli._common.run_command` for the command's duration."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager

from ._common import PROG, Console, RegistrationProgress, one_line


class LogHandler(logging.Handler):
    """How a command shows the library's log records (see :mod:`parareg._log`).

    By default progress records feed a :class:`RegistrationProgress` display and
    other records of level WARNING and above become ``parareg: warning: ...``
    lines; ``-q`` (``console.quiet``) keeps only those lines; ``-v`` writes
    every record as one line ``parareg: <logger>: <message>`` instead of the
    display.
    """

    def __init__(self, console: Console, *, verbose: bool = False):
        super().__init__(logging.DEBUG)
        self.console = console
        self.verbose = verbose
        self.progress = RegistrationProgress(enabled=not (console.quiet or verbose))

    @property
    def wanted(self) -> int:
        """The lowest level the ``parareg`` logger must pass to this handler."""
        return logging.DEBUG if (self.verbose or self.progress.enabled) else logging.WARNING

    def emit(self, record: logging.LogRecord) -> None:
        try:
            progress = getattr(record, "progress", None)
            if self.verbose:
                name = record.name.removeprefix("parareg.")
                print(f"{PROG}: {name}: {one_line(record.getMessage())}", file=sys.stderr,
                      flush=True)
            elif progress is not None:
                if getattr(record, "level_done", False):
                    self.progress.close()
                elif progress.get("kind") == "affine":
                    self.progress.affine(progress)
                elif progress.get("kind") == "syn":
                    self.progress.syn(progress)
            elif record.levelno >= logging.WARNING:
                self.console.warn(record.getMessage())
        except Exception:  # a display problem must not stop a registration
            self.handleError(record)

    def close(self) -> None:
        self.progress.close()
        super().close()


@contextmanager
def logging_to(console: Console, *, verbose: bool = False):
    """Show the ``parareg`` logger's records as :class:`LogHandler` does, inside the block.

    The logger's level is restored afterwards (a command may run inside a
    program that logs: :func:`main` is called by tests and scripts).
    """
    from .._log import LOGGER_NAME

    logger = logging.getLogger(LOGGER_NAME)
    handler = LogHandler(console, verbose=verbose)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(handler.wanted)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
