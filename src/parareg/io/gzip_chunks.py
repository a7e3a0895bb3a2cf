"""Gzip of one buffer in fixed-size members compressed on a thread pool; read back in parallel.

zlib releases the GIL while it compresses and inflates, so both run on
threads. A file is written as a sequence of gzip **members**, one per
:data:`CHUNK_BYTES` of data. Concatenated members are ordinary gzip (RFC
1952, section 2.2): Python's gzip, nibabel, ITK/ANTs (zlib's ``gzread``)
and ``gzip -d`` read them as one stream. Each member's header carries an
extra field (``FEXTRA``, subfield ``PR``, as BGZF carries ``BC``) holding
the member's length and its uncompressed size, so a reader can find every
member from the headers alone and inflate them in parallel; files without
it (written by ANTs, nibabel, gzip) are inflated in one serial pass.
Member bounds depend only on the data size, never on the thread count, and
the headers' mtime is 0: the bytes are reproducible.

The settings were chosen by measurement (``benchmarks/gzip_level.py``,
quoted in BENCHMARKS.md): level :data:`GZIP_LEVEL` 1 with the strategy
:data:`GZIP_STRATEGY` ``Z_RLE``. On parareg's float32 outputs the LZ77
search of the default strategy finds almost nothing to match: ``Z_RLE`` is
1.5-5x faster than level 1 for warps 1-2 % larger and images as small as
level 9; levels 2-9 gain under 1 % for up to 4x the time; storing without
compression (level 0) is free but 10-12 % (warps) to 3x (images) larger.
"""

from __future__ import annotations

import collections
import io
import mmap
import struct
import zlib

import numpy as np

__all__ = ["CHUNK_BYTES", "GZIP_LEVEL", "GZIP_STRATEGY", "GzipWriter", "compress_chunk",
           "read_gzip"]

#: zlib level of every ``.nii.gz`` parareg writes
GZIP_LEVEL = 1
#: zlib strategy: run-length matches only
GZIP_STRATEGY = zlib.Z_RLE
#: uncompressed bytes per member (fixed, so the bytes do not depend on threads)
CHUNK_BYTES = 1 << 20
#: members compressed ahead of the one being written, at most
_AHEAD = 16
#: compressed bytes handed to zlib per step when reading serially
_READ_STEP = 1 << 22
#: member header: magic, deflate, FEXTRA, mtime 0, xfl, OS unknown, XLEN, then the subfield
#: "PR" of 8 bytes: the member's length in the file and its uncompressed size
_MEMBER = struct.Struct("<4sIBBH2sHII")
_MAGIC = b"\x1f\x8b\x08\x04"
_SUBFIELD = b"PR"
_TRAILER = struct.Struct("<II")  # CRC-32, uncompressed size

try:  # optional: ISA-L's inflate (pip install isal), measured 1.3x zlib's on a 1 mm warp
    from isal import isal_zlib as _INFLATE
except ImportError:  # the standard library's, with the same interface
    _INFLATE = zlib


def compress_chunk(view, start: int, stop: int, level: int,
                   strategy: int = GZIP_STRATEGY) -> bytes:
    """``view[start:stop]`` as one gzip member whose header records its length and size."""
    data = view[start:stop]
    c = zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy)
    body = c.compress(data) + c.flush()
    size = stop - start
    xfl = 4 if level == 1 else 2 if level == 9 else 0
    header = _MEMBER.pack(_MAGIC, 0, xfl, 255, 8 + 4, _SUBFIELD, 8,
                          _MEMBER.size + len(body) + _TRAILER.size, size)
    return header + body + _TRAILER.pack(zlib.crc32(data), size & 0xFFFFFFFF)


class _Cancelled(Exception):
    """The writer's ``cancel`` event was set: the stream is left incomplete."""


class GzipWriter(io.RawIOBase):
    """A binary file whose bytes go gzip-compressed into ``file``, members compressed on a pool.

    The stream is cut into members of :data:`CHUNK_BYTES` at fixed offsets, so
    the bytes do not depend on how the data arrives in :meth:`write` calls or
    on the thread count; a member is compressed as soon as its data is in,
    and the writing thread writes finished members in order (at most
    :data:`_AHEAD` are in flight). :meth:`finish` completes the stream;
    :meth:`close` alone abandons it.

    Parameters
    ----------
    file : binary file object
    pool : concurrent.futures.Executor
    level : int
        zlib level 0-9.
    cancel : threading.Event, optional
        When set, the next :meth:`write` or :meth:`finish` raises and
        compresses nothing more (the file is then incomplete).

    Notes
    -----
    The buffers given to :meth:`write` are compressed later, in place: they
    must not change until :meth:`finish` returns (``bytes`` never do).
    """

    def __init__(self, file, pool, *, level: int = GZIP_LEVEL, cancel=None):
        super().__init__()
        self._file, self._pool, self._level, self._cancel = file, pool, level, cancel
        self._partial = bytearray()  # the start of the next member
        self._pending: collections.deque = collections.deque()
        self._position = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        """Only to where the stream is (nibabel checks its position so); anything else fails."""
        if (whence, offset) not in ((0, self._position), (1, 0)):
            raise OSError("a gzip stream being written cannot seek")
        return self._position

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        n, start = len(view), 0
        if self._partial:
            start = min(CHUNK_BYTES - len(self._partial), n)
            self._partial += view[:start]
            if len(self._partial) == CHUNK_BYTES:
                self._submit(bytes(self._partial))
                self._partial = bytearray()
        while n - start >= CHUNK_BYTES:
            self._submit(view[start:start + CHUNK_BYTES])
            start += CHUNK_BYTES
        if start < n:
            self._partial += view[start:]
        self._position += n
        return n

    def finish(self) -> None:
        """Compress what is left and write every member: the gzip stream is complete."""
        if self._partial or self._position == 0:  # an empty stream is one empty member
            self._submit(bytes(self._partial))
            self._partial = bytearray()
        while self._pending:
            self._file.write(self._pending.popleft().result())

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        super().close()

    def _submit(self, chunk) -> None:
        cancel = self._cancel
        if cancel is not None and cancel.is_set():
            raise _Cancelled("the output set was aborted")

        def member():
            if cancel is not None and cancel.is_set():
                return b""
            return compress_chunk(chunk, 0, len(chunk), self._level)

        self._pending.append(self._pool.submit(member))
        while self._pending and (self._pending[0].done() or len(self._pending) > _AHEAD):
            self._file.write(self._pending.popleft().result())


def _members(source) -> list[tuple[int, int, int]] | None:
    """``(start, stop, size)`` of every member of a file parareg wrote, from their headers.

    ``None`` when the file was not written so (any member without the ``PR``
    field), or when the last member is cut short: it is then inflated serially
    (which reports a truncated file as such).
    """
    members, start, n = [], 0, len(source)
    while start < n:
        if n - start < _MEMBER.size + _TRAILER.size:
            return None
        magic, _, _, _, xlen, subfield, length, total, size = _MEMBER.unpack_from(source, start)
        if (magic != _MAGIC or xlen != 12 or subfield != _SUBFIELD or length != 8
                or total < _MEMBER.size + _TRAILER.size or start + total > n):
            return None
        members.append((start, start + total, size))
        start += total
    return members or None


def _inflate_member(source, start: int, stop: int, size: int, out: np.ndarray) -> None:
    """Inflate the member ``source[start:stop]`` into ``out`` (its ``size`` bytes, or fewer).

    One call with the output's exact size: no growing buffers (a decompressor
    object's cost 0.3 s of page faults per 1 mm warp). It checks the CRC and
    that the stream ends; the size is checked here.
    """
    with source[start:stop] as piece:
        data = _INFLATE.decompress(piece, 31, max(size, 1))  # GIL released
    if len(data) != size:
        raise ValueError("a member does not hold what its header says")
    out[:] = np.frombuffer(data, dtype=np.uint8, count=len(out))


def _read_members(source, members, out: np.ndarray, num_threads) -> int:
    """Inflate ``members`` into ``out`` on the pool; return the bytes filled."""
    from ..parallel import for_each_unit

    units, filled = [], 0
    for start, stop, size in members:
        if filled >= len(out):
            break
        units.append((start, stop, size, filled))
        filled += size
    for_each_unit(lambda unit, start, stop, size, at: _inflate_member(
        source, start, stop, size, out[at:at + size]), units, num_threads=num_threads)
    return min(filled, len(out))


def _read_serial(source, out: np.ndarray) -> int:
    """Inflate ``source`` (concatenated members) in one pass into ``out``; return bytes filled."""
    size, filled, start = len(out), 0, 0
    while filled < size and start < len(source):
        member = _INFLATE.decompressobj(31)
        while filled < size and not member.eof and start < len(source):
            with source[start:start + _READ_STEP] as step:
                start += len(step)
                data = member.decompress(step, size - filled)  # GIL released
            out[filled:filled + len(data)] = np.frombuffer(data, dtype=np.uint8)
            filled += len(data)
        if member.eof:  # the next member starts after this one's trailer
            start -= len(member.unused_data)
    return filled


def read_gzip(path, size: int, *, num_threads: int | None = None) -> np.ndarray:
    """The first ``size`` uncompressed bytes of the gzip file ``path``, as a uint8 array.

    The file is memory-mapped and inflated straight into one array: the
    members of a file parareg wrote (:class:`GzipWriter`) on ``num_threads``
    threads, any other gzip file in one pass of 4 MiB steps. Concatenated
    members are read on.

    Raises
    ------
    ValueError
        The file holds fewer than ``size`` bytes or is not valid gzip
        (``zlib.error`` is turned into it).
    OSError
        The file cannot be read.
    """
    out = np.empty(size, dtype=np.uint8)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped, \
            memoryview(mapped) as source:
        try:
            members = _members(source)
            filled = (_read_members(source, members, out, num_threads) if members is not None
                      else _read_serial(source, out))
        except (zlib.error, _INFLATE.error) as exc:
            raise ValueError(f"not a valid gzip file: {exc}") from None
    if filled < size:
        raise ValueError(f"expected {size} bytes, the file holds {filled}: it is truncated")
    return out
