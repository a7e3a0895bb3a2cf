"""Catch DIPY-order calls to parareg's fixed-first functions.

DIPY's functions take ``(moving, static, static_affine=..., static_mask=...)``
and parareg's take ``(fixed, moving, ...)``. Called positionally, the two
orders cannot be told apart; a DIPY keyword can, and :func:`refuse_dipy_order`
turns it into a :class:`DipyOrderError` that says both fixes.
"""

from __future__ import annotations

import functools
import inspect

__all__ = ["DIPY_KEYWORDS", "DipyOrderError", "refuse_dipy_order"]

#: DIPY keyword -> parareg's name for the same thing
DIPY_KEYWORDS = {
    "static": "fixed",
    "static_affine": "fixed_affine",
    "static_mask": "fixed_mask",
    "static_grid2world": "fixed_affine",
    "moving_grid2world": "moving_affine",
}


class DipyOrderError(TypeError):
    """A DIPY keyword (``static=``...) passed to a parareg function that takes ``fixed`` first."""


def refuse_dipy_order(func):
    """Decorate a fixed-first parareg function so DIPY's keywords get a :class:`DipyOrderError`.

    Examples
    --------
    >>> @refuse_dipy_order
    ... def affine_registration(fixed, moving, *, fixed_mask=None):
    ...     return fixed
    >>> affine_registration(1, 2, static_mask=3)
    Traceback (most recent call last):
    ...
    parareg.dipy._order.DipyOrderError: affine_registration got static_mask=, a DIPY keyword: \
parareg takes (fixed, moving) with the fixed (DIPY's static) image first; pass fixed_mask= \
for parareg's order, or call parareg.dipy.affine_registration(moving, static, ...) to keep \
DIPY's order and names
    """
    known = set(inspect.signature(func).parameters)
    dipy_twin = func.__name__ if func.__name__ in ("affine_registration",
                                                   "syn_registration") else None

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        found = [name for name in kwargs if name in DIPY_KEYWORDS and name not in known]
        if found:
            names = ", ".join(f"{name}=" for name in found)
            ours = ", ".join(f"{DIPY_KEYWORDS[name]}=" for name in found
                             if DIPY_KEYWORDS[name] in known)
            fix = f"pass {ours} for parareg's order" if ours else \
                "pass the fixed (static) image first for parareg's order"
            twins = (f"parareg.dipy.{dipy_twin}(moving, static, ...)" if dipy_twin else
                     "parareg.dipy.affine_registration or parareg.dipy.syn_registration"
                     "(moving, static, ...)")
            raise DipyOrderError(
                f"{func.__name__} got {names}, a DIPY keyword: parareg takes (fixed, moving) "
                f"with the fixed (DIPY's static) image first; {fix}, or call {twins} to keep "
                "DIPY's order and names")
        return func(*args, **kwargs)

    return wrapper
