"""The one writer of every file parareg writes: a set of files replaced as one transaction.

Every writer in the package -- :func:`parareg.save`, ITK transform and warp
files, QC pictures, the bench CSV/Markdown/JSON files and the whole output set
of ``parareg register`` -- goes through :class:`OutputSet` (a single file is a
set of one: :func:`write_file`, :func:`write_bytes`, :func:`write_nifti`).

How a set is written
--------------------
1. **Stage.** Each file is written, in background threads, to a temporary
   name in its destination folder (``.NAME.parareg-tmp-XXXX.SUFFIX``), then
   ``fsync``\\ ed and given the mode ``0o666 & ~umask`` (what ``open()`` would
   give; never mkstemp's 0600). ``.nii.gz`` files are compressed in 1 MiB
   chunks on ``num_threads`` threads (zlib releases the GIL; the bytes do not
   depend on the thread count), so staging overlaps whatever the caller
   computes next. Every temporary is held under an exclusive ``flock`` while
   its writer lives: the kernel drops the lock when the process dies, which is
   how a later run tells a dead writer's leftovers from a live one's.
2. **Commit point.** A journal ``.parareg-journal-XXXX.json`` listing the
   renames (and the stale files of the set to remove) is written to a
   temporary, ``fsync``\\ ed and renamed into place; the folder is ``fsync``\\ ed.
3. **Renames.** Each temporary is ``os.replace``\\ d onto its destination,
   stale files are removed, the folder is ``fsync``\\ ed, and the journal is
   deleted. SIGINT and SIGTERM arriving during steps 2-3 (milliseconds) are
   held back and delivered right after.

Guarantee
---------
* An exception, Ctrl-C (KeyboardInterrupt) or SIGTERM (the CLI turns it into
  an exception) before the commit point removes every temporary and leaves
  the earlier files exactly as they were; after it, the new set is completed.
* After ``kill -9`` or a power cut before the commit point, only temporaries
  are left; after it, the journal is left too. The next :class:`OutputSet`
  into that folder, ``parareg apply`` reading transforms from it, and
  :func:`recover` first roll every dead writer's journal **forward** (all of
  its temporaries were complete and fsynced before the journal existed) and
  then remove dead writers' temporaries. So a parareg reader or writer never
  sees a mixed set.
* POSIX has no multi-file rename: between the commit point and the last
  rename (a few ``rename`` calls), and after a crash inside that window until
  the next recovery, a program that is not parareg (``antsApplyTransforms``)
  can see some new files next to old ones; the journal in the folder says so.
* All files of one set live in one folder (an output prefix names one).

``PARAREG_FAULT_POINT`` (test only)
-----------------------------------
Set ``PARAREG_FAULT_POINT`` to one of :data:`FAULT_POINTS` and
``PARAREG_FAULT_MARKER`` to a path: on reaching that point the writer creates
the marker file and sleeps ``PARAREG_FAULT_SLEEP`` seconds (default 60), so a
test can wait for the marker and send a real signal at a known moment. It
costs one dictionary lookup when unset; do not use it outside tests. Points:
``staging`` (the second file was just handed to the background threads; the
caller computes on), ``staged`` (every temporary complete, before the
journal), ``journal`` (commit point passed, no rename yet), ``renamed``
(after the first rename), ``committed`` (all renamed, journal not yet removed).

Compression
-----------
``.nii.gz`` files are compressed by :mod:`parareg.io.gzip_chunks` (level
and strategy chosen by measurement, documented there).
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .gzip_chunks import GZIP_LEVEL, GzipWriter

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, so recover() leaves everything
    fcntl = None

__all__ = ["FAULT_POINTS", "GZIP_LEVEL", "OutputSet", "OutputWriteError", "recover",
           "staging_in", "write_bytes", "write_file", "write_nifti", "write_text"]

_TMP_MARK = ".parareg-tmp-"
_JOURNAL_PREFIX = ".parareg-journal-"
_TMP_RE = re.compile(r"^\..+\.parareg-tmp-[0-9a-f]+")
_JOURNAL_RE = re.compile(r"^\.parareg-journal-[0-9a-f]+\.json$")

ENV_FAULT_POINT = "PARAREG_FAULT_POINT"
ENV_FAULT_MARKER = "PARAREG_FAULT_MARKER"
ENV_FAULT_SLEEP = "PARAREG_FAULT_SLEEP"
#: test-only fault points, in the order a set reaches them
FAULT_POINTS = ("staging", "staged", "journal", "renamed", "committed")


class OutputWriteError(OSError):
    """An output file could not be written; the message names the file and its folder."""

    def __str__(self) -> str:
        return str(self.strerror)


def _fault(point: str) -> None:
    """Test-only hook: see ``PARAREG_FAULT_POINT`` in the module docstring."""
    if os.environ.get(ENV_FAULT_POINT) != point:
        return
    marker = os.environ.get(ENV_FAULT_MARKER)
    if marker:
        Path(marker).write_text(point)
    time.sleep(float(os.environ.get(ENV_FAULT_SLEEP, "60")))


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: the only portable way to read it
    os.umask(mask)
    return mask


def _suffix(name: str) -> str:
    lower = name.lower()
    for suffix in (".nii.gz", ".nii", ".mat", ".txt", ".tfm", ".png", ".svg", ".pdf", ".csv",
                   ".json", ".md"):
        if lower.endswith(suffix):
            return name[len(name) - len(suffix):]
    return ""


def _lock(fd: int, *, block: bool) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible everywhere (Windows); the renames are still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_error(exc: OSError, dest: Path) -> OutputWriteError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return OutputWriteError(exc.errno, f"{reason}: could not write {str(dest)!r} in the folder "
                                       f"{str(dest.parent)!r}")


class _Temporary:
    """A locked temporary file next to ``dest``."""

    def __init__(self, dest: Path, token: str):
        self.dest = dest
        while True:
            name = f".{dest.name}{_TMP_MARK}{token}{secrets.token_hex(2)}{_suffix(dest.name)}"
            self.path = dest.parent / name
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            except OSError as exc:
                raise _write_error(exc, dest) from exc
            _lock(self.fd, block=True)
            if os.fstat(self.fd).st_nlink:  # not reaped between creation and locking
                return
            os.close(self.fd)

    def finish(self, mode: int) -> None:
        os.fchmod(self.fd, mode)
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def discard(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.close()


class OutputSet:
    """Files written together, replaced as one transaction (see the module docstring).

    Parameters
    ----------
    remove : iterable of path, optional
        Files of the set that this transaction deletes when it commits (stale
        outputs of an earlier run that this one does not write, so the folder
        never holds a mixed set). Missing ones are ignored.
    num_threads : int, optional
        Compression threads; ``None`` means :func:`parareg.get_num_threads`.
    gzip_level : int
        zlib level of ``.nii.gz`` files, 0-9 (default :data:`GZIP_LEVEL`).

    Examples
    --------
    >>> with OutputSet() as outputs:                              # doctest: +SKIP
    ...     outputs.add_bytes("a.txt", b"hello")
    ...     outputs.add("b.png", lambda tmp: figure.savefig(tmp))
    ...     # leaving the block commits; an exception discards the set
    """

    def __init__(self, *, remove=(), num_threads=None, gzip_level: int = GZIP_LEVEL):
        if not (isinstance(gzip_level, int) and 0 <= gzip_level <= 9):
            raise ValueError(f"gzip_level must be an integer 0-9, got {gzip_level!r}")
        from ..parallel import resolve_num_threads

        self.gzip_level = gzip_level
        self.num_threads = resolve_num_threads(num_threads)
        self.remove = [Path(p) for p in remove]
        self.paths: list[Path] = []
        self.folder: Path | None = None
        self._token = secrets.token_hex(4)
        self._mode = 0o666 & ~_umask()
        self._temps: list[_Temporary] = []
        self._jobs: list[threading.Thread] = []
        self._errors: dict[int, BaseException] = {}
        self._cancel = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._state = "open"
        for path in self.remove:
            self._folder_of(path)

    # --- staging ---------------------------------------------------------------------------

    def _folder_of(self, path: Path) -> Path:
        folder = path.parent
        if self.folder is None:
            if not folder.is_dir():
                raise FileNotFoundError(f"path: the folder {str(folder)!r} does not exist; "
                                        "create it first")
            self.folder = folder
            recover(folder)
        elif os.path.abspath(folder) != os.path.abspath(self.folder):
            raise ValueError(f"all files of an output set must be in one folder: "
                             f"{str(path)!r} is not in {str(self.folder)!r}")
        return folder

    def _start(self, path, work) -> Path:
        if self._state != "open":
            raise RuntimeError(f"this output set is {self._state}; start a new one")
        path = Path(path)
        if path in self.paths:
            raise ValueError(f"{str(path)!r} is already part of this output set")
        self._folder_of(path)
        if path.is_dir():
            raise IsADirectoryError(f"path: {str(path)!r} is a directory, not a file name")
        temp = _Temporary(path, self._token)
        index = len(self._temps)
        self._temps.append(temp)
        self.paths.append(path)

        def run():
            try:
                work(temp)
                temp.finish(self._mode)
            except OSError as exc:
                self._errors[index] = _write_error(exc, path)
            except BaseException as exc:  # re-raised in the caller by commit()
                self._errors[index] = exc

        job = threading.Thread(target=run, name=f"parareg-write-{path.name}", daemon=True)
        self._jobs.append(job)
        job.start()
        if len(self._jobs) == 2:
            _fault("staging")
        return path

    def add(self, path, write) -> Path:
        """Stage ``path`` by calling ``write(temporary_path)`` in a background thread.

        ``write`` must write the file at the path it is given (any format
        that a library writes by path: matplotlib, scipy.io.savemat...).
        """
        return self._start(path, lambda temp: write(str(temp.path)))

    def add_bytes(self, path, data) -> Path:
        """Stage ``path`` holding ``data`` (bytes; ``str`` is written as UTF-8)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        return self._start(path, lambda temp: self._write_all(temp, [data]))

    def add_nifti(self, path, nifti) -> Path:
        """Stage a nibabel ``Nifti1Image`` at ``path`` (``.nii`` or ``.nii.gz``).

        The file is built and (``.nii.gz``) compressed in parallel chunks in
        the background: the image's arrays must not change until the set is
        committed.
        """
        gz = str(path).lower().endswith(".gz")
        if gz and self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.num_threads,
                                            thread_name_prefix="parareg-gzip")

        def work(temp):
            import nibabel as nib

            if not gz:
                raw = io.BytesIO()
                nifti.to_file_map(nib.Nifti1Image.make_file_map({"image": raw}))
                self._write_all(temp, [raw.getbuffer()])
                return
            with os.fdopen(os.dup(temp.fd), "wb") as f:
                # nibabel writes into the compressor: members compress as the bytes come
                with GzipWriter(f, self._pool, level=self.gzip_level,
                                cancel=self._cancel) as sink:
                    nifti.to_file_map(nib.Nifti1Image.make_file_map({"image": sink}))
                    sink.finish()

        return self._start(path, work)

    @staticmethod
    def _write_all(temp: _Temporary, parts) -> None:
        with os.fdopen(os.dup(temp.fd), "wb") as f:
            for part in parts:
                f.write(part)

    def _wait(self) -> None:
        for job in self._jobs:
            job.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # --- commit / abort --------------------------------------------------------------------

    def commit(self) -> list[Path]:
        """Wait for every file, then replace the earlier files by the new set; return its paths.

        Raises
        ------
        OutputWriteError
            A file could not be written (e.g. no space left): the message
            names it and its folder; the earlier files are left as they were.
        """
        if self._state == "committed":
            return list(self.paths)
        if self._state != "open":
            raise RuntimeError(f"this output set is {self._state}")
        try:
            self._wait()
            if self._errors:  # the first file's error, whichever thread failed first
                raise self._errors[min(self._errors)]
            _fault("staged")
        except BaseException:
            self.abort()
            raise
        if self.folder is None:  # nothing staged, nothing to remove
            self._state = "committed"
            return []
        with _signals_held():
            self._rename_all()
        self._state = "committed"
        return list(self.paths)

    def _rename_all(self) -> None:
        folder = self.folder
        entry = {"renames": [[t.path.name, t.dest.name] for t in self._temps],
                 "remove": [p.name for p in self.remove if p not in self.paths]}
        journal = _Temporary(folder / f"{_JOURNAL_PREFIX}{self._token}.json", self._token)
        final = folder / f"{_JOURNAL_PREFIX}{self._token}.json"
        try:
            try:
                self._write_all(journal, [json.dumps(entry).encode("utf-8")])
                journal.finish(self._mode)
            except OSError as exc:
                raise _write_error(exc, final) from exc
        except BaseException:
            journal.discard()
            self.abort()
            raise
        try:
            os.replace(journal.path, final)  # the commit point
        except BaseException:
            journal.discard()
            self.abort()
            raise
        self._state = "committing"  # from here on the set is completed, never discarded
        try:
            _fsync_folder(folder)
            _fault("journal")
            _roll_forward(folder, entry, after_first=lambda: _fault("renamed"))
            _fault("committed")
            os.unlink(final)
        except BaseException:
            _roll_forward(folder, entry)  # idempotent: finish what the commit started
            final.unlink(missing_ok=True)
            raise
        finally:
            journal.close()
            for temp in self._temps:
                temp.close()

    def abort(self) -> None:
        """Discard the set: stop the writers and remove every temporary; the earlier files stay."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._cancel.set()
        self._wait()
        for temp in self._temps:
            temp.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False


class _signals_held:
    """Hold back SIGINT and SIGTERM for the block (main thread only), then deliver them."""

    def __enter__(self):
        self.pending = []
        self.saved = {}
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.saved[sig] = signal.signal(sig, lambda signum, frame: self.pending.append(signum))
        return self

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        for sig in self.pending:
            signal.raise_signal(sig)
        return False


def _roll_forward(folder: Path, entry: dict, *, after_first=None) -> None:
    for i, (tmp, dest) in enumerate(entry["renames"]):
        try:
            os.replace(folder / tmp, folder / dest)
        except FileNotFoundError:  # renamed already (recovery after a crash mid-commit)
            pass
        if i == 0 and after_first is not None:
            after_first()
    for name in entry["remove"]:
        try:
            (folder / name).unlink()
        except OSError:  # absent, or e.g. a folder of that name (not an output): left alone
            pass
    _fsync_folder(folder)


def recover(folder) -> list[str]:
    """Finish or clean up what dead writers left in ``folder``; return what was done.

    Journals of dead writers are rolled forward (their sets were complete when
    the journal was written), then their temporaries are removed. Files of
    live writers (other processes writing now) are left alone; a live writer
    in the middle of its renames is waited for. Called by every
    :class:`OutputSet` on its folder and by ``parareg apply`` on the folders
    of its transform files.

    Examples
    --------
    >>> recover("out")  # doctest: +SKIP
    []
    """
    folder = Path(folder)
    done: list[str] = []
    if fcntl is None:  # pragma: no cover - cannot tell a dead writer's files from a live one's
        return done
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return done
    for name in names:
        if not _JOURNAL_RE.match(name):
            continue
        try:
            fd = os.open(folder / name, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            _lock(fd, block=True)  # a live writer finishes its renames first
            if os.fstat(fd).st_nlink == 0:
                continue  # its writer finished
            with os.fdopen(os.dup(fd), "rb") as f:
                entry = json.loads(f.read().decode("utf-8"))
            _roll_forward(folder, entry)
            os.unlink(folder / name)
            done.append(f"completed the interrupted output set {[d for _, d in entry['renames']]}")
        except (ValueError, KeyError, TypeError):  # unreadable journal: not written by us
            continue
        finally:
            os.close(fd)
    for name in names:
        if not _TMP_RE.match(name):
            continue
        try:
            fd = os.open(folder / name, os.O_RDONLY)
        except OSError:
            continue
        try:
            if _lock(fd, block=False) and os.fstat(fd).st_nlink:
                os.unlink(folder / name)
                done.append(f"removed the temporary {name}")
        except OSError:
            pass
        finally:
            os.close(fd)
    return done


# --- sets of one -----------------------------------------------------------------------------


def staging_in(outputs):
    """``outputs`` checked as an :class:`OutputSet` (or ``None``), for writers' ``outputs=``."""
    if outputs is not None and not isinstance(outputs, OutputSet):
        raise TypeError(f"outputs must be a parareg.io.OutputSet or None, got "
                        f"{type(outputs).__name__}")
    return outputs


def write_file(path, write, *, num_threads=None) -> Path:
    """Write one file through ``write(temporary_path)``, atomically (a set of one)."""
    with OutputSet(num_threads=num_threads) as outputs:
        outputs.add(path, write)
    return Path(path)


def write_bytes(path, data) -> Path:
    """Write ``data`` (bytes) to ``path`` atomically."""
    with OutputSet(num_threads=1) as outputs:
        outputs.add_bytes(path, data)
    return Path(path)


def write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_nifti(path, nifti, *, num_threads=None) -> Path:
    """Write a nibabel ``Nifti1Image`` to ``path`` atomically (parallel gzip for ``.nii.gz``)."""
    with OutputSet(num_threads=num_threads) as outputs:
        outputs.add_nifti(path, nifti)
    return Path(path)
