"""The cold compile stays small: a SyN registration compiles one specialisation per kernel.

A fresh process runs a tiny 3D SyN registration (the CLI's path: MI affine,
SyN CC, Jacobian determinant), then a tiny 2D one, under a numba compile-event
listener, and reports every kernel's signatures. The checks hold on a clean
numba cache (everything compiles) and on a warm one (nothing compiles, but the
signatures loaded from the cache are listed all the same):

* the 3D run uses exactly the kernels of ``SYN_3D_KERNELS``, each with one
  signature (C-contiguous arrays, no literal arguments);
* the 2D run adds no signature to those: 2D is lifted to the 3D kernels (it only adds the
  kernels of the presets' 2D-only exact CC gradient, one signature each);
* no compile pulls in numba's error-message machinery (unicode, str/repr,
  shape-mismatch errors), which array expressions and slice assignments do, nor
  numba's ``min``/``max`` overloads (one compile per argument-type pair).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

#: every kernel a 3D SyN registration (and its Jacobian summary) runs; one signature each
SYN_3D_KERNELS = {
    "cc.cc_box_sums_yz",
    "cc.cc_steps",
    "fields.compose_3d",
    "fields.invert_step_3d",
    "fields.jacobian_determinant_3d",
    "fields.max_scaled_norm",
    "histogram.joint_histogram_3d",
    "histogram.mattes_gradient_3d",
    "resample.resample_affine_3d",
    "resample.resample_field_affine_3d",
    "resample.warp_3d",
    "smooth.convolve_middle",
    "smooth.convolve_middle_narrow",
}

#: the presets' 2D-only CC gradient (``gradient="exact"``): the 2D run adds these, one
#: signature each (the same lifted 3D kernels)
SYN_2D_ONLY_KERNELS = {"cc.box_sums_yz", "cc.cc_exact_coefficients", "cc.cc_exact_steps"}

#: numba's ``min``/``max`` overloads: one more compile per argument-type pair (seven in a
#: SyN run before the kernels wrote the comparisons out: ``b if b > a else a`` is numba's
#: own ``max(a, b)``, NaN handling included)
MIN_MAX = ("builtins.ol_min", "builtins.ol_max")

#: fragments of numba-internal functions that only error-message code compiles
ERROR_MACHINERY = ("unicode", "builtins.ol_str", "builtins.ol_repr", "raise_with_shape")

_SCRIPT = textwrap.dedent('''
    import importlib, json, pkgutil
    import numpy as np
    from numba.core import event
    from numba.core.registry import CPUDispatcher
    import parareg
    import parareg.kernels
    from parareg import fields

    events = []

    class Listener(event.Listener):
        def on_start(self, ev):
            pass

        def on_end(self, ev):
            d = ev.data["dispatcher"]
            events.append(f"{d.py_func.__module__}.{d.py_func.__qualname__} {ev.data['args']}")

    event.register("numba:compile", Listener())

    def kernels():
        found = {}
        for info in pkgutil.iter_modules(parareg.kernels.__path__):
            module = importlib.import_module(f"parareg.kernels.{info.name}")
            for name, obj in vars(module).items():
                if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == module.__name__:
                    found[f"{info.name}.{name}"] = {
                        "kernel": not obj.targetoptions.get("no_cpython_wrapper"),
                        "signatures": [str(s) for s in obj.signatures]}
        return found

    def pair(shape, spacing):
        rng = np.random.default_rng(0)
        grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
        blob = np.exp(-sum(g * g for g in grid) * 3).astype(np.float32)
        noise = rng.normal(scale=0.01, size=shape).astype(np.float32)
        v2w = np.diag([spacing] * len(shape) + [1.0])
        moved = np.roll(blob, 1, axis=0) * 1.1 + noise
        return parareg.Image(blob + noise, v2w), parareg.Image(moved, v2w)

    syn = {"levels": ((2, 1.0, 3), (1, 0.0, 2))}
    fixed, moving = pair((20, 18, 16), 2.0)
    result = parareg.register(fixed, moving, syn_options=syn, num_threads=2)
    fields.jacobian_determinant(result.mapping.forward, vox2world=fixed.vox2world)
    after_3d = kernels()
    fixed2, moving2 = pair((40, 36), 1.0)
    parareg.register(fixed2, moving2, syn_options=syn, num_threads=2)
    print(json.dumps({"events": events, "after_3d": after_3d, "after_2d": kernels()}))
''')


@pytest.fixture(scope="module")
def report():
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _used(table):
    return {name: entry["signatures"] for name, entry in table.items()
            if entry["kernel"] and entry["signatures"]}


def test_3d_syn_compiles_its_kernels_once_each(report):
    used = _used(report["after_3d"])
    assert set(used) == SYN_3D_KERNELS
    assert {name: len(sigs) for name, sigs in used.items()} == dict.fromkeys(used, 1)


def test_kernels_take_c_contiguous_arrays_and_no_literals(report):
    for name, entry in report["after_2d"].items():
        for signature in entry["signatures"]:
            assert "Literal" not in signature, (name, signature)
            if entry["kernel"]:
                assert "'A'" not in signature and "'F'" not in signature, (name, signature)


def test_2d_registration_reuses_the_3d_kernels(report):
    after_2d = _used(report["after_2d"])
    after_3d = _used(report["after_3d"])
    assert {name: after_2d[name] for name in after_3d} == after_3d  # no new signature
    assert set(after_2d) - set(after_3d) == SYN_2D_ONLY_KERNELS
    assert all(len(after_2d[name]) == 1 for name in SYN_2D_ONLY_KERNELS)


def test_no_compile_of_error_message_machinery(report):
    # on a warm cache nothing compiles and this holds trivially; a clean cache exercises it
    bad = [e for e in report["events"] if not e.startswith("parareg.")
           and any(fragment in e for fragment in ERROR_MACHINERY)]
    assert bad == []


def test_no_compile_of_builtin_min_max(report):
    # as above: a clean cache exercises it
    assert [e for e in report["events"] if any(f in e for f in MIN_MAX)] == []
