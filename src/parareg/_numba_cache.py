"""numba's on-disk cache made safe for concurrent processes and read-only installs.

**Concurrent processes.**
numba's ``IndexDataCacheFile.save`` reads a function's cache index, picks the
first free data-file number and writes both back. Two processes saving
different signatures of one function at once (Dask workers starting
together, ``parareg warmup --jobs``) can pick the same number: the index then
points one signature at the other's machine code, or loses an entry. Holding
an exclusive ``flock`` on a lock file in the cache folder around that
read-modify-write makes it atomic (numba's own writes are already
write-to-temporary-then-rename).

**Read-only installs.** numba caches next to the source, else in
``~/.cache/numba``; when neither is writable (a read-only package and home,
as in locked-down containers) and ``NUMBA_CACHE_DIR`` is unset, it refuses to
compile parareg's ``cache=True`` kernels at all ("no locator available").
A last-resort locator, for parareg's own sources only, caches them in a
private per-user folder of the temporary directory instead (mode 0700,
owned by the user, else not used).

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


#: parareg's package folder: only its sources get the last-resort locator
_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def private_temp_cache() -> str | None:
    """``$TMPDIR/numba-cache-<uid>``, created 0700; ``None`` if it is not safely ours."""
    import stat
    import tempfile

    path = os.path.join(tempfile.gettempdir(), f"numba-cache-{os.getuid()}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError:
        return None
    mine = info.st_uid == os.getuid() and stat.S_ISDIR(info.st_mode)
    return path if mine and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) else None


def _temp_locator(caching):
    """A locator class caching parareg's kernels in :func:`private_temp_cache`."""

    class ParaRegTempCacheLocator(caching.UserProvidedCacheLocator):
        def __init__(self, py_func, py_file):
            super().__init__(py_func, py_file)
            self._cache_path = os.path.join(self._root, self.get_suitable_cache_subpath(py_file))

        @classmethod
        def from_function(cls, py_func, py_file):
            if not os.path.abspath(py_file).startswith(_PACKAGE + os.sep):
                return None
            cls._root = private_temp_cache()
            if cls._root is None or not os.path.exists(py_file):
                return None
            self = cls(py_func, py_file)
            try:
                self.ensure_cache_path()
            except OSError:
                return None
            return self

    return ParaRegTempCacheLocator


def _patch(caching) -> None:
    """Patch numba's caching module; parts this numba version lacks are left alone.

    The tests (tests/test_warmup.py) fail when a numba release moves these
    internals, so a silent skip here is still noticed.
    """
    cache_file = getattr(caching, "IndexDataCacheFile", None)
    save = getattr(cache_file, "save", None)
    if save is not None and not getattr(save, "_parareg_locked", False):
        cache_file.save = _locked_save(save)
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    locators = getattr(impl, "_locator_classes", None)
    provided = getattr(caching, "UserProvidedCacheLocator", None)
    if isinstance(locators, list) and provided is not None and not any(
            getattr(c, "__name__", "") == "ParaRegTempCacheLocator" for c in locators):
        locators.append(_temp_locator(caching))


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


def install() -> None:
    """Lock numba's cache index updates and add the last-resort locator (POSIX only).

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
