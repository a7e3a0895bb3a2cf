"""How the DIPY layer says that a DIPY parameter is mapped differently, or not at all."""

from __future__ import annotations

import warnings

__all__ = ["DipyCompatWarning", "refuse_unknown", "warn_unsupported"]


class DipyCompatWarning(UserWarning):
    """A DIPY parameter that parareg cannot honour exactly; the message says what it does."""


def warn_unsupported(name: str, value, what: str, *, stacklevel: int = 3) -> None:
    """Warn that DIPY's ``name=value`` is not honoured, and say what parareg does instead."""
    warnings.warn(f"{name}={value!r}: {what}", DipyCompatWarning, stacklevel=stacklevel)


def refuse_unknown(kwargs: dict, allowed, *, where: str) -> None:
    """Refuse keyword arguments DIPY's ``where`` would not take either (a TypeError, as Python)."""
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(f"{where} got unexpected keyword argument(s) {unknown}; "
                        f"it takes {sorted(allowed)}")
