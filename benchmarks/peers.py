"""Run the peer registration tools (DIPY, ANTs, greedy) on one pair of image files.

Each adapter takes file paths, a transform (``"rigid"`` or ``"affine"``) and a
thread count, loads the images (not timed), times the registration call alone
with :func:`time.perf_counter` and returns an :class:`AffineResult` whose
``matrix`` maps **fixed world points to moving world points**, in NIfTI RAS+
millimetres: the convention of ``parareg.resample(..., affine=...)``, DIPY's
``AffineMap`` and greedy's ``.mat`` files. Score every method through that
matrix with :func:`scoring.warp_affine` so they share one resampler.

Conventions handled here
------------------------
* DIPY: ``affine_registration(moving, static, ...)`` (moving first) returns the
  static->moving world matrix (RAS) directly. Its affine code is serial.
* ANTs: the ``GenericAffine.mat`` is an ITK ``AffineTransform`` in **LPS**
  with a centre: ``y = A (x - c) + c + t`` (fixed -> moving, the pull
  direction); :func:`itk_affine_to_ras` converts it. Threads come from
  ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``, which ITK reads once, at its first
  use in the process: keep one thread count per process. ``ANTS_RANDOM_SEED``
  fixes its random metric sampling.
* greedy: SimpleITK images are passed in memory; ``-o name`` with ``name=None``
  returns the RAS fixed->moving matrix as an ndarray. ``-seed`` does not make
  its multi-threaded affine mode repeatable, so it is left at its default.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

#: DIPY pipelines and the multi-resolution schedule of its classic examples
DIPY_PIPELINES = {"rigid": ["center_of_mass", "translation", "rigid"],
                  "affine": ["center_of_mass", "translation", "rigid", "affine"]}
DIPY_SETTINGS = {"metric": "MI", "nbins": 32, "sampling_proportion": None,
                 "level_iters": [10000, 1000, 100], "sigmas": [3.0, 1.0, 0.0],
                 "factors": [4, 2, 1]}
#: ANTs ``type_of_transform`` per transform (antspyx defaults otherwise: Mattes MI, 32 bins,
#: 20 % random sampling, 2100x1200x1200x10 iterations at shrink 6x4x2x1, centre-of-mass start)
ANTS_TYPES = {"rigid": "Rigid", "affine": "Affine"}
ANTS_RANDOM_SEED = 1
#: greedy degrees of freedom per transform, and the rest of its command line
GREEDY_DOF = {"rigid": 6, "affine": 12}
GREEDY_OPTIONS = "-m NMI -ia-image-centers -n 100x50x10 -V 0"

TRANSFORMS = ("rigid", "affine")


@dataclass
class AffineResult:
    """One registration: the world matrix and the seconds the registration call took."""

    #: ndarray, shape (4, 4): fixed world (RAS mm) -> moving world
    matrix: np.ndarray
    seconds: float
    info: dict = field(default_factory=dict)


def available(name: str) -> bool:
    """Whether the Python package behind peer ``name`` is importable."""
    module = {"dipy": "dipy", "ants": "ants", "greedy": "picsl_greedy"}[name]
    return importlib.util.find_spec(module) is not None


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
# DIPY


def register_dipy(fixed_path, moving_path, transform, num_threads=1) -> AffineResult:
    """DIPY ``affine_registration`` with :data:`DIPY_PIPELINES` and :data:`DIPY_SETTINGS`.

    ``num_threads`` is ignored: DIPY's affine registration is serial.
    """
    _check_transform(transform)
    import nibabel as nib
    from dipy.align import affine_registration

    fixed, moving = nib.load(fixed_path), nib.load(moving_path)
    fixed_data, moving_data = fixed.get_fdata(), moving.get_fdata()
    s = DIPY_SETTINGS
    t0 = time.perf_counter()
    _, fixed2moving = affine_registration(
        moving_data, fixed_data, moving_affine=moving.affine, static_affine=fixed.affine,
        pipeline=DIPY_PIPELINES[transform], metric=s["metric"], nbins=s["nbins"],
        sampling_proportion=s["sampling_proportion"], level_iters=s["level_iters"],
        sigmas=s["sigmas"], factors=s["factors"])
    seconds = time.perf_counter() - t0
    return AffineResult(np.asarray(fixed2moving, dtype=np.float64), seconds, {"threads": 1})


# ----------------------------------------------------------------------------------------------
# ANTs


#: world-axis flip between ITK's LPS and NIfTI's RAS
LPS2RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def itk_affine_to_ras(parameters, fixed_parameters) -> np.ndarray:
    """The RAS 4x4 of an ITK 3D affine transform (LPS, ``y = A (x - c) + c + t``).

    Parameters
    ----------
    parameters : sequence of float, length 12
        Row-major ``A`` then ``t``, as in ``ants.read_transform(path).parameters``.
    fixed_parameters : sequence of float, length 3
        The centre ``c``.

    Examples
    --------
    >>> m = itk_affine_to_ras([1, 0, 0, 0, 1, 0, 0, 0, 1, 2.0, 3.0, 4.0], [9, 9, 9])
    >>> m[:3, 3].tolist()  # an LPS shift (2, 3, 4) is an RAS shift (-2, -3, 4)
    [-2.0, -3.0, 4.0]
    """
    p = np.asarray(parameters, dtype=np.float64)
    center = np.asarray(fixed_parameters, dtype=np.float64)
    lps = np.eye(4)
    lps[:3, :3] = p[:9].reshape(3, 3)
    lps[:3, 3] = p[9:12] + center - lps[:3, :3] @ center
    return LPS2RAS @ lps @ LPS2RAS


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


# ----------------------------------------------------------------------------------------------
# greedy


def register_greedy(fixed_path, moving_path, transform, num_threads) -> AffineResult:
    """greedy ``-a -dof 6|12`` with :data:`GREEDY_OPTIONS` and ``-threads num_threads``."""
    _check_transform(transform)
    import SimpleITK as sitk
    from picsl_greedy import Greedy3D

    fixed = sitk.ReadImage(str(fixed_path), sitk.sitkFloat32)
    moving = sitk.ReadImage(str(moving_path), sitk.sitkFloat32)
    command = (f"-i fixed moving -a -dof {GREEDY_DOF[transform]} {GREEDY_OPTIONS} "
               f"-threads {int(num_threads)} -o fixed2moving")
    log = io.StringIO()
    greedy = Greedy3D()
    t0 = time.perf_counter()
    greedy.execute(command, out=log, err=log, fixed=fixed, moving=moving, fixed2moving=None)
    seconds = time.perf_counter() - t0
    matrix = np.array(greedy["fixed2moving"], dtype=np.float64)
    return AffineResult(matrix, seconds, {"threads": int(num_threads), "command": command})


#: peer name -> adapter ``(fixed_path, moving_path, transform, num_threads) -> AffineResult``
AFFINE_PEERS = {"dipy": register_dipy, "ants": register_ants, "greedy": register_greedy}
