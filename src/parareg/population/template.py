"""An unbiased population template (Avants et al. 2010), its registrations on Dask.

The method of ANTs' ``antsMultivariateTemplateConstruction2.sh`` and ANTsPy's
``build_template``, single-channel:

0. **Initial template** (unless ``initial`` is given): every image is
   registered affinely to the first one, the warped images are averaged, and
   the average is put at the population's mean size and shape (the update of
   step 3 with no warp).
1. Each iteration registers every image (moving) to the current template
   (fixed) with :func:`parareg.register` (``transform``, ``preset``...), on
   Dask through :func:`parareg.population.register_many`.
2. The warped images are averaged: ``A(x)``; so are the forward warps (each
   a displacement field on the template grid): ``w(x)``; and the affine
   stages' non-rigid parts (the symmetric factor ``S`` of each linear part
   ``L = R S``, ANTsPy's ``useNoRigid``): ``S_mean``, which acts about the
   template's centre ``c`` as ``B(x) = c + S_mean^-1 (x - c)``.
3. The new template is ``A`` pulled through ``B`` and the scaled mean
   inverse warp, as ANTs chains ``[meanAffine,1]`` and ``-gradient_step * w``:
   ``T(x) = A(B(x + u(B x)))`` with ``u = -gradient_step * w``: it moves the
   template towards the population's mean shape, so the next mean warp
   shrinks.
4. Optional sharpening (ANTs' ``ImageMath Sharpen``): ``T <- b T + (1 - b) S(T)``
   with ``b = blending_weight`` and ``S(T) = T - laplace(T)`` kept in ``T``'s
   intensity range.

All averages are accumulated in float64 in image order from the files the
registrations wrote, so the template is bit-identical whatever the worker
and thread counts, and a resumed run gives the one an uninterrupted run
gives. Multi-channel templates (several contrasts per subject) are not
supported yet.

Outputs in ``out``
------------------
``template.nii.gz``
    the final template; ``template_iterK.nii.gz`` the template after
    iteration ``K`` (``template_iter0.nii.gz``: the initial one).
``qc_iterK.png``
    montage of that template and the images warped to the template before
    it (needs matplotlib; skipped without it).
``iterK/NAME/``
    iteration ``K``'s registration of image ``NAME`` to
    ``template_iter{K-1}.nii.gz`` (:mod:`parareg.population.batch`): the
    transforms ``0GenericAffine.mat``, ``1Warp.nii.gz``,
    ``1InverseWarp.nii.gz`` (ANTs names), ``Warped.nii.gz`` and, with
    ``labels``, ``Warped_labels.nii.gz``. The last iteration's are each
    subject's transforms to the template space (the final template is on
    the same grid, one small update away), as in ANTs.
``template.json``
    the settings, and per iteration the mean warp length and sharpness.

Resume: rerunning with the same images and settings skips every finished
registration (a killed run loses only those in flight); a larger
``iterations`` continues a finished build. Other settings stop the run
before any work.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._cluster import safe_name
from .batch import Cluster, Job, register_many

__all__ = ["TemplateError", "TemplateProgress", "TemplateResult", "build", "laplacian_sharpen"]

TRANSFORMS = ("rigid", "affine", "syn")
SETTINGS = "template.json"
_FORMAT = 1


class TemplateError(RuntimeError):
    """Too few registrations of an iteration succeeded to update the template."""


@dataclass
class TemplateProgress:
    """What :func:`build`'s ``progress`` callback receives.

    ``stage`` is ``"registering"`` (an iteration starts; ``jobs`` to run),
    ``"registered"`` (one registration finished: ``registration`` is the
    batch's :class:`~parareg._cluster.Progress`) or ``"updated"`` (the
    iteration's template is written: ``template``, ``mean_warp_mm``).
    Iteration 0 is the initial template.
    """

    iteration: int
    iterations: int
    stage: str
    jobs: int = 0
    registration: object = None
    template: Path | None = None
    mean_warp_mm: float | None = None


@dataclass
class TemplateResult:
    """What :func:`build` returns."""

    #: the final template (a :class:`parareg.Image`) and its file
    template: object
    path: Path
    #: template_iterK.nii.gz, K = 0 (initial) .. iterations
    iterations: list = field(default_factory=list)
    #: the image names (folders under iterK/)
    names: list = field(default_factory=list)
    #: per iteration (1..), the last iteration's list of JobResult
    registrations: list = field(default_factory=list)
    #: names of the images left out of some iteration (their registration failed)
    failed: list = field(default_factory=list)
    #: per iteration 0.., {"mean_warp_mm", "sharpness", "images"}
    summary: list = field(default_factory=list)


def laplacian_sharpen(image, *, blending_weight: float = 0.75):
    """``b I + (1 - b) S(I)``, ``S(I) = I - laplace(I)`` clipped to ``I``'s range (``b`` =
    ``blending_weight``): ANTsPy's template sharpening, with a plain discrete Laplacian
    (voxel units, edges repeated).

    >>> import numpy as np
    >>> from parareg import Image
    >>> step = Image(np.repeat([[0.0] * 4 + [1.0] * 4], 3, axis=0), np.eye(3))
    >>> laplacian_sharpen(step, blending_weight=0.0).data[0].tolist()
    [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    >>> laplacian_sharpen(step, blending_weight=1.0).data[0].tolist()
    [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    """
    from scipy import ndimage

    data = np.asarray(image.data, dtype=np.float64)
    sharp = np.clip(data - ndimage.laplace(data, mode="nearest"), data.min(), data.max())
    blended = blending_weight * data + (1.0 - blending_weight) * sharp
    return image.with_data(blended.astype(np.float32))


def _sharpness(data: np.ndarray) -> float:
    """Mean gradient magnitude over mean intensity inside the head (voxel units): higher is
    crisper; a blurry average of misaligned images scores low."""
    values = np.asarray(data, dtype=np.float64)
    inside = values > 0.1 * values.max() if values.max() > 0 else np.ones(values.shape, bool)
    grads = np.gradient(values)
    magnitude = np.sqrt(sum(g * g for g in grads))
    mean = values[inside].mean()
    return float(magnitude[inside].mean() / mean) if mean > 0 else 0.0


def mean_stretch(matrices, centre) -> np.ndarray:
    """``B``: the inverse mean non-rigid part of fixed->moving affines, about ``centre``.

    Each linear part ``L = R S`` (polar decomposition, ``S`` symmetric
    positive definite); ``B(x) = c + S_mean^-1 (x - c)``, homogeneous.

    >>> import numpy as np
    >>> a = np.diag([2.0, 2.0, 1.0]); b = np.diag([1.0, 1.0, 1.0])
    >>> mean_stretch([a, b], np.zeros(2))[:2, :2].tolist()
    [[0.6666666666666666, 0.0], [0.0, 0.6666666666666666]]
    """
    from scipy.linalg import polar

    ndim = len(centre)
    total = np.zeros((ndim, ndim))
    for matrix in matrices:
        _, stretch = polar(np.asarray(matrix, dtype=np.float64)[:ndim, :ndim], side="right")
        total += stretch
    inverse = np.linalg.inv(total / len(matrices))
    out = np.eye(ndim + 1)
    out[:ndim, :ndim] = inverse
    out[:ndim, ndim] = centre - inverse @ centre
    return out


def _update(template_grid, results, *, gradient_step: float, deformable: bool,
            blending_weight, num_threads):
    """The next template from one iteration's successful registrations (image order)."""
    from ..image import Image
    from ..resampling import resample
    from ..transforms.diffeomorphic import resample_field

    mean = np.zeros(template_grid.shape, np.float64)
    warp = np.zeros((*template_grid.shape, template_grid.ndim), np.float64) if deformable \
        else None
    for result in results:
        mean += result.load("warped").data
        if deformable:
            warp += result.load_warp()
    mean /= len(results)
    average = Image(mean.astype(np.float32), template_grid.vox2world)
    ndim = template_grid.ndim
    centre = template_grid.vox2world[:ndim] @ np.append((np.array(template_grid.shape) - 1) / 2,
                                                        1.0)
    stretch = mean_stretch([r.matrix for r in results], centre)
    field, mean_warp = None, None
    if deformable:
        warp /= len(results)
        mean_warp = float(np.sqrt((warp ** 2).sum(axis=-1)).mean())
        step = (-gradient_step * warp).astype(np.float32)
        field = resample_field(step, template_grid.vox2world, template_grid, affine=stretch,
                               num_threads=num_threads)
    updated = resample(average, template_grid, affine=stretch, field=field,
                       num_threads=num_threads)
    if blending_weight is not None:
        updated = laplacian_sharpen(updated, blending_weight=blending_weight)
    return updated, mean_warp


def _names(images) -> list[str]:
    names = []
    for i, image in enumerate(images):
        if isinstance(image, (str, Path)):
            base = Path(image).name
            for suffix in (".nii.gz", ".nii", ".mgz"):
                if base.lower().endswith(suffix):
                    base = base[: -len(suffix)]
                    break
            name = safe_name(base)
        else:
            name = f"image{i:03d}"
        names.append(name if name not in names else f"{name}-{i}")
    return names


def _digest(image) -> str:
    from .batch import _digest as digest

    return digest(image)


def _check_unit(value, name, *, low_open=True, allow_none=False):
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if ok and np.isfinite(value) and (0 < value <= 1 if low_open else 0 <= value <= 1):
        return float(value)
    interval = "(0, 1]" if low_open else "[0, 1]"
    raise ValueError(f"{name} must be a number in {interval}{' or None' if allow_none else ''}, "
                     f"got {value!r}")


def _check_settings(out: Path, settings: dict) -> dict:
    """template.json's earlier iterations when its settings match, else a ValueError."""
    path = out / SETTINGS
    if not path.is_file():
        return {}
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if earlier.get("settings_hash") != settings["settings_hash"]:
        raise ValueError(f"{out} holds a template built from other images or settings "
                         f"({path.name} differs); use another output folder, or delete it")
    return {int(k): v for k, v in earlier.get("iterations", {}).items()}


def _write_settings(out: Path, settings: dict, iterations: dict) -> None:
    from ..io.outputs import write_text

    data = dict(settings, iterations={str(k): v for k, v in sorted(iterations.items())})
    write_text(out / SETTINGS, json.dumps(data, indent=1, default=str))


def _write_template(out: Path, k: int, image, warped_paths, names, *, qc: bool) -> Path:
    """template_iterK.nii.gz (skipped when it holds these values already) and qc_iterK.png."""
    from ..io.nifti import load, save

    path = out / f"template_iter{k}.nii.gz"
    if path.is_file():
        try:
            same = _digest(load(path)) == _digest(image)
        except (OSError, ValueError):
            same = False
        if same:
            return path
    save(image, path, num_threads=1)
    if qc:
        try:
            from ..qc import montage_figure
        except ImportError:
            return path
        shown = list(zip(names, warped_paths))[:7]
        try:
            montage_figure([image] + [load(p) for _, p in shown], out / f"qc_iter{k}.png",
                           labels=[f"template {k}"] + [n for n, _ in shown],
                           title=f"iteration {k}: template and the images warped to "
                                 f"template {max(k - 1, 0)}")
        except ImportError:
            pass
    return path


def build(images, *, out, initial=None, iterations: int = 4, transform: str = "syn",
          preset: str = "default", syn_metric: str = "cc", gradient_step: float = 0.2,
          blending_weight: float | None = 0.75, labels=None, registration_options=None,
          scheduler=None, workers: int | None = None, threads_per_worker: int = 1,
          task_threads: int | None = None, qc: bool = True, progress=None) -> TemplateResult:
    """Build (or resume) an unbiased template of ``images`` (see the module docstring).

    Parameters
    ----------
    images : sequence of path or Image
        Two or more images of one dimensionality (2D or 3D), one contrast.
    out : path
        Output folder (created); rerunning into it resumes.
    initial : path or Image, optional
        The starting template (its grid is the template's). Default: the
        affinely aligned mean of ``images`` on the first image's grid.
    iterations : int
        Template updates after the initial template (ANTsPy: 3, ANTs: 4).
    transform : {"syn", "affine", "rigid"}
        Registration of each image to the template; ``"affine"``/``"rigid"``
        build a linear template (no warp update).
    preset : {"fast", "default", "accurate"}
        SyN settings of :func:`parareg.register`.
    syn_metric : {"cc", "ssd", "em", "mi"}
    gradient_step : float in (0, 1]
        Fraction of the mean inverse warp applied per iteration (ANTsPy 0.2).
    blending_weight : float in [0, 1] or None
        Weight of the unsharpened template (ANTsPy 0.75); ``None``: no sharpening.
    labels : sequence of path, optional
        A label map per image, warped with each registration
        (``GenericLabel``) to ``iterK/NAME/Warped_labels.nii.gz``.
    registration_options : dict, optional
        More keyword arguments of :func:`parareg.register` (``seed``,
        ``syn_options``...).
    scheduler : str or distributed.Client, optional
        An existing Dask cluster; default: a local cluster of ``workers``.
    workers, threads_per_worker, task_threads : int, optional
        See :func:`parareg.population.register_many`; the template does not
        depend on them.
    qc : bool
        Write ``qc_iterK.png`` (needs matplotlib).
    progress : callable, optional
        ``progress(TemplateProgress)`` as the build goes (the library never prints).

    Returns
    -------
    TemplateResult

    Raises
    ------
    ValueError, FileNotFoundError
        Before any work: fewer than two images, an unreadable image, images
        of different dimensionality, a bad option, or an ``out`` holding a
        template of other images or settings.
    TemplateError
        Fewer than two registrations of an iteration succeeded (each failed
        one comes with a :class:`~parareg.population.RegistrationFailedWarning`
        and is left out of that iteration's averages).

    Examples
    --------
    >>> import parareg
    >>> result = parareg.template.build(["s1.nii.gz", "s2.nii.gz", "s3.nii.gz"],
    ...                                 out="template", iterations=2, workers=2)  # doctest: +SKIP
    >>> result.path  # doctest: +SKIP
    PosixPath('template/template.nii.gz')
    """
    from .._options import choice
    from ..image import as_image
    from ..io.nifti import save
    from ..registration.pipeline import SYN_PRESETS
    from ..metrics.syn import SYN_METRICS

    # -- everything checked before any work
    images = list(images) if not isinstance(images, (str, Path)) else [images]
    if len(images) < 2:
        raise ValueError(f"images: a template needs at least 2 images, got {len(images)}")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) \
            or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    iterations = int(iterations)
    transform = choice(transform, TRANSFORMS, name="transform")
    preset = choice(preset, sorted(SYN_PRESETS), name="preset")
    syn_metric = choice(syn_metric, sorted(SYN_METRICS), name="syn_metric")
    gradient_step = _check_unit(gradient_step, "gradient_step")
    blending_weight = _check_unit(blending_weight, "blending_weight", low_open=False,
                                  allow_none=True)
    extra = dict(registration_options or {})
    for key in ("transform", "preset", "syn_metric"):
        if key in extra:
            raise ValueError(f"registration_options={{{key!r}: ...}} repeats build's own "
                             f"{key}= argument; pass {key}= to build")
    if labels is not None:
        labels = list(labels)
        if len(labels) != len(images):
            raise ValueError(f"labels: give one label map per image, got {len(labels)} for "
                             f"{len(images)} images")
    loaded = [as_image(image, name=f"images[{i}]") for i, image in enumerate(images)]
    odd = [i for i, image in enumerate(loaded) if image.ndim != loaded[0].ndim]
    if odd:
        def text(i):
            return repr(str(images[i])) if isinstance(images[i], (str, Path)) else f"images[{i}]"

        raise ValueError(f"images must all be 2D or all 3D: {text(odd[0])} is "
                         f"{loaded[odd[0]].ndim}D but {text(0)} is {loaded[0].ndim}D")
    ndims = [loaded[0].ndim]
    start = None if initial is None else as_image(initial, name="initial")
    if start is not None and start.ndim != ndims[0]:
        raise ValueError(f"initial is {start.ndim}D but the images are {ndims[0]}D")
    names = _names(images)
    out = Path(out)
    options = dict(extra, transform=transform, preset=preset, syn_metric=syn_metric)
    settings = {"format": _FORMAT, "images": [_digest(image) for image in loaded],
                "names": names, "initial": None if start is None else _digest(start),
                "options": {k: repr(v) for k, v in sorted(options.items())},
                "gradient_step": gradient_step, "blending_weight": blending_weight,
                "labels": None if labels is None else [str(p) for p in labels]}
    settings["settings_hash"] = hashlib.sha256(
        json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    settings["paths"] = [str(p) if isinstance(p, (str, Path)) else None for p in images]
    done = _check_settings(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    inputs = [str(p) if isinstance(p, (str, Path)) else image
              for p, image in zip(images, loaded)]
    also = [{} if labels is None else {"labels": (str(labels[i]), "genericlabel")}
            for i in range(len(images))]
    del loaded

    def report(**kwargs):
        if progress is not None:
            progress(TemplateProgress(iterations=iterations, **kwargs))

    summary = {}
    failed = set()
    paths = []
    with Cluster(scheduler=scheduler, workers=workers, threads_per_worker=threads_per_worker,
                 task_threads=task_threads) as runner:

        def run(k, jobs):
            report(iteration=k, stage="registering", jobs=len(jobs))
            results = register_many(
                jobs, out=out / f"iter{k}", scheduler=runner,
                progress=lambda p: report(iteration=k, stage="registered", jobs=len(jobs),
                                          registration=p))
            ok = [r for r in results if r.ok]
            failed.update(r.name for r in results if not r.ok)
            return results, ok

        # -- iteration 0: the initial template
        if start is None:
            jobs = [Job(names[i], inputs[0], inputs[i], options=dict(extra, transform="affine"),
                        also=also[i]) for i in range(1, len(images))]
            results, ok = run(0, jobs)
            reference = as_image(inputs[0], name="images[0]")
            current = _initial_template(reference, ok)
            warped = [r.path("warped") for r in ok]
            shown = [r.name for r in ok]
        else:
            current, warped, shown = start, [], []
        paths.append(_write_template(out, 0, current, warped, shown, qc=qc))
        summary[0] = {"mean_warp_mm": None, "sharpness": _sharpness(current.data),
                      "images": len(warped) + (start is None)}
        report(iteration=0, stage="updated", template=paths[0])
        last = []
        for k in range(1, iterations + 1):
            jobs = [Job(names[i], paths[k - 1], inputs[i], options=options, also=also[i])
                    for i in range(len(images))]
            last, ok = run(k, jobs)
            if len(ok) < 2:
                raise TemplateError(f"iteration {k}: only {len(ok)} of {len(jobs)} "
                                    f"registrations succeeded (see {out / f'iter{k}'}/*/"
                                    "record.json); a template needs at least 2")
            current, mean_warp = _update(current, ok, gradient_step=gradient_step,
                                         deformable=transform == "syn",
                                         blending_weight=blending_weight, num_threads=None)
            paths.append(_write_template(out, k, current, [r.path("warped") for r in ok],
                                         [r.name for r in ok], qc=qc))
            summary[k] = {"mean_warp_mm": mean_warp, "sharpness": _sharpness(current.data),
                          "images": len(ok), "failed": [r.name for r in last if not r.ok]}
            _write_settings(out, settings, {**done, **summary})
            report(iteration=k, stage="updated", template=paths[k], mean_warp_mm=mean_warp)
    final = save(current, out / "template.nii.gz", num_threads=1)
    _write_settings(out, settings, {**done, **summary})
    return TemplateResult(template=current, path=final, iterations=paths, names=names,
                          registrations=last, failed=sorted(failed),
                          summary=[summary[k] for k in sorted(summary)])


def _initial_template(reference, results):
    """The mean of ``reference`` and the images affinely aligned to it, at the mean size."""
    from ..image import Image
    from ..resampling import resample

    mean = np.asarray(reference.data, np.float64).copy()
    for result in results:
        mean += result.load("warped").data
    mean /= len(results) + 1
    ndim = reference.ndim
    centre = reference.vox2world[:ndim] @ np.append((np.array(reference.shape) - 1) / 2, 1.0)
    stretch = mean_stretch([np.eye(ndim + 1)] + [r.matrix for r in results], centre)
    average = Image(mean.astype(np.float32), reference.vox2world)
    return resample(average, average, affine=stretch, num_threads=None)
