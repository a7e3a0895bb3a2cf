"""Run the peer registration tools (DIPY, ANTs, greedy) on one pair, 2D or 3D.

Two kinds of adapters live here.

*Affine adapters* (:data:`AFFINE_PEERS`) take file paths, a transform
(``"rigid"`` or ``"affine"``) and a thread count, load the images (not timed),
time the registration call alone with :func:`time.perf_counter` and return an
:class:`AffineResult` whose ``matrix`` maps **fixed world points to moving
world points**, in NIfTI RAS+ millimetres: the convention of
``parareg.resample(..., affine=...)``, DIPY's ``AffineMap`` and greedy's
``.mat`` files. Score every method through that matrix with
:func:`parareg.bench.scoring.warp_affine` so they share one resampler.

*Deformable adapters* (:func:`ants_deformable`, :func:`greedy_deformable`,
:func:`dipy_deformable`) are benchmark methods: they take a
:class:`~parareg.bench.case.Case` and return a
:class:`~parareg.bench.case.MethodOutput` (the moving image and labels on the
fixed grid, the Jacobian determinant of the deformable part). Images they
write (uncompressed ``.nii``, to keep file I/O out of the way) are read back
with :func:`parareg.load`, so their arrays are laid out exactly as the fixed
image's. Their ``info["registration_seconds"]`` is the registration call alone.

Conventions handled here
------------------------
* DIPY: ``affine_registration(moving, static, ...)`` (moving first) returns the
  static->moving world matrix (RAS) directly. Its affine code is serial; its
  SyN uses OpenMP (``OMP_NUM_THREADS``). The displacement fields of its
  ``DiffeomorphicMap`` are in world millimetres on the static grid.
* ANTs: the ``GenericAffine.mat`` is an ITK ``AffineTransform`` in **LPS**
  with a centre: ``y = A (x - c) + c + t`` (fixed -> moving, the pull
  direction); :func:`itk_affine_to_ras` converts it (2D: the in-plane axes
  flip alike). Threads come from ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``,
  which ITK reads once, at its first use in the process: keep one thread count
  per process (the benchmark runs every task in a fresh process).
  ``ANTS_RANDOM_SEED`` fixes its random metric sampling.
* greedy: ``Greedy2D`` or ``Greedy3D`` by the image dimension; ``-threads``;
  its ``.mat`` is the RAS fixed->moving matrix; its warps are ITK displacement
  fields (LPS millimetres, see :func:`_itk_warp_jacobian`). ``-seed`` does not
  make its multi-threaded affine mode repeatable, so it is left at its default.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .case import Case, MethodOutput

#: DIPY pipelines and the multi-resolution schedule of its classic examples
DIPY_PIPELINES = {"rigid": ["center_of_mass", "translation", "rigid"],
                  "affine": ["center_of_mass", "translation", "rigid", "affine"]}
DIPY_SETTINGS = {"metric": "MI", "nbins": 32, "sampling_proportion": None,
                 "level_iters": [10000, 1000, 100], "sigmas": [3.0, 1.0, 0.0],
                 "factors": [4, 2, 1]}
#: DIPY SyN after its affine pipeline: CCMetric (its defaults: sigma_diff 2, radius 4)
DIPY_SYN_SETTINGS = {"metric": "CC", "level_iters": [100, 50, 25]}
#: ANTs ``type_of_transform`` per transform (antspyx defaults otherwise: Mattes MI, 32 bins,
#: 20 % random sampling, 2100x1200x1200x10 iterations at shrink 6x4x2x1, centre-of-mass start)
ANTS_TYPES = {"rigid": "Rigid", "affine": "Affine"}
#: ANTs deformable presets: antspyx "SyN" and the antsRegistrationSyNQuick.sh recipe
ANTS_DEFORMABLE_TYPES = {"syn": "SyN", "syn-quick": "antsRegistrationSyNQuick[s]",
                         "syn-full": "antsRegistrationSyN[s]"}
ANTS_RANDOM_SEED = 1
#: greedy degrees of freedom per transform, and the rest of its command line
GREEDY_DOF = {"rigid": 6, "affine": 12}
GREEDY_OPTIONS = "-m NMI -ia-image-centers -n 100x50x10 -V 0"
#: greedy deformable stage after ``-a -dof 12 GREEDY_OPTIONS`` (NCC radius 2 on every axis)
GREEDY_DEFORMABLE_OPTIONS = "-m NCC {radius} -n 100x50x10 -V 0"

TRANSFORMS = ("rigid", "affine")


@dataclass
class AffineResult:
    """One registration: the world matrix and the seconds the registration call took."""

    #: ndarray, shape (ndim + 1, ndim + 1): fixed world (RAS mm) -> moving world
    matrix: np.ndarray
    seconds: float
    info: dict = field(default_factory=dict)


_MODULES = {"dipy": "dipy", "ants": "ants", "greedy": "picsl_greedy"}


def available(name: str) -> bool:
    """Whether the Python package behind peer ``name`` (``dipy``, ``ants``, ``greedy``) imports."""
    if name not in _MODULES:
        raise ValueError(f"peer must be one of {sorted(_MODULES)}, got {name!r}")
    return importlib.util.find_spec(_MODULES[name]) is not None


def peer_versions() -> dict:
    """``{distribution: version}`` of the peers (``None`` when not installed)."""
    from importlib import metadata

    versions = {}
    for dist in ("dipy", "antspyx", "picsl_greedy", "SimpleITK"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


@contextlib.contextmanager
def environment(**variables):
    """Set environment variables for the duration of the block, restoring them after."""
    old = {name: os.environ.get(name) for name in variables}
    os.environ.update({name: str(value) for name, value in variables.items()})
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _check_transform(transform):
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {list(TRANSFORMS)}, got {transform!r}")


# ----------------------------------------------------------------------------------------------
# affine adapters (file paths in, fixed->moving RAS matrix out)


def dipy_affine(static, moving, static_affine, moving_affine, transform) -> np.ndarray:
    """DIPY's affine pipeline with :data:`DIPY_SETTINGS`: the static->moving world matrix.

    3D goes through ``dipy.align.affine_registration``; 2D (which that function
    does not support: its stages are 3D transforms) through the same steps
    with DIPY's class API and 2D transforms.
    """
    s = DIPY_SETTINGS
    static = np.asarray(static, dtype=np.float64)
    moving = np.asarray(moving, dtype=np.float64)
    if static.ndim == 3:
        from dipy.align import affine_registration

        _, fixed2moving = affine_registration(
            moving, static, moving_affine=moving_affine, static_affine=static_affine,
            pipeline=DIPY_PIPELINES[transform], metric=s["metric"], nbins=s["nbins"],
            sampling_proportion=s["sampling_proportion"], level_iters=s["level_iters"],
            sigmas=s["sigmas"], factors=s["factors"])
        return np.asarray(fixed2moving, dtype=np.float64)
    from dipy.align.imaffine import (AffineRegistration, MutualInformationMetric,
                                     transform_centers_of_mass)
    from dipy.align.transforms import (AffineTransform2D, RigidTransform2D,
                                       TranslationTransform2D)

    stages = {"translation": TranslationTransform2D, "rigid": RigidTransform2D,
              "affine": AffineTransform2D}
    registration = AffineRegistration(
        metric=MutualInformationMetric(nbins=s["nbins"],
                                       sampling_proportion=s["sampling_proportion"]),
        level_iters=list(s["level_iters"]), sigmas=list(s["sigmas"]),
        factors=list(s["factors"]), verbosity=0)
    matrix = None
    for step in DIPY_PIPELINES[transform]:
        if step == "center_of_mass":
            matrix = transform_centers_of_mass(static, static_affine, moving,
                                               moving_affine).affine
            continue
        mapping = registration.optimize(static, moving, stages[step](), None,
                                        static_grid2world=static_affine,
                                        moving_grid2world=moving_affine,
                                        starting_affine=matrix)
        matrix = mapping.affine
    return np.asarray(matrix, dtype=np.float64)


def register_dipy(fixed_path, moving_path, transform, num_threads=1) -> AffineResult:
    """DIPY's affine pipeline (:func:`dipy_affine`) with :data:`DIPY_PIPELINES` and
    :data:`DIPY_SETTINGS`.

    ``num_threads`` is ignored: DIPY's affine registration is serial.
    """
    _check_transform(transform)
    from ..io.nifti import load

    fixed, moving = load(fixed_path), load(moving_path)
    t0 = time.perf_counter()
    fixed2moving = dipy_affine(fixed.data, moving.data, fixed.vox2world, moving.vox2world,
                               transform)
    seconds = time.perf_counter() - t0
    return AffineResult(fixed2moving, seconds, {"threads": 1})


#: world-axis flip between ITK's LPS and NIfTI's RAS (3D)
LPS2RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def itk_affine_to_ras(parameters, fixed_parameters) -> np.ndarray:
    """The RAS matrix of an ITK 2D or 3D affine transform (LPS, ``y = A (x - c) + c + t``).

    Parameters
    ----------
    parameters : sequence of float, length ndim * (ndim + 1)
        Row-major ``A`` then ``t``, as in ``ants.read_transform(path).parameters``.
    fixed_parameters : sequence of float, length ndim
        The centre ``c``; its length gives the dimension.

    Returns
    -------
    ndarray, shape (ndim + 1, ndim + 1)

    Examples
    --------
    >>> m = itk_affine_to_ras([1, 0, 0, 0, 1, 0, 0, 0, 1, 2.0, 3.0, 4.0], [9, 9, 9])
    >>> m[:3, 3].tolist()  # an LPS shift (2, 3, 4) is an RAS shift (-2, -3, 4)
    [-2.0, -3.0, 4.0]
    >>> itk_affine_to_ras([1, 0, 0, 1, 2.0, 3.0], [0, 0])[:2, 2].tolist()
    [-2.0, -3.0]
    """
    center = np.asarray(fixed_parameters, dtype=np.float64)
    ndim = center.size
    p = np.asarray(parameters, dtype=np.float64)
    if ndim not in (2, 3) or p.size != ndim * (ndim + 1):
        raise ValueError(f"expected {ndim * (ndim + 1)} parameters and 2 or 3 fixed "
                         f"parameters, got {p.size} and {ndim}")
    lps = np.eye(ndim + 1)
    lps[:ndim, :ndim] = p[: ndim * ndim].reshape(ndim, ndim)
    lps[:ndim, ndim] = p[ndim * ndim:] + center - lps[:ndim, :ndim] @ center
    flip = np.diag([-1.0, -1.0] + [1.0] * (ndim - 1))
    return flip @ lps @ flip


def register_ants(fixed_path, moving_path, transform, num_threads) -> AffineResult:
    """``ants.registration(fixed, moving, type_of_transform=ANTS_TYPES[transform])``."""
    _check_transform(transform)
    with environment(ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=num_threads,
                     ANTS_RANDOM_SEED=ANTS_RANDOM_SEED):
        import ants

        fixed, moving = ants.image_read(str(fixed_path)), ants.image_read(str(moving_path))
        with tempfile.TemporaryDirectory(prefix="ants_affine_") as tmp:
            t0 = time.perf_counter()
            out = ants.registration(fixed, moving, type_of_transform=ANTS_TYPES[transform],
                                    outprefix=os.path.join(tmp, "reg_"))
            seconds = time.perf_counter() - t0
            (path,) = out["fwdtransforms"]
            tx = ants.read_transform(path)
            matrix = itk_affine_to_ras(tx.parameters, tx.fixed_parameters)
    return AffineResult(matrix, seconds, {"threads": int(num_threads)})


def _greedy(ndim):
    import picsl_greedy

    return picsl_greedy.Greedy2D() if ndim == 2 else picsl_greedy.Greedy3D()


def register_greedy(fixed_path, moving_path, transform, num_threads) -> AffineResult:
    """greedy ``-a -dof 6|12`` with :data:`GREEDY_OPTIONS` and ``-threads num_threads``."""
    _check_transform(transform)
    import SimpleITK as sitk

    fixed = sitk.ReadImage(str(fixed_path), sitk.sitkFloat32)
    moving = sitk.ReadImage(str(moving_path), sitk.sitkFloat32)
    command = (f"-i fixed moving -a -dof {GREEDY_DOF[transform]} {GREEDY_OPTIONS} "
               f"-threads {int(num_threads)} -o fixed2moving")
    log = io.StringIO()
    greedy = _greedy(fixed.GetDimension())
    t0 = time.perf_counter()
    greedy.execute(command, out=log, err=log, fixed=fixed, moving=moving, fixed2moving=None)
    seconds = time.perf_counter() - t0
    matrix = np.array(greedy["fixed2moving"], dtype=np.float64)
    return AffineResult(matrix, seconds, {"threads": int(num_threads), "command": command})


#: peer name -> adapter ``(fixed_path, moving_path, transform, num_threads) -> AffineResult``
AFFINE_PEERS = {"dipy": register_dipy, "ants": register_ants, "greedy": register_greedy}


def affine_peer(case: Case, *, peer: str) -> MethodOutput:
    """A benchmark method: the affine adapter of ``peer``, then one SciPy resampler.

    The moving image (linear) and labels (nearest) are resampled through the
    peer's matrix by :func:`~parareg.bench.scoring.warp_affine`, the same
    resampler for every peer.
    """
    from .scoring import warp_affine

    if peer not in AFFINE_PEERS:
        raise ValueError(f"peer must be one of {sorted(AFFINE_PEERS)}, got {peer!r}")
    result = AFFINE_PEERS[peer](case.fixed_path, case.moving_path, "affine", case.num_threads)
    fixed, moving, labels = case.fixed, case.moving, case.moving_labels
    warped = warp_affine(moving.data, moving.vox2world, fixed.shape, fixed.vox2world,
                         result.matrix, order=1)
    warped_labels = warp_affine(labels.data, labels.vox2world, fixed.shape, fixed.vox2world,
                                result.matrix, order=0)
    info = {**result.info, "registration_seconds": result.seconds,
            "matrix": np.round(result.matrix, 8).tolist()}
    return MethodOutput(warped, warped_labels, None, info)


# ----------------------------------------------------------------------------------------------
# deformable adapters (Case in, MethodOutput out)


def _load_array(path, *, labels=False) -> np.ndarray:
    from ..io.nifti import load

    return load(path, labels=labels).data


def ants_deformable(case: Case, *, type_of_transform: str = "SyN") -> MethodOutput:
    """``ants.registration(type_of_transform=...)``; labels by ``apply_transforms`` (nearest)."""
    with environment(ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=case.num_threads,
                     ANTS_RANDOM_SEED=ANTS_RANDOM_SEED):
        import ants

        fixed = ants.image_read(str(case.fixed_path))
        moving = ants.image_read(str(case.moving_path))
        labels = ants.image_read(str(case.moving_labels_path), pixeltype="float")
        t0 = time.perf_counter()
        out = ants.registration(fixed, moving, type_of_transform=type_of_transform,
                                outprefix=str(case.workdir / "ants_"))
        seconds = time.perf_counter() - t0
        warped_labels = ants.apply_transforms(fixed, labels, transformlist=out["fwdtransforms"],
                                              interpolator="nearestNeighbor")
        paths = {"warped": case.workdir / "warped.nii",
                 "labels": case.workdir / "warped_labels.nii"}
        ants.image_write(out["warpedmovout"], str(paths["warped"]))
        ants.image_write(warped_labels, str(paths["labels"]))
    warps = [t for t in out["fwdtransforms"] if str(t).endswith("Warp.nii.gz")]

    def jacobian():
        import ants

        jac = ants.create_jacobian_determinant_image(fixed, warps[0], do_log=False)
        path = case.workdir / "jacobian.nii"
        ants.image_write(jac, str(path))
        return _load_array(path)

    return MethodOutput(_load_array(paths["warped"]),
                        np.rint(_load_array(paths["labels"])).astype(np.int32),
                        jacobian if warps else None,
                        {"registration_seconds": seconds,
                         "transforms": [Path(t).name for t in out["fwdtransforms"]]})


def _itk_warp_jacobian(path, fixed, num_threads) -> np.ndarray:
    """det(I + du/dx) of an ITK displacement field file (LPS millimetres) on the fixed grid.

    The first two vector components flip sign (LPS -> RAS, also for the two
    in-plane axes of a 2D image); :func:`parareg.fields.jacobian_determinant`
    then works in the fixed image's RAS world. (greedy's own ``-jac`` gave
    infinite values on the 2D test pair, so it is not used.)
    """
    import nibabel as nib

    from ..fields import jacobian_determinant

    field = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
    field = field.reshape(*fixed.shape, fixed.ndim).copy()
    field[..., :2] *= -1.0
    return jacobian_determinant(field, vox2world=fixed.vox2world, num_threads=num_threads)


def greedy_deformable(case: Case) -> MethodOutput:
    """greedy ``-a -dof 12 -m NMI`` then ``-m NCC 2x2[x2] -n 100x50x10``; labels ``-ri NN``."""
    ndim = case.fixed.ndim
    work = case.workdir
    affine, warp = work / "affine.mat", work / "warp.nii"
    warped, warped_labels = work / "warped.nii", work / "warped_labels.nii"
    threads = f"-threads {int(case.num_threads)}"
    images = f"-i {case.fixed_path} {case.moving_path}"
    radius = "x".join(["2"] * ndim)
    commands = [
        f"{images} -a -dof 12 {GREEDY_OPTIONS} {threads} -o {affine}",
        f"{images} -it {affine} {GREEDY_DEFORMABLE_OPTIONS.format(radius=radius)} {threads} "
        f"-o {warp}",
        f"-rf {case.fixed_path} -rm {case.moving_path} {warped} -ri NN "
        f"-rm {case.moving_labels_path} {warped_labels} -r {warp} {affine} {threads}",
    ]
    log = io.StringIO()
    greedy = _greedy(ndim)
    t0 = time.perf_counter()
    for command in commands[:2]:
        greedy.execute(command, out=log, err=log)
    seconds = time.perf_counter() - t0
    greedy.execute(commands[2], out=log, err=log)

    def jacobian():
        return _itk_warp_jacobian(warp, case.fixed, case.num_threads)

    return MethodOutput(_load_array(warped), _load_array(warped_labels, labels=True), jacobian,
                        {"registration_seconds": seconds, "commands": commands})


def dipy_deformable(case: Case) -> MethodOutput:
    """DIPY affine pipeline (:data:`DIPY_SETTINGS`) then SyN with ``CCMetric``."""
    from dipy.align.imwarp import SymmetricDiffeomorphicRegistration
    from dipy.align.metrics import CCMetric

    from ..fields import jacobian_determinant

    fixed, moving = case.fixed, case.moving
    static = fixed.data.astype(np.float64)
    moving_data = moving.data.astype(np.float64)
    with environment(OMP_NUM_THREADS=case.num_threads):
        t0 = time.perf_counter()
        fixed2moving = dipy_affine(static, moving_data, fixed.vox2world, moving.vox2world,
                                   "affine")
        sdr = SymmetricDiffeomorphicRegistration(
            CCMetric(fixed.ndim), level_iters=list(DIPY_SYN_SETTINGS["level_iters"]))
        mapping = sdr.optimize(static, moving_data, static_grid2world=fixed.vox2world,
                               moving_grid2world=moving.vox2world, prealign=fixed2moving)
        seconds = time.perf_counter() - t0
        warped = mapping.transform(moving_data)
        warped_labels = mapping.transform(case.moving_labels.data.astype(np.float64),
                                          interpolation="nearest")

    def jacobian():
        return jacobian_determinant(np.asarray(mapping.get_forward_field()),
                                    vox2world=mapping.disp_grid2world,
                                    num_threads=case.num_threads)

    return MethodOutput(np.asarray(warped, dtype=np.float32),
                        np.rint(warped_labels).astype(np.int32), jacobian,
                        {"registration_seconds": seconds,
                         "affine": np.round(fixed2moving, 8).tolist()})


__all__ = [
    "AFFINE_PEERS", "ANTS_DEFORMABLE_TYPES", "ANTS_RANDOM_SEED", "ANTS_TYPES", "AffineResult",
    "DIPY_PIPELINES", "DIPY_SETTINGS", "DIPY_SYN_SETTINGS", "GREEDY_DEFORMABLE_OPTIONS",
    "GREEDY_DOF", "GREEDY_OPTIONS", "LPS2RAS", "TRANSFORMS", "affine_peer", "ants_deformable",
    "available", "dipy_affine", "dipy_deformable", "environment", "greedy_deformable",
    "itk_affine_to_ras", "peer_versions", "register_ants", "register_dipy", "register_greedy",
]
