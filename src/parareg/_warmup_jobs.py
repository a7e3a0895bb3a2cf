"""The jobs of :func:`parareg.compilation.warmup`: tiny runs that reach every kernel.

Each job runs the command line code (images read from NIfTI files, as
``parareg register``/``apply`` read them) and the library API (in-memory,
C-ordered arrays, as Python callers pass them) on small synthetic images, so
numba compiles every specialisation a real run uses, whatever the kernels are
called. Nothing here names a kernel.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

#: label-map dtypes that NIfTI files commonly hold (nearest-neighbour resampling keeps them)
LABEL_DTYPES = ("uint8", "int16", "uint16", "int32", "int64")
#: SyN metrics (``parareg register --metric``) and linear-stage metrics
SYN_METRICS = ("cc", "ssd", "em", "mi")
LINEAR_METRICS = ("mi", "cc", "ssd")
#: grid of the synthetic images; big enough for the 4x-shrunk pyramid levels
SHAPES = {2: (40, 36), 3: (28, 26, 24)}
SPACING = 2.0


def waves(ndims) -> list[list[str]]:
    """Job names in waves: a wave's jobs run in parallel and reuse earlier waves' kernels."""
    return [
        [f"{kind}-{n}d" for n in ndims for kind in ("linear", "apply")],
        [f"syn-cc-{n}d" for n in ndims],
        [f"syn-{m}-{n}d" for n in ndims for m in SYN_METRICS if m != "cc"]
        + [f"{kind}-{n}d" for n in ndims for kind in ("fields", "channels")],
    ]


def run_job(name: str) -> list:
    """Run the job ``name`` (e.g. ``"syn-cc-3d"``); return its :class:`Compilation` records."""
    from .compilation import CompileWatch, compile_ahead

    kind, ndim = name.rsplit("-", 1)
    ndim = int(ndim.rstrip("d"))
    # a warmup's own 'parareg register' runs start no helper processes of their own
    before = os.environ.get(compile_ahead.ENV)
    os.environ[compile_ahead.ENV] = "0"
    try:
        with tempfile.TemporaryDirectory(prefix="parareg-warmup-") as tmp, \
                CompileWatch() as watch:
            _run_kind(kind, Path(tmp), *_pair(ndim), name=name)
    finally:
        if before is None:
            del os.environ[compile_ahead.ENV]
        else:
            os.environ[compile_ahead.ENV] = before
    return watch.records


def _run_kind(kind: str, folder: Path, fixed, moving, *, name: str) -> None:
    if kind == "linear":
        _linear(folder, fixed, moving)
    elif kind == "apply":
        _apply(folder, fixed, moving)
    elif kind.startswith("syn-"):
        _syn(folder, fixed, moving, kind[4:])
    elif kind == "fields":
        _fields(fixed)
    elif kind == "channels":
        _channels(folder, fixed, moving)
    elif kind.startswith("ahead-"):
        _syn_stage(folder, fixed, moving, kind[6:])
    else:
        raise ValueError(f"unknown warmup job {name!r}")


# --- synthetic inputs -------------------------------------------------------------------------


def _pair(ndim: int):
    """A blurred ellipsoid and a shifted, stretched copy, as C-ordered float32 Images."""
    from .image import Image

    shape = SHAPES[ndim]
    axes = np.meshgrid(*[np.linspace(-1.0, 1.0, n) for n in shape], indexing="ij")
    vox2world = np.diag([SPACING] * ndim + [1.0])
    vox2world[:ndim, ndim] = [-SPACING * (n - 1) / 2 for n in shape]

    def blob(centre, radii):
        r2 = sum(((a - c) / r) ** 2 for a, c, r in zip(axes, centre, radii))
        return (np.exp(-2.0 * r2) + 0.3 * np.exp(-8.0 * r2)).astype(np.float32)

    fixed = blob([0.0] * ndim, [0.55] * ndim)
    moving = blob([0.08] + [-0.05] * (ndim - 1), [0.6] + [0.5] * (ndim - 1))
    return Image(fixed, vox2world), Image(moving, vox2world)


def _write(image, path: Path, dtype=np.float32) -> str:
    """``image`` as a NIfTI file of ``dtype`` (nibabel directly, so any label dtype)."""
    import nibabel as nib

    ndim = image.ndim
    affine = np.eye(4)
    affine[:ndim, :ndim] = image.vox2world[:ndim, :ndim]
    affine[:ndim, 3] = image.vox2world[:ndim, ndim]
    data = np.asarray(image.data).astype(dtype)
    nib.Nifti1Image(data, affine, dtype=data.dtype).to_filename(str(path))
    return str(path)


def _labels(image, dtype):
    """A few labels (0..3) from the intensities, of ``dtype``."""
    return image.with_data(np.digitize(image.data, [0.2, 0.5, 0.9]).astype(dtype))


def _mask(image, folder: Path) -> str:
    """A uint8 mask file of the brighter half of ``image`` (written once per folder)."""
    path = folder / "mask.nii.gz"
    if not path.exists():
        _write(image.with_data((image.data > 0.2).astype(np.uint8)), path, dtype=np.uint8)
    return str(path)


def _cli(module: str, argv) -> None:
    """Run ``parareg <module> argv -q``; a failure stops the warmup with its exit code."""
    import importlib

    command = importlib.import_module(f"parareg.cli.{module}")
    code = command.main([*map(str, argv), "-q"])
    if code != 0:
        raise RuntimeError(f"warmup: 'parareg {module} {' '.join(map(str, argv))}' "
                           f"exited with code {code}")


# --- jobs -------------------------------------------------------------------------------------


def _linear(folder: Path, fixed, moving) -> None:
    """Every linear transform model with every linear metric: CLI, then library."""
    import parareg

    f, m = _write(fixed, folder / "f.nii.gz"), _write(moving, folder / "m.nii.gz")
    for transform in ("rigid", "affine"):
        for metric in LINEAR_METRICS:
            _cli("register", [f, m, "-o", folder / f"{transform}_{metric}_",
                              "--transform", transform, "--metric", metric])
    for metric in LINEAR_METRICS:
        _cli("register", [f, m, "-o", folder / f"masked_{metric}_", "--transform", "affine",
                          "--metric", metric, "--fixed-mask", _mask(fixed, folder)])
    for metric in ("mi", "meansquares", "correlation"):
        mapping = parareg.affine_registration(fixed, moving, metric=metric)
        mapping.transform(moving)
        mapping.transform_inverse(fixed, interpolation="nearest")


def _apply(folder: Path, fixed, moving) -> None:
    """``parareg apply`` and ``resample``: linear/nearest, intensities and labels, affine/warp."""
    import parareg
    from .io.itk import write_affine
    from .io.itk_warp import write_warp

    ndim = fixed.ndim
    f = _write(fixed, folder / "f.nii.gz")
    matrix = np.eye(ndim + 1)
    matrix[:ndim, ndim] = 1.5
    affine_path = write_affine(matrix, folder / "a.mat")
    rng = np.random.default_rng(0)
    field = rng.normal(0.0, 0.3, (*fixed.shape, ndim)).astype(np.float32)
    warp_path = write_warp(field, fixed.vox2world, folder / "w.nii.gz")
    chains = ([affine_path], [warp_path, affine_path], [f"[{affine_path},1]"])
    inputs = [("linear", _write(moving, folder / "m.nii.gz"))]
    inputs += [("nearest", _write(moving, folder / f"m_{dt}.nii.gz", dtype=np.dtype(dt)))
               for dt in ("float32",)]
    inputs += [("nearest", _write(_labels(moving, dt), folder / f"l_{dt}.nii.gz",
                                  dtype=np.dtype(dt))) for dt in LABEL_DTYPES]
    for k, (interpolation, path) in enumerate(inputs):
        for j, chain in enumerate(chains):
            _cli("apply", ["-i", path, "-r", f, "-o", folder / f"out_{k}_{j}.nii.gz",
                           "-n", interpolation, "-t", *chain])
    for dtype in LABEL_DTYPES:
        labels = _labels(moving, dtype)
        parareg.resample(labels, fixed, affine=matrix, interpolation="nearest")
        parareg.resample(labels, fixed, field=field, interpolation="nearest")
    parareg.resample(moving, fixed, affine=matrix)
    parareg.resample(moving, fixed, affine=matrix, field=field)
    parareg.resample(moving, fixed, field=field, interpolation="nearest")


def _syn(folder: Path, fixed, moving, metric: str) -> None:
    """``parareg register`` (rigid + affine + SyN ``metric``, all outputs), then the library."""
    import parareg

    f, m = _write(fixed, folder / "f.nii.gz"), _write(moving, folder / "m.nii.gz")
    _cli("register", [f, m, "-o", folder / "syn_", "--metric", metric])
    _cli("register", [f, m, "-o", folder / "masked_", "--metric", metric,
                      "--fixed-mask", _mask(fixed, folder)])
    result = parareg.register(fixed, moving, transform="syn", syn_metric=metric)
    result.mapping.transform_inverse(fixed)
    result.mapping.transform(moving, interpolation="nearest")
    result.mapping.jacobian_determinant()
    if metric == "cc":  # both CC gradients, whichever one the presets pick for this ndim
        from .metrics.syn_cc import CC_GRADIENTS

        for gradient in CC_GRADIENTS:
            parareg.syn_registration(fixed, moving, metric="cc", gradient=gradient,
                                     levels=((2, 0.5, 2), (1, 0.0, 2)))


def _channels(folder: Path, fixed, moving) -> None:
    """Two-channel ``parareg register`` (the combined SyN forces), masked and not."""
    f, m = _write(fixed, folder / "f.nii.gz"), _write(moving, folder / "m.nii.gz")
    f2 = _write(fixed.with_data(np.sqrt(fixed.data)), folder / "f2.nii.gz")
    m2 = _write(moving.with_data(np.sqrt(moving.data)), folder / "m2.nii.gz")
    _cli("register", [f, m, "-i", f2, m2, "-o", folder / "two_", "--weights", "1,0.5"])
    _cli("register", [f, m, "-i", f2, m2, "-o", folder / "two_masked_", "--weights", "1,0.5",
                      "--channel-metrics", "cc,mi", "--fixed-mask", _mask(fixed, folder)])


def _syn_stage(folder: Path, fixed, moving, spec: str) -> None:
    """What ``parareg register`` runs after its affine stage, last steps first.

    The job of :func:`parareg.compilation.compile_ahead`; ``spec`` is the SyN
    metric, then ``-masked`` (a fixed mask) and ``-jacobian`` (the summary's
    Jacobian determinant) when the command needs them. The main process
    compiles the affine kernels and then meets this job in the middle of the
    SyN kernels: the job calls SyN's steps in the reverse of the order in
    which a level first runs them (inversion, composition, update scaling and
    smoothing, the metric, the warps), so the kernels the main process reaches
    first are left to it, and the two processes take the rest from opposite
    ends. A tiny SyN registration through the library then catches what this
    list misses (``tests/test_warmup.py`` checks that nothing is missed).
    """
    import parareg
    from . import fields
    from .metrics.syn import get_syn_metric
    from .registration.syn import syn_registration
    from .kernels.resample import LINEAR_ZERO_OUTSIDE
    from .resampling import warp_unchecked

    metric, *options = spec.split("-")
    f, m = _write(fixed, folder / "f.nii.gz"), _write(moving, folder / "m.nii.gz")
    fixed, moving = parareg.load(f), parareg.load(m)  # typed as the command reads them
    mask = parareg.load(_mask(fixed, folder)) if "masked" in options else None
    ndim, v2w = fixed.ndim, fixed.vox2world
    rng = np.random.default_rng(2)
    u = (0.3 * rng.standard_normal((*fixed.shape, ndim))).astype(np.float32)
    scratch = np.empty_like(u)
    inverse, _ = fields.invert(u, vox2world=v2w, initial=np.zeros_like(u), tolerance=0.01,
                               iterations=2, damped=True)
    disp2vox = np.ascontiguousarray(np.linalg.inv(v2w[:ndim, :ndim]))
    fields.compose_unchecked(u, inverse, disp2vox, scratch, None)
    fields.max_norm(u, scale=1.0 / fixed.spacing)
    fields.smooth_unchecked(u, np.full(ndim, 1.2), 4.0, None, scratch=scratch)
    fields.smooth_unchecked(u, np.full(ndim, 0.5), 4.0, None, scratch=scratch)
    # SyN's level images are C-ordered float32 (pyramid_level), whatever the files hold
    f_data, m_data = (np.ascontiguousarray(i.data, dtype=np.float32) for i in (fixed, moving))
    get_syn_metric(metric).compute(f_data, m_data, vox2world=v2w, num_threads=None)
    warp_unchecked(m_data, u, v2w, moving.world2vox, LINEAR_ZERO_OUTSIDE, np.empty_like(f_data),
                   None)
    mapping = syn_registration(fixed, moving, metric=metric, levels=((2, 0.5, 2), (1, 0.0, 2)),
                               fixed_mask=mask)
    mapping.transform(moving)
    mapping.transform_inverse(fixed)
    if "jacobian" in options:
        mapping.jacobian_determinant()


def _fields(fixed) -> None:
    """Displacement-field tools and smoothing on their own (C-ordered inputs)."""
    import parareg
    from . import fields, filters

    ndim = fixed.ndim
    rng = np.random.default_rng(1)
    field = (0.5 * rng.standard_normal((*fixed.shape, ndim))).astype(np.float32)
    field = fields.smooth_field(field, 1.5)
    inverse, _ = fields.invert(field, vox2world=fixed.vox2world)
    fields.compose(field, inverse, vox2world=fixed.vox2world)
    fields.jacobian_determinant(field, vox2world=fixed.vox2world)
    fields.inverse_consistency_error(field, inverse, vox2world=fixed.vox2world)
    fields.max_norm(field, scale=1.0 / fixed.spacing)
    filters.gaussian_smooth(fixed.data, 1.0)
    parareg.gradient(fixed)


def main(argv=None) -> int:
    """``python -m parareg._warmup_jobs NAME OUT``: run one job, write its records to OUT."""
    import dataclasses
    import json
    import sys

    name, out = sys.argv[1:] if argv is None else argv
    records = run_job(name)
    Path(out).write_text(json.dumps([dataclasses.asdict(r) for r in records]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
