"""A lock that makes numba's on-disk cache safe for processes compiling at once.

numba's ``IndexDataCacheFile.save`` reads a function's cache index, picks the
first free data-file number and writes both back. Two processes saving
different signatures of one function at once (Dask workers starting
together, ``parareg warmup --jobs``) can pick the same number: the index then
points one signature at the other's machine code, or loses an entry. Holding
an exclusive ``flock`` on a lock file in the cache folder around that
read-modify-write makes it atomic (numba's own writes are already
write-to-temporary-then-rename).

This module imports only the standard library, so ``import parareg`` stays
cheap: numba is patched when it is imported, not before.
"""

from __future__ import annotations

import os
import sys

#: the numba module patched
_TARGET = "numba.core.caching"
#: the lock file numba's cache folders get
LOCK_NAME = ".parareg-cache.lock"


def _locked_save(original):
    """``IndexDataCacheFile.save`` holding an exclusive lock on the cache folder."""
    import fcntl
    import functools

    @functools.wraps(original)
    def save(self, key, data):
        try:
            handle = open(os.path.join(self._cache_path, LOCK_NAME), "a+b")
        except OSError:  # a read-only cache: numba's own save fails or is skipped as before
            return original(self, key, data)
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                return original(self, key, data)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    save._parareg_locked = True
    return save


def _patch(caching) -> None:
    cache_file = caching.IndexDataCacheFile
    if not getattr(cache_file.save, "_parareg_locked", False):
        cache_file.save = _locked_save(cache_file.save)


class _PatchOnImport:
    """A ``sys.meta_path`` finder that patches ``numba.core.caching`` once it is executed."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET:
            return None
        import importlib.util

        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):  # pragma: no cover
            return spec
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch(module)

        loader.exec_module = exec_and_patch
        return spec


def install_cache_lock() -> None:
    """Make numba's cache index updates atomic across processes (POSIX; no-op elsewhere).

    Run by ``import parareg``: patches numba now if it is already imported,
    else as soon as it is.
    """
    if os.name != "posix":  # pragma: no cover - no fcntl
        return
    caching = sys.modules.get(_TARGET)
    if caching is not None:
        _patch(caching)
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
