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

**Each kernel compiled once.**
Two processes that miss the cache for the same kernel at once would both
compile it. Each parareg kernel's compile (numba's ``Dispatcher.compile``:
look in the cache, else compile and save) runs holding an exclusive ``flock``
on a lock file beside the kernel's cache index, so the second process waits
for the first and then loads its machine code instead of compiling it again
(at most :data:`COMPILE_WAIT_SECONDS`, after which it compiles itself). This
is what lets ``parareg register`` hand kernels to a helper process
(:func:`parareg.compilation.compile_ahead`) and what spares Dask workers
starting together from compiling everything each.

**Loading without refreshing.**
Before loading anything from its cache numba "refreshes" its target context:
it imports and registers every lowering implementation it has (unicode,
random, typed containers, linear algebra, ...), about 0.2-0.4 s of a warm
run, all needed only to *compile*. Loading a parareg kernel's machine code
needs only numba's runtime (NRT) symbols, so parareg's kernels load with
just that; a compile still refreshes fully (numba's compiler does it
itself), and a load that fails this way is retried the ordinary way.

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

#: the numba modules patched
_CACHING, _DISPATCHER = "numba.core.caching", "numba.core.dispatcher"
#: the lock file numba's cache folders get
LOCK_NAME = ".parareg-cache.lock"
#: what a kernel's compile lock file is named: its cache index's name and this
COMPILE_LOCK_SUFFIX = ".lock"
#: how long a process waits for another one compiling the same kernel before compiling it too
COMPILE_WAIT_SECONDS = 120.0


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


def _compile_lock_path(dispatcher) -> str | None:
    """The compile lock file of a cached parareg kernel, or ``None`` (not ours, not cached)."""
    func = getattr(dispatcher, "py_func", None)
    if not getattr(func, "__module__", "").startswith("parareg."):
        return None
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    index = getattr(cache_file, "_index_path", None)
    return None if index is None else index + COMPILE_LOCK_SUFFIX


def _open_locked(path: str, wait: float):
    """``path`` opened and exclusively ``flock``-ed, waiting at most ``wait`` seconds; or
    ``None`` (the folder is not writable, or another process held it all that time)."""
    import fcntl
    import time

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle = open(path, "a+b")
    except OSError:
        return None
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                return None
            time.sleep(0.02)
        except OSError:  # e.g. a file system without locks
            handle.close()
            return None


def _compile_once(original):
    """``Dispatcher.compile`` holding the kernel's compile lock (see the module docstring)."""
    import functools

    from numba.core.compiler_lock import global_compiler_lock

    @functools.wraps(original)
    def compile(self, sig):
        path = _compile_lock_path(self)
        if path is None:
            return original(self, sig)
        # numba's lock first: the threads of one process take the file lock one at a time
        with global_compiler_lock:
            handle = _open_locked(path, COMPILE_WAIT_SECONDS)
            try:
                return original(self, sig)
            finally:
                if handle is not None:
                    handle.close()  # releases the flock

    compile._parareg_locked = True
    return compile


def _light_load(original):
    """``Cache.load_overload`` without the full context refresh, for parareg's kernels."""
    import functools

    @functools.wraps(original)
    def load_overload(self, sig, target_context):
        func = getattr(self, "_py_func", None)
        if not getattr(func, "__module__", "").startswith("parareg."):
            return original(self, sig, target_context)
        try:
            from numba.core.runtime import rtsys

            rtsys.initialize(target_context)  # what loaded machine code links against
            return self._load_overload(sig, target_context)
        except Exception:  # e.g. a symbol only the full refresh registers: the usual way
            return original(self, sig, target_context)

    load_overload._parareg_light = True
    return load_overload


def _patch_dispatcher(dispatcher) -> None:
    """Give numba's ``Dispatcher.compile`` the per-kernel compile lock."""
    cls = getattr(dispatcher, "Dispatcher", None)
    compile_ = getattr(cls, "compile", None)
    if compile_ is not None and not getattr(compile_, "_parareg_locked", False):
        cls.compile = _compile_once(compile_)


def _patch(caching) -> None:
    """Patch numba's caching module; parts this numba version lacks are left alone.

    The tests (tests/test_warmup.py) fail when a numba release moves these
    internals, so a silent skip here is still noticed.
    """
    cache = getattr(caching, "Cache", None)
    load = getattr(cache, "load_overload", None)
    if load is not None and hasattr(cache, "_load_overload") and not getattr(
            load, "_parareg_light", False):
        cache.load_overload = _light_load(load)
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
    """A ``sys.meta_path`` finder that patches numba's caching and dispatcher modules once
    each is executed."""

    def __init__(self):
        self.pending = {_CACHING: _patch, _DISPATCHER: _patch_dispatcher}

    def find_spec(self, fullname, path, target=None):
        patch = self.pending.pop(fullname, None)
        if patch is None:
            return None
        import importlib.util

        if not self.pending and self in sys.meta_path:
            sys.meta_path.remove(self)
        # find the real spec without this finder answering again
        spec = importlib.util.find_spec(fullname)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):  # pragma: no cover
            return spec
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            patch(module)

        loader.exec_module = exec_and_patch
        return spec


def install() -> None:
    """Lock numba's cache index updates and kernel compiles, and add the last-resort
    locator (POSIX only).

    Run by ``import parareg``: patches numba now if it is already imported,
    else as soon as it is.
    """
    if os.name != "posix":  # pragma: no cover - no fcntl
        return
    if any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        return
    finder = _PatchOnImport()
    for name, patch in list(finder.pending.items()):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "Dispatcher" if name == _DISPATCHER
                                          else "IndexDataCacheFile"):
            patch(module)
            del finder.pending[name]
    if finder.pending:
        sys.meta_path.insert(0, finder)
