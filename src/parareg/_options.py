"""Checks shared by every public function's string and keyword options.

Names are case-insensitive (``"MI"``, ``"SyN"`` and ``"mi"`` are one metric):
:func:`choice` returns the registry's own spelling. Options a metric does not
use are refused, not ignored (:func:`build`).

Examples
--------
>>> choice("MI", ("mi", "meansquares", "correlation"), name="metric")
'mi'
>>> choice("ncc", ("mi", "correlation"), name="metric")
Traceback (most recent call last):
...
ValueError: metric must be one of ['mi', 'correlation'], got 'ncc'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["build", "choice"]


def choice(value: Any, options: Iterable[str], *, name: str) -> str:
    """The entry of ``options`` that ``value`` names, ignoring case.

    Parameters
    ----------
    value : str
    options : iterable of str
        The accepted names, in the order the error message lists them.
    name : str
        The argument's name, quoted in the error.

    Returns
    -------
    str
        The option as spelled in ``options``.

    Raises
    ------
    ValueError
        When ``value`` is not a string or names no option.
    """
    options = list(options)
    if isinstance(value, str):
        key = value.casefold()
        for option in options:
            if option.casefold() == key:
                return option
    raise ValueError(f"{name} must be one of {options}, got {value!r}")


def accepted_options(factory: Callable) -> list[str] | None:
    """The keyword arguments ``factory`` (a class or function) accepts, in signature order;
    ``None`` when it takes ``**kwargs`` (any name may be valid, so none can be refused)."""
    parameters = inspect.signature(factory).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]


def build(registry: Mapping[str, Callable], name: Any, *, kind: str,
          argument: str = "metric", **options: Any) -> Any:
    """Build ``registry[name](**options)`` with options it uses, refusing the others.

    Options whose value is ``None`` mean "the default" and are dropped; any
    other option the factory does not take is an error naming the option,
    the metric and the options it does take (a silently ignored ``radius``
    or ``bins`` hides a mistake).

    Parameters
    ----------
    registry : mapping of str to callable
        Lower-case name -> class.
    name : str
        Any case.
    kind : str
        What the registry holds, for messages (e.g. ``"SyN metric"``).
    argument : str
        The argument that named it, for messages.
    **options
        Hyperparameters (``None`` = the default).

    Examples
    --------
    >>> from parareg.metrics.syn import SYN_METRICS
    >>> build(SYN_METRICS, "CC", kind="SyN metric", radius=3)
    CCMetric(radius=3, eps=1e-05)
    >>> build(SYN_METRICS, "ssd", kind="SyN metric", radius=3)
    Traceback (most recent call last):
    ...
    ValueError: radius=3 is not an option of the SyN metric 'ssd' (it takes sigma_x); drop radius or choose a metric that uses it
    """
    key = choice(name, sorted(registry), name=argument)
    factory = registry[key]
    given = {k: v for k, v in options.items() if v is not None}
    accepted = accepted_options(factory)
    for option, value in given.items():
        if accepted is not None and option not in accepted:
            takes = ", ".join(accepted) if accepted else "no option"
            raise ValueError(f"{option}={value!r} is not an option of the {kind} {key!r} "
                             f"(it takes {takes}); drop {option} or choose a {argument} "
                             "that uses it")
    return factory(**given)
