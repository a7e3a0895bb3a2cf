"""The registry of benchmark methods: parareg presets, the peers, and your own.

A method is a function ``func(case) -> MethodOutput`` (see
:mod:`parareg.bench.case`) registered under a name with the settings it runs
with. The settings are recorded in ``study.json`` and hashed into every row of
``results.csv``, so a study resumed with other settings is refused instead of
mixed.

Built-in names
--------------
``identity``
    No registration: the moving image on the fixed grid through the identity
    world transform (after the study's prealignment, if any). The baseline.
``parareg:<preset>``
    :func:`parareg.register` with the options of :data:`PARAREG_PRESETS`
    (``rigid``, ``affine``, ``syn``, ``syn-fast``, ``syn-accurate``, ``syn-mi``,
    ``syn-mi-fast``); ``parareg`` alone means ``parareg:syn``.
``ants``, ``ants:syn-quick``, ``ants:affine``
    antspyx ``SyN``, ``antsRegistrationSyNQuick[s]``, ``Affine``.
``greedy``, ``greedy:affine``
    greedy affine (``-a -dof 12 -m NMI``) then deformable (``-m NCC 2x2x2
    -n 100x50x10``); the affine stage alone.
``dipy``, ``dipy:affine``
    DIPY affine pipeline then SyN (``CCMetric``, ``[100, 50, 25]``); the affine alone.

A peer whose package is not installed stays registered but is reported by
:func:`resolve_methods` as missing (the study skips it).

Examples
--------
>>> from parareg.bench import register_method, MethodOutput
>>> def no_op(case):
...     return MethodOutput(case.fixed.data, case.fixed.data.astype(int) * 0)
>>> register_method("no-op", no_op, settings={"what": "nothing"}).name
'no-op'
>>> unregister_method("no-op")
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np

from . import peers
from .case import Case, MethodOutput

_FORBIDDEN = set(",/\\ \t\n\"'")


@dataclass(frozen=True)
class Method:
    """A named registration method and the settings it runs with.

    Attributes
    ----------
    name : str
    func : callable
        ``func(case: Case) -> MethodOutput``. Picklable (a module-level
        function or a :func:`functools.partial` of one is best; anything
        ``cloudpickle`` handles works), as it runs in another process.
    settings : dict
        JSON-serialisable description of what the method does.
    requires : tuple of str
        Modules that must be importable for the method to run.
    warmup : bool
        Call the method once, untimed, on a shrunken copy of the pair before
        the timed call (compilation, lazy imports and first-touch costs
        excluded from the time).
    description : str
    """

    name: str
    func: Callable[[Case], MethodOutput]
    settings: dict = field(default_factory=dict)
    requires: tuple = ()
    warmup: bool = True
    description: str = ""

    @property
    def installed(self) -> bool:
        """Whether every module in :attr:`requires` can be imported."""
        return all(importlib.util.find_spec(module) is not None for module in self.requires)

    def record(self) -> dict:
        """What ``study.json`` keeps about the method."""
        func = getattr(self.func, "func", self.func)  # the function behind a partial
        return {"name": self.name, "description": self.description,
                "function": f"{getattr(func, '__module__', '?')}."
                            f"{getattr(func, '__qualname__', repr(func))}",
                "requires": list(self.requires), "warmup": self.warmup,
                "settings": self.settings}


#: name -> Method
METHODS: dict[str, Method] = {}
#: short names accepted for registered ones
ALIASES = {"parareg": "parareg:syn"}


def register_method(name: str, func, *, settings=None, requires=(), warmup: bool = True,
                    description: str = "", replace: bool = False) -> Method:
    """Add a method to the registry (and so to ``--methods`` of ``parareg bench``).

    Parameters
    ----------
    name : str
        No commas, slashes, quotes or white space.
    func : callable
        ``func(case) -> MethodOutput``.
    settings : dict, optional
        JSON-serialisable; recorded and hashed (see the module notes).
    requires : sequence of str
        Modules the method imports.
    warmup : bool
        See :class:`Method`.
    description : str
    replace : bool
        Allow replacing an existing method of that name.

    Returns
    -------
    Method
    """
    if not isinstance(name, str) or not name or _FORBIDDEN & set(name):
        raise ValueError(f"method name must be a non-empty string without commas, slashes, "
                         f"quotes or spaces, got {name!r}")
    if name in ALIASES:
        raise ValueError(f"{name!r} is an alias of {ALIASES[name]!r}; choose another name")
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")
    if name in METHODS and not replace:
        raise ValueError(f"a method named {name!r} is already registered; pass replace=True "
                         "to replace it")
    settings = dict(settings or {})
    try:
        json.dumps(settings)
    except TypeError as exc:
        raise ValueError(f"settings of {name!r} must be JSON-serialisable: {exc}") from None
    method = Method(name, func, settings, tuple(requires), bool(warmup), description)
    METHODS[name] = method
    return method


def unregister_method(name: str) -> None:
    """Remove a method from the registry (no error if it is absent)."""
    METHODS.pop(name, None)


def get_method(name: str) -> Method:
    """The registered method called ``name`` (or an alias of it)."""
    key = ALIASES.get(name, name)
    if key not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS) + sorted(ALIASES)}, "
                         f"got {name!r}")
    return METHODS[key]


def resolve_methods(names) -> tuple[list[Method], list[Method]]:
    """Check method names: ``(installed, missing)``; an unknown name raises ``ValueError``.

    Aliases resolve to their method; duplicates are dropped (first kept).
    """
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    if not names:
        raise ValueError("methods must name at least one method, got none; "
                         f"choose from {sorted(METHODS)}")
    unknown = [n for n in names if ALIASES.get(n, n) not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(map(repr, unknown))}; "
                         f"choose from {', '.join(sorted(METHODS) + sorted(ALIASES))}")
    installed, missing, seen = [], [], set()
    for n in names:
        method = get_method(n)
        if method.name in seen:
            continue
        seen.add(method.name)
        (installed if method.installed else missing).append(method)
    return installed, missing


def available_methods() -> list[str]:
    """Names of the registered methods whose packages are installed, sorted."""
    return sorted(name for name, method in METHODS.items() if method.installed)


def settings_hash(method: Method, **study) -> str:
    """12 hex digits identifying a method's settings together with the study's (``study``:
    prealignment, seed, threads...).

    >>> m = Method("x", print, {"a": 1})
    >>> settings_hash(m, seed=0) == settings_hash(m, seed=0) != settings_hash(m, seed=1)
    True
    """
    text = json.dumps({"method": method.name, "settings": method.settings, "study": study},
                      sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


# ----------------------------------------------------------------------------------------------
# built-in methods


#: parareg method name suffix -> keyword arguments of parareg.register
PARAREG_PRESETS = {
    "rigid": {"transform": "rigid"},
    "affine": {"transform": "affine"},
    "syn": {"transform": "syn", "preset": "default"},
    "syn-fast": {"transform": "syn", "preset": "fast"},
    "syn-accurate": {"transform": "syn", "preset": "accurate"},
    "syn-mi": {"transform": "syn", "preset": "default", "syn_metric": "mi"},
    "syn-mi-fast": {"transform": "syn", "preset": "fast", "syn_metric": "mi"},
}


def parareg_method(case: Case, *, options: dict) -> MethodOutput:
    """:func:`parareg.register` with ``options``; labels through ``mapping.transform`` (nearest)."""
    from ..registration.pipeline import register

    result = register(case.fixed, case.moving, num_threads=case.num_threads, seed=case.seed,
                      **options)
    labels = result.mapping.transform(case.moving_labels, interpolation="nearest",
                                      num_threads=case.num_threads)
    jacobian = None
    if hasattr(result.mapping, "jacobian_determinant"):
        jacobian = partial(result.mapping.jacobian_determinant, num_threads=case.num_threads)
    return MethodOutput(result.warped.data, labels.data, jacobian,
                        {"stage_seconds": result.seconds})


def _parareg_settings(options: dict) -> dict:
    from ..registration.pipeline import AFFINE_PIPELINES, SYN_PRESETS

    full = {"transform": "syn", "preset": "default", "affine_metric": "mi", "syn_metric": "cc",
            **options}
    settings = {"register": full, "affine_pipeline": list(AFFINE_PIPELINES[full["transform"]]),
                "threads": "num_threads"}
    if full["transform"] == "syn":
        settings["syn"] = SYN_PRESETS[full["preset"]]
    return json.loads(json.dumps(settings))  # tuples -> lists, as recorded


def identity_method(case: Case) -> MethodOutput:
    """No registration: the moving image and labels on the fixed grid, identity world map."""
    from ..resampling import resample

    warped = resample(case.moving, case.fixed, num_threads=case.num_threads)
    labels = resample(case.moving_labels, case.fixed, interpolation="nearest",
                      num_threads=case.num_threads)
    return MethodOutput(warped.data, labels.data, np.ones(case.fixed.shape, np.float32))


def _register_builtins() -> None:
    register_method("identity", identity_method, settings={"transform": "identity"},
                    description="no registration (the baseline)", replace=True)
    for suffix, options in PARAREG_PRESETS.items():
        arguments = ", ".join(f"{k}={v!r}" for k, v in options.items())
        register_method(f"parareg:{suffix}", partial(parareg_method, options=options),
                        settings=_parareg_settings(options), requires=("numba",),
                        description=f"parareg.register({arguments})", replace=True)
    ants_common = {"ANTS_RANDOM_SEED": peers.ANTS_RANDOM_SEED,
                   "threads": "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
                   "labels": "apply_transforms(interpolator='nearestNeighbor')"}
    for suffix, kind in peers.ANTS_DEFORMABLE_TYPES.items():
        name = "ants" if suffix == "syn" else f"ants:{suffix}"
        register_method(name, partial(peers.ants_deformable, type_of_transform=kind),
                        settings={"type_of_transform": kind, **ants_common},
                        requires=("ants",), description=f"antspyx registration {kind}",
                        replace=True)
    affine_resampler = "scipy.ndimage.affine_transform (linear; nearest for labels)"
    register_method("ants:affine", partial(peers.affine_peer, peer="ants"),
                    settings={"type_of_transform": peers.ANTS_TYPES["affine"], **ants_common,
                              "labels": affine_resampler},
                    requires=("ants",), description="antspyx registration Affine", replace=True)
    greedy_affine = f"-a -dof 12 {peers.GREEDY_OPTIONS}"
    register_method("greedy", peers.greedy_deformable,
                    settings={"affine": greedy_affine,
                              "deformable": peers.GREEDY_DEFORMABLE_OPTIONS.format(
                                  radius="2x2[x2]"),
                              "labels": "-ri NN", "threads": "-threads"},
                    requires=("picsl_greedy",), description="greedy affine + NCC deformable",
                    replace=True)
    register_method("greedy:affine", partial(peers.affine_peer, peer="greedy"),
                    settings={"affine": greedy_affine, "threads": "-threads",
                              "labels": affine_resampler},
                    requires=("picsl_greedy", "SimpleITK"), description="greedy affine",
                    replace=True)
    dipy_affine = {**peers.DIPY_SETTINGS, "pipeline": peers.DIPY_PIPELINES["affine"]}
    register_method("dipy", peers.dipy_deformable,
                    settings={"affine": dipy_affine, "syn": peers.DIPY_SYN_SETTINGS,
                              "labels": "DiffeomorphicMap.transform(interpolation='nearest')",
                              "threads": "OMP_NUM_THREADS (SyN); affine serial"},
                    requires=("dipy",), description="DIPY affine + SyN(CC)", replace=True)
    register_method("dipy:affine", partial(peers.affine_peer, peer="dipy"),
                    settings={"affine": dipy_affine, "threads": "serial",
                              "labels": affine_resampler},
                    requires=("dipy",), description="DIPY affine", replace=True)


_register_builtins()

__all__ = ["ALIASES", "METHODS", "Method", "PARAREG_PRESETS", "available_methods",
           "get_method", "identity_method", "parareg_method", "register_method",
           "resolve_methods", "settings_hash", "unregister_method"]
