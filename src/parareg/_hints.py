"""Errors whose fix depends on the interface: Python arguments or command-line options.

A check deep in a registration knows *what* is wrong (an image too small for
a pyramid level) but not *how* it was called. :class:`InputError` keeps the
two apart: ``problem`` says what is wrong, ``fix`` what to change in Python
terms, ``kind`` names the situation and ``facts`` hold the numbers, so that a
command-line front end can say the same with the options it has instead
(:mod:`parareg.cli._hints`). ``str(error)`` is ``"problem; fix"``.
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input, with the fix kept apart from the problem.

    Parameters
    ----------
    problem : str
        What is wrong, in terms of the data (shapes, values), not of an interface.
    fix : str, optional
        What to change, naming Python arguments.
    kind : str, optional
        A stable name of the situation, e.g. ``"pyramid_single_value"``.
    **facts
        The values the message quotes (``name``, ``shape``, ``factor``...).
    """

    def __init__(self, problem: str, fix: str | None = None, *, kind: str | None = None,
                 **facts):
        super().__init__(problem if fix is None else f"{problem}; {fix}")
        self.problem = problem
        self.fix = fix
        self.kind = kind
        self.facts = facts
