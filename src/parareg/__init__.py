"""parareg: fast, multi-threaded, reproducible medical image registration.

Results are bit-identical whatever the thread count: work is split into
units fixed by the data, never by the threads, and reduced in unit order.

``import parareg`` is cheap: the names below are imported on first use
(PEP 562), so numba, SciPy and nibabel load only when a function needs them.
"""

import importlib

from . import _numba_cache

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first access)
_LAZY = {
    "AffineMap": ".registration",
    "AffineRegistration": ".registration",
    "Channel": ".registration",
    "DiffeomorphicMap": ".transforms.diffeomorphic",
    "Image": ".image",
    "RegistrationResult": ".registration",
    "SymmetricDiffeomorphicRegistration": ".registration",
    "affine_registration": ".registration",
    "apply_transforms": ".transforms.chain",
    "get_num_threads": ".parallel",
    "gradient": ".gradients",
    "load": ".io.nifti",
    "register": ".registration",
    "resample": ".resampling",
    "save": ".io.nifti",
    "segment": ".population.segment",
    "set_num_threads": ".parallel",
    "syn_registration": ".registration",
    "threads": ".parallel",
    "warmup": ".compilation",
}

#: public submodules reached as attributes (``parareg.template.build(...)``), imported on first use
_SUBMODULES = {"template": ".population.template"}

__all__ = sorted([*_LAZY, "__version__"])

# numba's cache: safe for processes compiling at once, and usable from a read-only install
_numba_cache.install()


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        if name not in _SUBMODULES:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = importlib.import_module(_SUBMODULES[name], __name__)
        globals()[name] = value
        return value
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
