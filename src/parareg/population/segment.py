"""Multi-atlas segmentation: register every atlas to the target on Dask, fuse their labels.

:func:`segment` checks every input before any work, runs the registrations
with :func:`parareg.population.batch.register_many` (each atlas onto the
target; its labels carried along with ``label_interpolation``), then fuses
the warped labels (:mod:`parareg.population.fusion`) on the target grid.

Outputs (with ``out="seg.nii.gz"``), written as one set by
:class:`parareg.io.OutputSet` (all of them or none):

``seg.nii.gz``
    the fused label map, in the atlases' label type;
``seg_posteriors.nii.gz``
    one 4D NIfTI of float32 posteriors, volume ``l`` for the ``l``-th label
    of ``seg_segment.json``'s ``"labels"`` (ascending; a 2D target gives
    ``(X, Y, 1, L)``); left out with ``posteriors=False``;
``seg_segment.json``
    the labels, the fusion and its settings, the atlases used and those
    left out because their registration failed, and per label its size,
    each atlas's Dice against the fused map and the mean posterior
    (:func:`parareg.population.segment_report.label_statistics`);
``seg_report.png``
    those per-label numbers drawn (needs matplotlib; left out without it).

The registrations go to ``seg_registrations/`` (one folder per atlas, see
:mod:`parareg.population.batch`), so a rerun resumes: finished
registrations are not computed again. A registration that fails is recorded
there and left out with a warning; the fusion uses the others.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from .fusion import (DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_PATCH_METRIC, DEFAULT_PATCH_RADIUS,
                     DEFAULT_SEARCH_RADIUS, FUSIONS, check_fusion, check_jlf_options)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._typing import ImageLike, PathLike
    from ..image import Image

#: how each atlas's labels reach the target grid (any label interpolation of parareg.resample)
DEFAULT_LABEL_INTERPOLATION = "genericlabel"
#: segment's default registration, "atlas": register's "fast" SyN (its looser field) stopped
#: at half resolution, after an affine stage at quarter resolution only. Label fusion does
#: not need the fine levels: JLF's search takes up the last voxels of misalignment (Mindboggle
#: leave-one-out, 11 atlases: JLF Dice 0.617 vs 0.621 with "default", at 0.3x its CPU time;
#: BENCHMARKS.md, "Multi-atlas segmentation, round 2"). Used for transform="syn"; rigid and
#: affine registrations keep register's default pyramid.
#: It starts at the centres of mass: register's default start, the global search, found that
#: very start on every Mindboggle pair tried, at ~30 % of the registration's CPU time
#: (BENCHMARKS.md, "round 3"); pass ``register_options={"initial_transform": "search"}`` for
#: atlases and targets that may lie far apart or turned.
ATLAS_PRESET = {"preset": "fast", "syn_options": {"levels": ((4, 1.0, 20), (2, 0.5, 10))},
                "affine_options": {"levels": ((4, 2.0, 100),)}, "initial_transform": "com"}
#: segment(preset=...): "atlas" (above), or one of register's presets
PRESETS = ("atlas", "fast", "default", "accurate")


class SegmentationError(ValueError):
    """Segmentation cannot go on (e.g. every registration failed)."""


class AtlasExcludedWarning(RuntimeWarning):
    """Atlases were left out of the fusion because their registration failed."""


@dataclass
class SegmentResult:
    """What :func:`segment` returns.

    Attributes
    ----------
    labels : Image
        The fused label map on the target grid.
    posteriors : ndarray, shape (*target.shape, L), float32, or None
        ``posteriors[..., l]`` is the posterior of ``label_values[l]``.
    label_values : ndarray, shape (L,)
    used, excluded : list of str
        The atlases fused, and those left out (failed registrations).
    files : list of Path
        What was written (empty without ``out``).
    seconds : dict
        Wall time of each step: ``"checks"`` (the inputs read and checked),
        ``"registrations"`` (run or resumed, their outputs read back),
        ``"fusion"`` and, with ``out``, ``"write"``.
    """

    labels: Image
    posteriors: np.ndarray | None
    label_values: np.ndarray
    used: list = field(default_factory=list)
    excluded: list = field(default_factory=list)
    files: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)


def output_paths(out: PathLike) -> dict:
    """``{"labels", "posteriors", "report", "registrations"}`` -> paths, from ``out``.

    >>> sorted((k, p.name) for k, p in output_paths("seg.nii.gz").items())
    [('labels', 'seg.nii.gz'), ('plot', 'seg_report.png'), \
('posteriors', 'seg_posteriors.nii.gz'), ('registrations', 'seg_registrations'), \
('report', 'seg_segment.json')]
    """
    from ..io.nifti import check_nifti_path

    out = check_nifti_path(out, name="out")
    stem = out.name[:-7] if out.name.lower().endswith(".nii.gz") else out.name[:-4]
    folder = out.parent
    return {"labels": out, "posteriors": folder / f"{stem}_posteriors.nii.gz",
            "report": folder / f"{stem}_segment.json", "plot": folder / f"{stem}_report.png",
            "registrations": folder / f"{stem}_registrations"}


def _read_labels(obj, *, name: str) -> Image:
    """A label map (path, Image or nibabel image) with integer labels, or a clear error."""
    from ..image import as_image

    try:
        image = as_image(obj, name=name, labels=True)
    except ValueError as exc:
        if "non-integer" not in str(exc):
            raise
        image = None
    if image is None or not np.issubdtype(image.data.dtype, np.integer):
        raise ValueError(f"{name} holds non-integer values: give the atlas's label map (a "
                         "segmentation with integer labels), not an intensity image")
    return image


def _job_name(index: int, obj) -> str:
    stem = Path(str(obj)).name if isinstance(obj, (str, Path)) else "atlas"
    stem = re.sub(r"\.nii(\.gz)?$", "", stem, flags=re.IGNORECASE)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-") or "atlas"
    return f"{index:03d}_{stem}"


def registration_options(preset: str, transform: str, register_options: dict | None) -> dict:
    """The :func:`parareg.register` options of every atlas's registration.

    >>> registration_options("atlas", "syn", {"syn_options": {"step": 0.25}})["syn_options"]
    {'levels': ((4, 1.0, 20), (2, 0.5, 10)), 'step': 0.25}
    >>> registration_options("default", "affine", None)
    {'transform': 'affine', 'preset': 'default'}
    """
    from .._options import choice

    preset = choice(preset, PRESETS, name="preset")
    if register_options is not None and not isinstance(register_options, dict):
        raise ValueError(f"register_options must be a dict of parareg.register's keyword "
                         f"arguments or None, got {type(register_options).__name__}")
    options = {"transform": transform, "preset": preset}
    if preset == "atlas":
        options["preset"] = ATLAS_PRESET["preset"]
        if str(transform).lower() == "syn":
            options.update({k: dict(v) if isinstance(v, dict) else v
                            for k, v in ATLAS_PRESET.items() if k != "preset"})
    for key, value in (register_options or {}).items():
        if isinstance(value, dict) and isinstance(options.get(key), dict):
            value = {**options[key], **value}
        options[key] = value
    return options


def segment(target: ImageLike, atlases: Sequence[ImageLike], labels: Sequence[ImageLike], *,
            fusion: str = "majority", transform: str = "syn", preset: str = "atlas",
            out: PathLike | None = None, registrations: PathLike | None = None,
            workers: int | None = None, scheduler: object = None, posteriors: bool = True,
            patch_radius: int | Sequence[int] = DEFAULT_PATCH_RADIUS,
            search_radius: int | Sequence[int] = DEFAULT_SEARCH_RADIUS,
            alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA,
            patch_metric: str = DEFAULT_PATCH_METRIC,
            label_interpolation: str = DEFAULT_LABEL_INTERPOLATION,
            num_threads: int | None = None, progress: Callable | None = None,
            register_options: dict | None = None) -> SegmentResult:
    """Segment ``target`` from labelled atlases: register each to it, fuse the labels.

    Parameters
    ----------
    target : path, Image or nibabel image
        The image to segment.
    atlases : sequence of path, Image or nibabel image
        Atlas intensity images (each registered to ``target``).
    labels : sequence of path, Image or nibabel image
        Each atlas's integer label map, on its atlas's grid (one per atlas).
    fusion : {"majority", "jlf", "staple"}
        Majority vote (ties to the smallest label), joint label fusion or
        multi-label STAPLE (see :mod:`parareg.population.fusion`).
    transform : {"rigid", "affine", "syn"}
    preset : {"atlas", "fast", "default", "accurate"}
        ``"atlas"`` (:data:`ATLAS_PRESET`, made for label fusion), or one of
        :func:`parareg.register`'s presets.
    out : path, optional
        The label map to write (``.nii`` or ``.nii.gz``); the posteriors and a
        JSON report go next to it (see the module docstring). ``None``
        writes nothing.
    registrations : path, optional
        Folder of the registrations (resumable); default
        ``OUT_registrations/`` next to ``out``, or a temporary folder.
    workers : int, optional
        Worker processes of the local Dask cluster (see
        :func:`parareg.population.batch.register_many`).
    scheduler : str, distributed.Client or Cluster, optional
        An existing Dask cluster instead of a local one.
    posteriors : bool
        Compute (and write) the per-label posteriors.
    patch_radius, search_radius, alpha, beta, patch_metric
        Joint label fusion's settings (ANTs' defaults; see
        :func:`parareg.population.fusion.joint_label_fusion`); refused with
        another ``fusion`` unless left at their defaults.
    label_interpolation : {"genericlabel", "nearest"}
        How labels are put on the target grid.
    num_threads : int, optional
        Threads of the fusion (and of the writer).
    progress : callable, optional
        Called after each registration (see ``register_many``).
    register_options : dict, optional
        More keyword arguments of :func:`parareg.register` (``syn_metric``, ``seed``...);
        a dict (``syn_options``, ``affine_options``) updates the preset's.

    Returns
    -------
    SegmentResult

    Raises
    ------
    ValueError, FileNotFoundError
        Before any work: a bad option, an unreadable image, images of
        different dimensionality, labels that are not integers or not on
        their atlas's grid, ``atlases`` and ``labels`` of different lengths.
    SegmentationError
        Every registration failed.

    Examples
    --------
    >>> result = segment("subject.nii.gz", ["a1.nii.gz", "a2.nii.gz", "a3.nii.gz"],
    ...                  ["l1.nii.gz", "l2.nii.gz", "l3.nii.gz"], fusion="jlf",
    ...                  out="subject_labels.nii.gz", workers=2)  # doctest: +SKIP
    """
    from ..image import as_image
    from ..resampling import LABEL_INTERPOLATIONS, check_interpolation

    t0 = time.perf_counter()
    seconds = {}
    fusion = check_fusion(fusion)
    interpolation = check_interpolation(label_interpolation)
    if interpolation not in LABEL_INTERPOLATIONS:
        raise ValueError(f"label_interpolation must be one of {list(LABEL_INTERPOLATIONS)}, "
                         f"got {label_interpolation!r}")
    for name, value in (("atlases", atlases), ("labels", labels)):
        if isinstance(value, (str, Path, np.ndarray)) or not hasattr(value, "__len__"):
            raise ValueError(f"{name} must be a sequence (one item per atlas), got "
                             f"{type(value).__name__}")
    if len(atlases) == 0:
        raise ValueError("atlases is empty: give at least one labelled atlas")
    if len(atlases) != len(labels):
        raise ValueError(f"got {len(atlases)} atlases but {len(labels)} label maps: every "
                         "atlas needs its labels (give them in the same order)")
    target_image = as_image(target, name="target")
    ndim = target_image.ndim
    if fusion == "jlf":
        options = dict(zip(("patch_radius", "search_radius", "alpha", "beta", "patch_metric"),
                           check_jlf_options(ndim, patch_radius=patch_radius,
                                             search_radius=search_radius, alpha=alpha,
                                             beta=beta, patch_metric=patch_metric)))
        options["patch_radius"] = options["patch_radius"][:ndim]
        options["search_radius"] = options["search_radius"][:ndim]
    else:
        given = {"patch_radius": (patch_radius, DEFAULT_PATCH_RADIUS),
                 "search_radius": (search_radius, DEFAULT_SEARCH_RADIUS),
                 "alpha": (alpha, DEFAULT_ALPHA), "beta": (beta, DEFAULT_BETA),
                 "patch_metric": (patch_metric, DEFAULT_PATCH_METRIC)}
        changed = sorted(k for k, (v, default) in given.items() if v != default)
        if changed:
            raise ValueError(f"{', '.join(changed)} set joint label fusion; they do nothing "
                             f"with fusion={fusion!r}: pass fusion='jlf' or drop them")
        options = {}
    for index, (atlas, label) in enumerate(zip(atlases, labels)):
        atlas_image = as_image(atlas, name=f"atlases[{index}]")
        if atlas_image.ndim != ndim:
            raise ValueError(f"atlases[{index}] is {atlas_image.ndim}D but the target is "
                             f"{ndim}D; every atlas must have the target's dimensionality")
        label_image = _read_labels(label, name=f"labels[{index}]")
        if label_image.shape != atlas_image.shape:
            raise ValueError(f"labels[{index}] has shape {label_image.shape} but "
                             f"atlases[{index}] has {atlas_image.shape}: the labels must be "
                             "on their atlas's grid")
    paths = output_paths(out) if out is not None else None
    if paths is not None and not paths["labels"].parent.is_dir():
        raise FileNotFoundError(f"out: the folder {str(paths['labels'].parent)!r} does not "
                                "exist; create it first")
    from .batch import Job, register_many

    options_register = registration_options(preset, transform, register_options)
    jobs = [Job(_job_name(i, atlas), target, atlas, options=options_register,
                also={"labels": (label, interpolation)})
            for i, (atlas, label) in enumerate(zip(atlases, labels))]
    seconds["checks"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="parareg-segment-") as scratch:
        folder = registrations if registrations is not None else (
            paths["registrations"] if paths is not None else Path(scratch))
        results = register_many(jobs, out=folder, workers=workers, scheduler=scheduler,
                                progress=progress)
        used = [r for r in results if r.ok]
        excluded = [r.name for r in results if not r.ok]
        if not used:
            raise SegmentationError(f"every registration failed (see the record.json files in "
                                    f"{str(folder)!r}); nothing to fuse")
        if excluded:
            warnings.warn(f"segmenting from {len(used)} of {len(results)} atlases: "
                          f"{', '.join(excluded)} left out (registration failed)",
                          AtlasExcludedWarning, stacklevel=2)
        # only JLF reads the warped intensities
        warped = [r.load("warped").data for r in used] if fusion == "jlf" else None
        warped_labels = [r.load("warped_labels").data for r in used]
    seconds["registrations"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fused = FUSIONS[fusion](target_image, warped, warped_labels, posteriors=posteriors,
                            num_threads=num_threads, **options)
    seconds["fusion"] = time.perf_counter() - t0
    labels_image = target_image.with_data(fused.labels)
    result = SegmentResult(labels=labels_image, posteriors=fused.posteriors,
                           label_values=fused.label_values, used=[r.name for r in used],
                           excluded=excluded, seconds=seconds)
    t0 = time.perf_counter()
    if paths is not None:
        from .segment_report import label_statistics

        report = {"labels": fused.label_values.tolist(), "fusion": fusion,
                  "fusion_options": {k: list(v) if isinstance(v, tuple) else v
                                     for k, v in options.items()},
                  "preset": preset,
                  "register_options": {k: v for k, v in options_register.items()
                                       if _plain(v)},
                  "label_interpolation": interpolation, "atlases": result.used,
                  "excluded": excluded, "posteriors": paths["posteriors"].name
                  if posteriors else None,
                  "per_label": label_statistics(fused.labels, warped_labels,
                                                fused.label_values, fused.posteriors)}
        result.files = write_segmentation(result, paths, report, num_threads=num_threads)
        seconds["write"] = time.perf_counter() - t0
    return result


def _plain(value) -> bool:
    """Whether ``value`` is made of JSON's numbers, strings, lists and dicts only."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return isinstance(value, (str, int, float, bool)) or value is None


def write_segmentation(result: SegmentResult, paths: dict, report: dict, *,
                       num_threads: int | None = None) -> list:
    """Write the label map, the posteriors (4D), the report and its plot as one output
    set (the plot only with matplotlib)."""
    import nibabel as nib

    from ..io.nifti import save, to_nifti
    from ..io.outputs import OutputSet
    from .segment_report import can_plot, plot_label_statistics

    plotted = can_plot()
    stale = [key for key, wanted in (("posteriors", result.posteriors is not None),
                                     ("plot", plotted)) if not wanted]
    with OutputSet(remove=[paths[key] for key in stale], num_threads=num_threads) as outputs:
        if plotted:
            plot_label_statistics(
                report["per_label"], paths["plot"], outputs=outputs,
                title=f"{paths['labels'].name}: {report['fusion']} of {len(result.used)} "
                      "atlases")
        save(result.labels, paths["labels"], outputs=outputs)
        if result.posteriors is not None:
            header = to_nifti(result.labels)
            data = result.posteriors
            if data.ndim == 3:  # 2D target: (X, Y, 1, L)
                data = data[:, :, None, :]
            volume = nib.Nifti1Image(data, header.affine, dtype=np.float32)
            volume.set_qform(header.affine, code=1)
            volume.set_sform(header.affine, code=1)
            outputs.add_nifti(paths["posteriors"], volume)
        outputs.add_bytes(paths["report"], json.dumps(report, indent=1))
    return [p for key, p in paths.items() if key != "registrations"
            and (key != "posteriors" or result.posteriors is not None)
            and (key != "plot" or plotted)]
