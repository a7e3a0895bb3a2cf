"""The process backend for real: workers from a forkserver, killed workers replaced.

The script runs in a fresh interpreter (a subprocess), as a user's would: its
function lives in its ``__main__``, threads are running when the workers
start (parareg's pool, a busy user thread), and ``DeprecationWarning`` is an
error (Python 3.12 warns when a process with threads forks).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import multiprocessing, os, signal, sys, threading, time
    from concurrent.futures.process import BrokenProcessPool

    import parareg.parallel.map as map_module
    from parareg.parallel import parallel_map

    def where(x):
        time.sleep(0.02)  # long enough that the worker gets chunks too
        return x * x, os.getpid(), os.getppid()

    def die(x):
        time.sleep(0.02)
        if multiprocessing.parent_process() is not None:  # in a worker
            os.kill(os.getpid(), signal.SIGKILL)
        return x

    if __name__ == "__main__":
        parallel_map(time.sleep, [0.01] * 8, num_threads=2)  # parareg's thread pool exists
        busy = threading.Event()
        threading.Thread(target=busy.wait, daemon=True).start()  # and a user thread
        out = parallel_map(where, range(12), num_threads=2, backend="processes", grain=1)
        assert [v for v, _, _ in out] == [x * x for x in range(12)], out
        workers = {pid for _, pid, _ in out} - {os.getpid()}
        assert workers, out
        # not forked from this process (it has threads): from a forkserver (or spawned)
        pool = map_module._process_pools[1]
        method = pool._mp_context.get_start_method()
        assert method in ("forkserver", "spawn"), method
        if method == "forkserver":
            assert {ppid for _, pid, ppid in out if pid in workers} != {os.getpid()}, out
        # workers killed from outside while idle: the next call starts fresh ones
        for pid in list(pool._processes):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        out = parallel_map(where, range(12), num_threads=2, backend="processes", grain=1)
        assert [v for v, _, _ in out] == [x * x for x in range(12)], out
        assert map_module._process_pools[1] is not pool
        # a worker dying in the middle of a call: that call reports it, the next recovers
        try:
            parallel_map(die, range(12), num_threads=2, backend="processes", grain=1)
        except BrokenProcessPool:
            print("broken", flush=True)
        out = parallel_map(where, range(12), num_threads=2, backend="processes", grain=1)
        assert [v for v, _, _ in out] == [x * x for x in range(12)], out
        print("ok", method, flush=True)
""")


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_workers_start_clean_and_a_killed_worker_is_replaced(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", str(script)],
                          capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.split()
    assert "broken" in lines and "ok" in lines, done.stdout
