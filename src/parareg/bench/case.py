"""The contract between the benchmark and a registration method: a :class:`Case` in, a
:class:`MethodOutput` out.

A method is a function ``method(case) -> MethodOutput``. It registers
``case.moving`` to ``case.fixed`` and brings the moving image and the moving
label map onto the fixed grid. It never sees the fixed label map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

import numpy as np

from ..image import Image


@dataclass
class Case:
    """One (fixed, moving) pair as a method receives it.

    Attributes
    ----------
    fixed, moving : Image
        Intensity images (float32). When the study has a prealignment, the
        moving image's ``vox2world`` already holds it (``inv(P) @ vox2world``,
        ``P`` the rigid fixed->moving world matrix): its voxels were not
        resampled.
    moving_labels : Image
        The moving label map (integer), on the moving image's grid.
    fixed_path, moving_path, moving_labels_path : Path
        NIfTI files holding exactly the three images above, for tools that
        read files (ANTs, greedy).
    workdir : Path
        An empty scratch folder, deleted after the task.
    num_threads : int
        Threads the method may use.
    seed : int
        Seed for any random sampling of the method.
    warmup : bool
        True for the untimed warm-up call on a shrunken copy of the pair.
    fixed_name, moving_name : str
        The subjects' names (for messages and logs).
    """

    fixed: Image
    moving: Image
    moving_labels: Image
    fixed_path: Path
    moving_path: Path
    moving_labels_path: Path
    workdir: Path
    num_threads: int = 1
    seed: int = 0
    warmup: bool = False
    fixed_name: str = ""
    moving_name: str = ""


@dataclass
class MethodOutput:
    """What a method returns, every array on the fixed grid.

    Attributes
    ----------
    warped : ndarray, shape fixed.shape
        The moving image resampled onto the fixed grid (linear interpolation).
    warped_labels : ndarray of int, shape fixed.shape
        The moving label map resampled onto the fixed grid (nearest neighbour).
    jacobian : ndarray, shape fixed.shape, or callable returning one, optional
        Jacobian determinant of the fixed->moving map (its deformable part).
        A zero-argument callable is evaluated after the timed call, so its cost
        is not counted in the method's time. ``None`` for a linear map (the
        folding percentage is then reported as NaN).
    info : dict
        Anything worth recording (internal stage times, the command line run, ...);
        written to ``results.csv`` as JSON.
    """

    warped: np.ndarray
    warped_labels: np.ndarray
    jacobian: Union[np.ndarray, Callable[[], np.ndarray], None] = None
    info: dict = field(default_factory=dict)


def write_case_images(fixed: Image, moving: Image, moving_labels: Image, folder) -> tuple:
    """Save the three images of a case as NIfTI in ``folder``; return their paths.

    Uncompressed ``.nii``: scratch files, written and read once, need no gzip.
    """
    from ..io.nifti import save

    folder = Path(folder)
    paths = (folder / "fixed.nii", folder / "moving.nii", folder / "moving_labels.nii")
    for image, path in zip((fixed, moving, moving_labels), paths):
        save(image, path)
    return paths


__all__ = ["Case", "MethodOutput", "write_case_images"]
