"""What this process may still use (MemAvailable, cgroup, ulimits), sizes, and measured peaks."""

from __future__ import annotations

import math
import re
import resource
from pathlib import Path

import numpy as np

from .model import GiB, MiB

#: virtual memory a run maps beyond its RSS after the check (numba code, thread stacks and
#: malloc arenas; measured 0-136 MiB with 2 threads), kept free under an address-space limit
VIRTUAL_RESERVE = 256 * MiB
#: set to 0 to skip the comparison with the memory available (max_memory still applies)
ENV_MEMORY_CHECK = "PARAREG_MEMORY_CHECK"


_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": MiB, "mib": MiB,
          "mb": 10**6, "g": GiB, "gib": GiB, "gb": 10**9, "t": 2**40, "tib": 2**40,
          "tb": 10**12}
_SIZE = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*([a-z]*)\s*$", re.I)


def parse_size(value, *, name: str = "max_memory") -> int:
    """A memory size in bytes from ``8G``, ``512M``, ``1.5GiB``, ``2e9`` or a number of bytes.

    ``K``, ``M``, ``G``, ``T`` and ``KiB`` ... ``TiB`` are powers of 1024; ``KB`` ...
    ``TB`` powers of 1000; no unit means bytes. Raises ``ValueError`` naming
    ``name`` for anything else, zero or a negative size.

    Examples
    --------
    >>> parse_size("1.5GiB") == parse_size("1536M") == 1536 * 2**20
    True
    """
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a size such as 8G, 512M or 1.5GiB, got {value!r}")
    if isinstance(value, (int, np.integer, float, np.floating)):
        number, unit = float(value), ""
    elif isinstance(value, str):
        match = _SIZE.match(value)
        if match is None:
            raise ValueError(f"{name} must be a size such as 8G, 512M or 1.5GiB, "
                             f"got {value!r}")
        number, unit = float(match.group(1)), match.group(2).lower()
        if unit not in _UNITS:
            raise ValueError(f"{name}: unknown unit {match.group(2)!r} in {value!r}; use B, "
                             "K, M, G, T (powers of 1024, also KiB ... TiB) or KB ... TB")
    else:
        raise ValueError(f"{name} must be a number of bytes or a size such as 8G, "
                         f"got {type(value).__name__}")
    size = number * _UNITS[unit]
    if not math.isfinite(size) or size < 1:
        raise ValueError(f"{name} must be a positive size (at least 1 byte), got {value!r}")
    return int(size)



# --- what the process may use --------------------------------------------------------------


def _kib_field(path: str, key: str) -> int | None:
    """Bytes of the ``key: N kB`` line of ``/proc/self/status`` or ``/proc/meminfo``."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value < 2**60 else None  # cgroup v1 "no limit" is ~2**63


def _cgroup_headroom(cgroup_file="/proc/self/cgroup", mount="/sys/fs/cgroup") -> int | None:
    """Smallest ``limit - usage`` of this process's memory cgroup and its parents (v2 or v1)."""
    mount = Path(mount)
    try:
        lines = Path(cgroup_file).read_text().splitlines()
    except OSError:
        return None
    best = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2
            root, limit_file, usage_file = mount, "memory.max", "memory.current"
        elif "memory" in controllers.split(","):  # cgroup v1
            root = mount / "memory"
            limit_file, usage_file = "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        folder = root / path.lstrip("/")
        while True:
            limit = _read_int(folder / limit_file)
            usage = _read_int(folder / usage_file)
            if limit is not None and usage is not None:
                room = max(0, limit - usage)
                best = room if best is None else min(best, room)
            if folder == root or root not in folder.parents:
                break
            folder = folder.parent
    return best


def available_memory() -> tuple[int | None, str]:
    """Peak RSS this process can reach, and what sets it; ``(None, "")`` when unknown.

    The smallest of: the current RSS plus ``MemAvailable`` (/proc/meminfo); plus
    the room left under the memory cgroup's limit (v2 ``memory.max`` or v1
    ``memory.limit_in_bytes``, minus usage, for the cgroup and its parents);
    the address-space limit (``RLIMIT_AS``, ``ulimit -v``) and the data limit
    (``RLIMIT_DATA``, ``ulimit -d``) less the virtual memory mapped beyond the RSS
    and ``VIRTUAL_RESERVE``.
    """
    rss = _kib_field("/proc/self/status", "VmRSS") or 0
    limits = []
    free = _kib_field("/proc/meminfo", "MemAvailable")
    if free is not None:
        limits.append((rss + free, "MemAvailable in /proc/meminfo"))
    room = _cgroup_headroom()
    if room is not None:
        limits.append((rss + room, "the memory cgroup's limit"))
    for which, key, text in ((resource.RLIMIT_AS, "VmSize", "the address-space limit "
                              "(ulimit -v)"),
                             (resource.RLIMIT_DATA, "VmData", "the data-size limit (ulimit -d)")):
        soft = resource.getrlimit(which)[0]
        if soft == resource.RLIM_INFINITY:
            continue
        mapped = _kib_field("/proc/self/status", key)
        beyond = max(0, (mapped or rss) - rss)
        limits.append((max(0, soft - beyond - VIRTUAL_RESERVE), text))
    if not limits:
        return None, ""
    return min(limits)


#: forks ``argv[2:]`` from this small interpreter and writes "exit-code peak-bytes" to argv[1]
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss * 1024}")
"""


def measure_peak_rss(command, **popen_options) -> tuple[int, int]:
    """Run ``command`` (a list) in a child; return its exit code and peak RSS in bytes.

    A child's ``ru_maxrss`` starts from the resident size of the process it was
    forked from (Linux keeps the high-water mark across ``exec``), so a large
    caller would inflate it: the command is forked from a small launcher
    interpreter instead. ``popen_options`` go to :class:`subprocess.Popen` (e.g.
    ``stdout``, ``stderr``, ``env``, ``timeout``).
    """
    import subprocess
    import sys
    import tempfile

    timeout = popen_options.pop("timeout", None)
    with tempfile.TemporaryDirectory(prefix="parareg-rss-") as folder:
        result = Path(folder) / "result"
        subprocess.run([sys.executable, "-c", _LAUNCHER, str(result), *map(str, command)],
                       check=True, timeout=timeout, **popen_options)
        code, peak = result.read_text().split()
    return int(code), int(peak)
