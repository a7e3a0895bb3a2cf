"""Gzip of one buffer in fixed-size chunks compressed on a thread pool (as pigz does); and back.

zlib releases the GIL while it compresses, so chunks compress in parallel.
Each chunk is a raw deflate stream primed with the 32 KiB of data before it
and ended with a sync flush (the last one with the final block), so their
concatenation is one ordinary gzip member that every reader (Python's gzip,
nibabel, ITK, ANTs, ``gzip -d``) reads. Chunk bounds depend only on the data
size, never on the thread count, and the header's mtime is 0: the bytes are
reproducible.

The settings were chosen by measurement (``benchmarks/gzip_level.py``,
quoted in BENCHMARKS.md): level :data:`GZIP_LEVEL` 1 with the strategy
:data:`GZIP_STRATEGY` ``Z_RLE``. On parareg's float32 outputs the LZ77
search of the default strategy finds almost nothing to match: ``Z_RLE`` is
1.5-5x faster than level 1 for warps 1-2 % larger and images as small as
level 9; levels 2-9 gain under 1 % for up to 4x the time; storing without
compression (level 0) is free but 10-12 % (warps) to 3x (images) larger.
"""

from __future__ import annotations

import mmap
import struct
import zlib

import numpy as np

__all__ = ["CHUNK_BYTES", "GZIP_LEVEL", "GZIP_STRATEGY", "compress_chunk", "read_gzip",
           "write_gzip"]

#: zlib level of every ``.nii.gz`` parareg writes
GZIP_LEVEL = 1
#: zlib strategy: run-length matches only
GZIP_STRATEGY = zlib.Z_RLE
#: uncompressed bytes per compression unit (fixed, so the bytes do not depend on threads)
CHUNK_BYTES = 1 << 20
#: zlib's window: each chunk is primed with the previous 32 KiB of data
_WINDOW = 1 << 15
#: compressed bytes handed to zlib per step when reading
_READ_STEP = 1 << 22

try:  # optional: ISA-L's inflate (pip install isal), measured 1.3x zlib's on a 1 mm warp
    from isal import isal_zlib as _INFLATE
except ImportError:  # the standard library's, with the same interface
    _INFLATE = zlib


def _header(level: int) -> bytes:
    xfl = 4 if level == 1 else 2 if level == 9 else 0
    # magic, deflate, no flags, mtime 0 (reproducible bytes), xfl, OS unknown
    return b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + bytes([xfl, 255])


def compress_chunk(view, start: int, stop: int, level: int, last: bool,
                   strategy: int = GZIP_STRATEGY) -> bytes:
    """Raw deflate of ``view[start:stop]``, primed with the 32 KiB before ``start``.

    Ends with a sync flush, or with the final block when ``last``.
    """
    zdict = bytes(view[max(0, start - _WINDOW):start])
    c = (zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy, zdict=zdict) if zdict
         else zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy))
    data = c.compress(view[start:stop])
    return data + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def write_gzip(file, view, pool, *, level: int = GZIP_LEVEL, cancel=None) -> None:
    """Write ``view`` (bytes-like) gzip-compressed to the binary ``file``.

    Parameters
    ----------
    file : binary file object
    view : bytes-like
    pool : concurrent.futures.Executor
        Runs the chunk compressions; the calling thread writes them in order.
    level : int
        zlib level 0-9.
    cancel : threading.Event, optional
        When set, stop at the next chunk (the file is then incomplete).
    """
    size = len(view)
    bounds = [(s, min(s + CHUNK_BYTES, size)) for s in range(0, max(size, 1), CHUNK_BYTES)]

    def chunk(start, stop, last):
        if cancel is not None and cancel.is_set():
            return b""
        return compress_chunk(view, start, stop, level, last)

    futures = [pool.submit(chunk, start, stop, i == len(bounds) - 1)
               for i, (start, stop) in enumerate(bounds)]
    try:
        file.write(_header(level))
        crc = 0
        for (start, stop), future in zip(bounds, futures):
            data = future.result()
            if cancel is not None and cancel.is_set():
                return
            file.write(data)
            crc = zlib.crc32(view[start:stop], crc)
        file.write(struct.pack("<II", crc, size & 0xFFFFFFFF))
    finally:
        for future in futures:
            future.cancel()


def read_gzip(path, size: int) -> np.ndarray:
    """The first ``size`` uncompressed bytes of the gzip file ``path``, as a uint8 array.

    The file is memory-mapped and inflated in steps of 4 MiB of input straight
    into one array (no intermediate copies of the output). Concatenated gzip
    members are read on. Raises ``ValueError`` when the file holds fewer than
    ``size`` bytes or is not valid gzip (``zlib.error``, a ``ValueError``
    here), ``OSError`` when it cannot be read.
    """
    out = np.empty(size, dtype=np.uint8)
    filled = 0
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped, \
            memoryview(mapped) as source:
        start = 0
        try:
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
        except (zlib.error, _INFLATE.error) as exc:
            raise ValueError(f"not a valid gzip file: {exc}") from None
    if filled < size:
        raise ValueError(f"expected {size} bytes, the file holds {filled}: it is truncated")
    return out
