"""The memory estimate (parareg.memory) and the check before allocating, in Python and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import nibabel as nib
import numpy as np
import pytest

import parareg
from parareg.cli.main import main
from parareg.memory import (
    BASELINE_BYTES,
    InsufficientMemoryError,
    available_memory,
    check_registration,
    estimate,
    measure_peak_rss,
    parse_size,
)

MiB = 2**20


def blob(shape, centre_shift=0.0) -> np.ndarray:
    grid = np.indices(shape, dtype=np.float32)
    centre = np.array([(n - 1) / 2 + centre_shift for n in shape], np.float32)
    r2 = ((grid - centre.reshape(-1, 1, 1, 1)) ** 2).sum(0)
    return np.exp(-r2 / (2 * (min(shape) / 5) ** 2)).astype(np.float32)


def write_pair(folder, shape) -> tuple[str, str]:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    paths = []
    for name, shift in (("fixed", 0.0), ("moving", 1.0)):
        path = folder / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(blob(shape, shift), affine), str(path))
        paths.append(str(path))
    return paths[0], paths[1]


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("parareg: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


# --- the model -----------------------------------------------------------------------------


@pytest.mark.parametrize("transform", ["rigid", "affine", "syn"])
def test_estimate_grows_with_size_and_about_linearly_in_voxels(transform):
    sizes = [(40, 48, 56), (80, 96, 112), (160, 192, 224)]
    peaks = [estimate(s, s, transform=transform, outputs=True).peak for s in sizes]
    assert peaks[0] < peaks[1] < peaks[2]
    data = [p - BASELINE_BYTES for p in peaks]
    # 8x the voxels: 8x the arrays, up to the capped allocator slack and pyramid rounding
    assert data[2] / data[1] == pytest.approx(8.0, rel=0.06)


def test_estimate_parts_sum_to_the_peak_and_name_the_syn_buffers():
    need = estimate((160, 192, 224), (256, 256, 256))
    assert sum(need.parts.values()) == need.peak
    assert need.phase == "SyN level 3/3 (shrink 1): metric"
    nf = 160 * 192 * 224
    assert need.parts["CC box sums"] == 40 * nf  # five float64 window sums
    assert need.parts["displacement fields"] == 4 * 12 * nf  # u_s, u_m, v_s, v_m
    assert max(need.phases.values()) == need.peak


def test_coarser_preset_and_cheaper_metric_need_less():
    shape = (160, 192, 224)
    default = estimate(shape, shape).peak
    assert estimate(shape, shape, preset="fast").peak < default
    assert estimate(shape, shape, metric="ssd").peak < default
    assert estimate(shape, shape, transform="affine").peak < estimate(shape, shape,
                                                                        preset="fast").peak


@pytest.mark.parametrize("kwargs, match", [
    ({"transform": "bspline"}, "transform must be one of"),
    ({"metric": "ncc"}, "metric must be one of"),
    ({"preset": "slow"}, "preset must be one of"),
    ({"levels": ((0, 1.0, 10),)}, "factor must be an integer >= 1"),
])
def test_estimate_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        estimate((8, 8, 8), (8, 8, 8), **kwargs)


def test_estimate_rejects_bad_shapes():
    with pytest.raises(ValueError, match="fixed_shape"):
        estimate((8, 0, 8), (8, 8, 8))
    with pytest.raises(ValueError, match="same number of dimensions"):
        estimate((8, 8), (8, 8, 8))


@pytest.mark.parametrize("text, expected", [
    ("8G", 8 * 2**30), ("512M", 512 * MiB), ("1.5GiB", 1536 * MiB), ("2GB", 2 * 10**9),
    ("1024", 1024), (" 64 k ", 65536), (3e9, 3_000_000_000), (1, 1),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("value, match", [
    ("abc", "must be a size such as 8G"), ("0", "positive size"), ("-1G", "positive size"),
    ("12Q", "unknown unit 'Q'"), (True, "must be a size"), ([8], "must be a number of bytes"),
    ("nan", "must be a size such as"), (float("inf"), "positive size"),
])
def test_parse_size_rejects_bad_values(value, match):
    with pytest.raises(ValueError, match=match) as info:
        parse_size(value)
    assert "max_memory" in str(info.value)


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_cgroup_headroom_takes_the_tightest_of_the_cgroup_and_its_parents(tmp_path, version):
    from parareg.memory.limits import _cgroup_headroom

    if version == "v2":
        proc, root, files = "0::/jobs/job1\n", tmp_path, ("memory.max", "memory.current")
    else:
        proc = "5:cpu:/\n4:memory:/jobs/job1\n0::/\n"
        root, files = tmp_path / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes")
    (tmp_path / "cgroup").write_text(proc)
    for folder, limit, usage in ((root, "max" if version == "v2" else str(2**63 - 4096), "5"),
                                 (root / "jobs", str(3 * 2**30), str(2 * 2**30)),
                                 (root / "jobs" / "job1", str(4 * 2**30), str(2**30))):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / files[0]).write_text(limit + "\n")
        (folder / files[1]).write_text(usage + "\n")
    assert _cgroup_headroom(tmp_path / "cgroup", tmp_path) == 2**30  # the parent's 3 - 2 GiB
    (tmp_path / "cgroup").write_text("1:cpu:/\n")  # no memory controller
    assert _cgroup_headroom(tmp_path / "cgroup", tmp_path) is None


def test_available_memory_is_a_positive_size_with_its_source():
    limit, source = available_memory()
    assert limit is not None and limit > 0
    assert source


# --- the check in parareg.register ---------------------------------------------------------


def test_register_refuses_before_any_work_when_max_memory_is_below_the_estimate():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    fixed = parareg.Image(blob((32, 32, 32)), affine)
    moving = parareg.Image(blob((32, 32, 32), 1.0), affine)
    calls = []
    with pytest.raises(InsufficientMemoryError) as info:
        parareg.register(fixed, moving, max_memory="100M",
                         affine_options={"callback": calls.append},
                         syn_options={"callback": calls.append})
    assert calls == []  # not one iteration ran
    message = str(info.value)
    need = info.value.estimate
    assert need.peak > 100 * MiB and info.value.limit == 100 * MiB
    assert "needs about" in message and "max_memory" in message
    assert 'preset="fast"' in message and "crop" in message
    assert "would not help" in message  # threads
    assert isinstance(info.value, MemoryError)


@pytest.mark.parametrize("value", ["abc", "0", "-1G", "12Q"])
def test_register_rejects_bad_max_memory(value):
    image = parareg.Image(blob((16, 16, 16)), np.eye(4))
    with pytest.raises(ValueError, match="max_memory"):
        parareg.register(image, image, max_memory=value)


def test_check_registration_leaves_unreadable_files_to_the_loader(tmp_path):
    junk = tmp_path / "junk.nii.gz"
    junk.write_text("not an image")
    assert check_registration(str(junk), str(junk), cli=True) is None


def test_integer_inputs_cost_float32_copies_and_the_advice_says_so():
    data = (blob((32, 32, 32)) * 1000).astype(np.int16)
    fixed = parareg.Image(data, np.eye(4))
    floats = parareg.Image(data.astype(np.float32), np.eye(4))
    with pytest.raises(InsufficientMemoryError, match="float32") as info:
        check_registration(fixed, fixed, max_memory="1M")
    as_float = check_registration(floats, floats)
    assert info.value.estimate.peak > as_float.peak


# --- the check in `parareg register` -------------------------------------------------------


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return write_pair(tmp_path_factory.mktemp("pair"), (40, 40, 40))


@pytest.mark.parametrize("value", ["abc", "0", "-1G", "12Q"])
def test_cli_rejects_bad_max_memory(value, pair, tmp_path, capsys):
    code = main(["register", *pair, "-o", str(tmp_path / "out_"), f"--max-memory={value}"])
    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--max-memory" in line and repr(value) in line
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_a_low_max_memory_with_the_estimate_and_the_fix(pair, tmp_path, capsys):
    code = main(["register", *pair, "-o", str(tmp_path / "out_"), "--max-memory", "64M"])
    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    assert "needs about" in line and "64.0 MiB (--max-memory)" in line
    assert "--preset fast" in line and "crop" in line and "--threads" in line
    assert list(tmp_path.iterdir()) == []


# --- real processes under real limits ------------------------------------------------------

#: run `parareg register` in this child after lowering RLIMIT_AS to the address space in use
#: plus HEADROOM MiB (set after the imports, so the interpreter itself can start)
_CHILD = textwrap.dedent("""
    import os, resource, sys
    from parareg.cli.main import main
    # 'import parareg' is lazy: load what a run maps (numba, SciPy's OpenBLAS) before the limit,
    # so the limit is headroom over a loaded process, as it is for a user's second call
    import parareg.cli.register, parareg.registration.pipeline, parareg.io.nifti  # noqa: F401
    import numba, scipy.ndimage, scipy.optimize  # noqa: F401
    if os.environ.get("WARM"):  # load every kernel first, so a later failure is an allocation
        assert main(["register", *sys.argv[1:3], "-o", sys.argv[4] + "warm_", "-q",
                     "--preset", "fast"]) == 0
    size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
                if line.startswith("VmSize:"))
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (size + int(sys.argv[3]) * 2**20, hard))
    sys.exit(main(["register", sys.argv[1], sys.argv[2], "-o", sys.argv[4] + "out_", "-q"]))
""")


def run_limited(fixed, moving, folder, headroom_mib, **env):
    return subprocess.run([sys.executable, "-c", _CHILD, fixed, moving, str(headroom_mib),
                           str(folder) + os.sep], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def test_subprocess_under_an_address_space_limit_stops_at_once(tmp_path):
    fixed, moving = write_pair(tmp_path, (96, 96, 96))
    out = tmp_path / "out"
    out.mkdir()
    result = run_limited(fixed, moving, out, 200)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result.stderr)
    assert "not enough memory" in line and "ulimit -v" in line and "--preset fast" in line
    assert list(out.iterdir()) == []


def test_a_real_memory_error_during_the_run_is_one_line(tmp_path):
    fixed, moving = write_pair(tmp_path, (96, 96, 96))
    out = tmp_path / "out"
    out.mkdir()
    # the check is switched off, so the registration really runs out of address space
    result = run_limited(fixed, moving, out, 40, PARAREG_MEMORY_CHECK="0", WARM="1")
    assert result.returncode == 2, result.stderr
    line = one_error_line(result.stderr)
    assert "out of memory" in line, line
    assert not any(p.name.startswith("out_") for p in out.iterdir())


def test_estimate_matches_the_peak_rss_of_a_small_real_run(tmp_path):
    """Not a timing test: peak RSS is deterministic enough for a loose band. On a small
    image the measured baseline dominates, so this mostly checks it and the wiring. The
    child is forked from a small launcher: a child of this (large) pytest process would
    start from pytest's resident size."""
    fixed, moving = write_pair(tmp_path, (96, 112, 80))
    need = check_registration(fixed, moving, cli=True, summary=False, preset="fast")
    runs = []
    for _ in range(2):  # the first run may compile kernels (cold numba cache)
        code, peak = measure_peak_rss([sys.executable, "-m", "parareg.cli", "register", fixed,
                                       moving, "-o", str(tmp_path / "out_"), "-q", "--preset",
                                       "fast", "--threads", "2"], stderr=subprocess.DEVNULL)
        assert code == 0
        runs.append(peak)
    ratio = need.peak / runs[-1]
    assert 0.7 <= ratio <= 1.4, (ratio, need, runs)
