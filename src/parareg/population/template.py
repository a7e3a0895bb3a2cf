"""An unbiased population template (Avants et al. 2010), its registrations on Dask.

The method of ANTs' ``antsMultivariateTemplateConstruction2.sh`` and ANTsPy's
``build_template``:

0. **Initial template** (unless ``initial`` is given): every image is
   registered affinely to the first one (the affine pyramid stopping at half
   resolution, as before SyN), the warped images are averaged, and
   the average is put at the population's mean size and shape (the update of
   step 3 with no warp).
1. Each iteration registers every image (moving) to the current template
   (fixed) with :func:`parareg.register` (``transform``, ``preset``...), on
   Dask through :func:`parareg.population.register_many`. Coarse to fine
   over the iterations: those before the last run only the ``early_levels``
   coarsest levels of the SyN pyramid (default 1: a quarter of the
   resolution), which moves the template towards the mean shape for a
   fraction of the cost; the last registers at full resolution. From
   the second registration of an image on (SyN templates), it starts from its
   previous affine composed with ``B`` (step 2: the template's own move) and
   runs the affine stage alone at its coarsest level before SyN, instead of
   the whole affine pipeline from the centres of mass.
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

The arithmetic is :mod:`parareg.population.template_update`: all averages are
accumulated in float64 in image order from the files the registrations wrote
(each one's as soon as those before it are in, while the workers register the
others), so the template is bit-identical whatever the worker and thread
counts and the order the registrations finish in, and a resumed run gives the
one an uninterrupted run gives.

**Several contrasts** (``channels``, e.g. T2 next to T1, as ANTs' multivariate
template): each registration is driven by every contrast at once (the
subject's T1 to the T1 template and its T2 to the T2 template, as
:class:`parareg.Channel` pairs), and each contrast gets its own template,
updated by the same mean warp and affine.

Outputs in ``out``
------------------
``template.nii.gz``
    the final template; ``template_iterK.nii.gz`` the template after
    iteration ``K`` (``template_iter0.nii.gz``: the initial one); with
    ``channels``, ``template_NAME.nii.gz`` and ``template_NAME_iterK.nii.gz``
    for the contrast ``NAME``.
``qc_iterK.png``
    montage of that template and the images warped to the template before
    it; ``report.png``: sharpness, mean warp and seconds per iteration (both
    need matplotlib; skipped without it).
``iterK/NAME/``
    iteration ``K``'s registration of image ``NAME`` to
    ``template_iter{K-1}.nii.gz`` (:mod:`parareg.population.batch`): the
    transforms ``0GenericAffine.mat``, ``1Warp.nii.gz``,
    ``1InverseWarp.nii.gz`` (ANTs names), ``Warped.nii.gz``, with ``channels``
    ``Warped_CHANNEL.nii.gz``, and in the last iteration with ``labels``
    ``Warped_labels.nii.gz`` (each subject's labels in template space).
    The last iteration's are each subject's transforms to the template space
    (the final template is on the same grid, one small update away), as in
    ANTs.
``template.json``
    the settings, and per iteration the mean warp length, sharpness and seconds.

Resume: rerunning with the same images and settings skips every finished
registration (a killed run loses only those in flight). Other settings stop
the run before any work; so does a larger ``iterations`` unless
``early_levels=None`` and no ``labels`` (the last iteration's registrations
would have been an early one's).
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._cluster import check_positive
from .batch import Cluster, Job, register_many
from .batch_checks import fingerprint
from .template_checks import LABELS, check_channels, check_unit, read_inputs
from .template_outputs import (image_names, plot_iterations, read_settings, template_path,
                               write_montage, write_settings, write_template)
from .template_update import (Sums, initial_sums, initial_template, laplacian_sharpen,
                              sharpness, update)

__all__ = ["TemplateError", "TemplateProgress", "TemplateResult", "build", "laplacian_sharpen",
           "sharpness"]

TRANSFORMS = ("rigid", "affine", "syn")
_FORMAT = 1
#: how many SyN pyramid levels (from the coarsest) the iterations before the last run
EARLY_LEVELS = 1
#: the affine stage of a registration that starts from its previous affine: the coarsest
#: level of the affine stage before SyN, ``SYN_PREALIGN_LEVELS[:1]`` (IXI, 2 mm: as close to
#: the whole pipeline's result as both levels get, for 0.47 s of CPU instead of 1.4 s)
CHAINED_AFFINE_LEVELS = ((4, 2.0, 100),)
#: the affine pyramid of iteration 0 (the images onto the first one): as before SyN
INITIAL_AFFINE_LEVELS = ((4, 2.0, 100), (2, 1.0, 50))


class TemplateError(RuntimeError):
    """Too few registrations of an iteration succeeded to update the template."""


@dataclass
class TemplateProgress:
    """What :func:`build`'s ``progress`` callback receives.

    ``stage`` is ``"registering"`` (an iteration starts; ``jobs`` to run),
    ``"registered"`` (one registration finished: ``registration`` is the
    batch's :class:`~parareg._cluster.Progress`) or ``"updated"`` (the
    iteration's template is written: ``template``, ``mean_warp_mm``,
    ``sharpness``, ``seconds``). Iteration 0 is the initial template.
    """

    iteration: int
    iterations: int
    stage: str
    jobs: int = 0
    registration: object = None
    template: Path | None = None
    mean_warp_mm: float | None = None
    sharpness: float | None = None
    seconds: float | None = None


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
    #: per iteration 0.., {"mean_warp_mm", "sharpness", "images", "seconds"}
    summary: list = field(default_factory=list)
    #: with ``channels``: contrast name -> its final template (a :class:`parareg.Image`)
    channels: dict = field(default_factory=dict)


def build(images, *, out, initial=None, iterations: int = 4, transform: str = "syn",
          preset: str = "default", early_levels: int | None = EARLY_LEVELS,
          syn_metric: str = "cc",
          gradient_step: float = 0.2, blending_weight: float | None = 0.75, labels=None,
          channels=None, channel_weights=None, registration_options=None, scheduler=None,
          workers: int | None = None, threads_per_worker: int = 1,
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
        SyN settings of :func:`parareg.register` in the last iteration.
    early_levels : int or None
        How many of ``preset``'s SyN pyramid levels (from the coarsest) the
        iterations before the last run (unless ``registration_options`` sets
        ``syn_options["levels"]``); ``None``: all, as the last iteration.
    syn_metric : {"cc", "ssd", "em", "mi"}
    gradient_step : float in (0, 1]
        Fraction of the mean inverse warp applied per iteration (ANTsPy 0.2).
    blending_weight : float in [0, 1] or None
        Weight of the unsharpened template (ANTsPy 0.75); ``None``: no sharpening.
    labels : sequence of path, optional
        A label map per image, warped with the last iteration's registration
        (``GenericLabel``) to ``iterK/NAME/Warped_labels.nii.gz``, ``K`` =
        ``iterations``.
    channels : dict of str to sequence of path or Image, optional
        More contrasts: name -> one image per subject, each on the grid of
        that subject's image in ``images`` (e.g. ``{"t2": t2_paths}``). Every
        contrast drives the registrations and gets its own template (see the
        module docstring). Not with ``initial``.
    channel_weights : dict of str to float, optional
        Weight of each contrast of ``channels`` (default 1; ``images`` weigh
        1), as :class:`parareg.Channel`'s ``weight``.
    registration_options : dict, optional
        More keyword arguments of :func:`parareg.register` (``seed``,
        ``syn_options``...).
    scheduler : str or distributed.Client, optional
        An existing Dask cluster; default: a local cluster of ``workers``.
    workers, threads_per_worker, task_threads : int, optional
        See :func:`parareg.population.register_many`; the template does not
        depend on them.
    qc : bool
        Write ``qc_iterK.png`` and ``report.png`` (need matplotlib).
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
    from ..metrics.syn import SYN_METRICS
    from ..registration.pipeline import SYN_PRESETS

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
    early_levels = check_positive(early_levels, "early_levels", allow_none=True)
    early_levels = early_levels if transform == "syn" else None  # linear: no SyN pyramid
    syn_metric = choice(syn_metric, sorted(SYN_METRICS), name="syn_metric")
    gradient_step = check_unit(gradient_step, "gradient_step")
    blending_weight = check_unit(blending_weight, "blending_weight", low_open=False,
                                  allow_none=True)
    extra = dict(registration_options or {})
    for key in ("transform", "preset", "syn_metric", "channels"):
        if key in extra:
            raise ValueError(f"registration_options={{{key!r}: ...}} repeats build's own "
                             f"{key}= argument; pass {key}= to build")
    if labels is not None:
        labels = [labels] if isinstance(labels, (str, Path)) else list(labels)
        if len(labels) != len(images):
            raise ValueError(f"labels: give one label map per image, got {len(labels)} for "
                             f"{len(images)} images")
    channels, weights = check_channels(channels, channel_weights, len(images))
    if channels and initial is not None:
        raise ValueError("initial with channels is not supported: a starting template would "
                         "be needed per contrast; omit initial (the initial template is then "
                         "the affinely aligned mean of every contrast)")
    runner = Cluster(scheduler=scheduler, workers=workers,
                     threads_per_worker=threads_per_worker, task_threads=task_threads)
    inputs, digests, ndim = read_inputs(images, channels, labels)
    start = None if initial is None else as_image(initial, name="initial")
    if start is not None and start.ndim != ndim:
        raise ValueError(f"initial is {start.ndim}D but the images are {ndim}D")
    names = image_names(images)
    out = Path(out)
    options = dict(extra, transform=transform, preset=preset, syn_metric=syn_metric)
    settings = {"format": _FORMAT, "images": digests,
                "names": names, "initial": None if start is None else fingerprint(
                    start, name="initial")[1],
                "options": {k: repr(v) for k, v in sorted(options.items())},
                "gradient_step": gradient_step, "blending_weight": blending_weight,
                "labels": None if labels is None else [str(p) for p in labels]}
    if channels:
        settings["channels"] = {name: weights[name] for name in channels}
    if early_levels is not None:  # without: the settings of earlier versions
        settings["early_levels"] = early_levels
    if early_levels is not None or labels is not None:  # the last iteration differs
        settings["iterations"] = iterations
    settings["settings_hash"] = hashlib.sha256(
        json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    settings["paths"] = [str(p) if isinstance(p, (str, Path)) else None for p in images]
    done = read_settings(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    build = _Build(out=out, runner=runner, inputs=inputs, names=names, labels=labels,
                   channels=channels, weights=weights, iterations=iterations, qc=qc,
                   progress=progress, settings=settings, done=done,
                   chained=transform == "syn")
    with build:  # exits last: the QC pictures are drawn while the cluster closes
        with runner:
            # -- iteration 0: the initial template
            t0 = time.perf_counter()
            if start is None:
                references = {"": as_image(inputs[0], name="images[0]")}
                references.update({name: as_image(contrast[0], name=f"channels[{name!r}][0]")
                                   for name, contrast in channels.items()})
                sums = initial_sums(names[1:], references, roles=build.roles)
                ok = build.run(0, [build.job(i, 0, _initial_options(extra))
                                   for i in range(1, len(images))], sums)
                current, stretch = initial_template(references, ok, roles=build.roles, sums=sums)
                build.chain(ok, stretch, first=names[0])
            else:
                ok, current = [], {"": start}
            build.write(0, current, ok, t0, images=len(ok) + (start is None))
            for k in range(1, iterations + 1):
                t0 = time.perf_counter()
                step = options if k == iterations or early_levels is None else _early_options(
                    options, early_levels, ndim)
                sums = Sums(names, roles=build.roles, deformable=transform == "syn")
                ok = build.run(k, [build.job(i, k, step) for i in range(len(images))], sums)
                if len(ok) < 2:
                    raise TemplateError(f"iteration {k}: only {len(ok)} of {len(images)} "
                                        f"registrations succeeded (see {out / f'iter{k}'}/*/"
                                        "record.json); a template needs at least 2")
                current, mean_warp, stretch = update(current[""], ok, roles=build.roles,
                                                     gradient_step=gradient_step,
                                                     deformable=transform == "syn",
                                                     blending_weight=blending_weight, sums=sums)
                build.chain(ok, stretch)
                build.write(k, current, ok, t0, images=len(ok), mean_warp=mean_warp)
        for name, image in current.items():
            write_template(template_path(out, name, None), image)
        write_settings(out, settings, {**done, **build.summary})
        summary = [build.summary[k] for k in sorted(build.summary)]
        if qc:
            build.draw(plot_iterations, out / "report.png", summary)
    return TemplateResult(template=current[""], path=template_path(out, "", None),
                          iterations=build.paths, names=names, registrations=build.last,
                          failed=sorted(build.failed), summary=summary,
                          channels={name: image for name, image in current.items() if name})


class _Build:
    """One build's jobs, batches and written templates (the state :func:`build` threads through
    its iterations)."""

    def __init__(self, *, out, runner, inputs, names, labels, channels, weights, iterations,
                 qc, progress, settings, done, chained):
        self.out, self.runner, self.inputs, self.names = out, runner, inputs, names
        self.labels, self.channels, self.weights = labels, channels, weights
        self.iterations, self.qc, self.progress = iterations, qc, progress
        self.settings, self.done = settings, done
        #: channel name ("" the first contrast) -> the role of its warped image in a JobResult
        self.roles = {"": "warped", **{name: f"warped_{name}" for name in channels}}
        self.summary, self.failed, self.paths, self.last = {}, set(), [], []
        #: image name -> where its next registration starts (fixed world -> moving world)
        self.chained, self.starts = chained, {}
        #: the QC montages' thread and what it was given
        self.pictures, self.drawn = None, []

    def report(self, **kwargs) -> None:
        if self.progress is not None:
            self.progress(TemplateProgress(iterations=self.iterations, **kwargs))

    def job(self, i: int, k: int, options: dict) -> Job:
        """Image ``i`` onto the template of iteration ``k - 1`` (onto image 0 for ``k`` 0)."""
        from ..registration.channels import Channel

        def fixed(name):
            if k == 0:
                return self.inputs[0] if not name else self.channels[name][0]
            return str(template_path(self.out, name, k - 1))

        last = k == self.iterations and self.labels is not None
        also = {LABELS: (str(self.labels[i]), "genericlabel")} if last else {}
        also.update({name: (contrast[i], "linear") for name, contrast in self.channels.items()})
        if self.channels:
            options = dict(options, channels=[
                Channel(fixed(name), contrast[i], weight=self.weights[name])
                for name, contrast in self.channels.items()])
        start = self.starts.get(self.names[i]) if k > 0 and self.chained else None
        if start is not None and not {"initial_transform", "stages"} & set(options):
            affine = dict(options.get("affine_options") or {})
            affine.setdefault("levels", CHAINED_AFFINE_LEVELS)
            options = dict(options, initial_transform=start, stages=("affine", "syn"),
                           affine_options=affine)
        return Job(self.names[i], fixed(""), self.inputs[i], options=options, also=also)

    def chain(self, ok: list, stretch: np.ndarray, *, first: str | None = None) -> None:
        """Where the next iteration's registrations start: each image's affine of this
        iteration composed with ``B`` (the template's move; the first image's identity in
        iteration 0). An image whose registration failed starts afresh."""
        self.starts = {r.name: r.matrix @ stretch for r in ok}
        if first is not None:
            self.starts[first] = stretch.copy()

    def run(self, k: int, jobs: list, sums) -> list:
        """Iteration ``k``'s registrations; the successful ones (image order). Each one
        that finishes goes into ``sums`` (a :class:`~.template_update.Sums`) at once."""
        def finished(p):
            sums.add(p.result)
            self.report(iteration=k, stage="registered", jobs=len(jobs), registration=p)

        self.report(iteration=k, stage="registering", jobs=len(jobs))
        results = register_many(jobs, out=self.out / f"iter{k}", scheduler=self.runner,
                                progress=finished)
        self.failed.update(r.name for r in results if not r.ok)
        self.last = results
        return [r for r in results if r.ok]

    def __enter__(self):
        return self

    def __exit__(self, kind, *exc) -> bool:
        """Wait for the QC montages; raise the first one's error (unless the build failed)."""
        if self.pictures is not None:
            self.pictures.shutdown(wait=True)
            self.pictures = None
        drawn, self.drawn = self.drawn, []
        if kind is None:
            for future in drawn:
                future.result()
        return False

    def draw(self, picture, *args) -> None:
        """``picture(*args)`` in the QC thread (while the build goes on)."""
        if self.pictures is None:
            self.pictures = ThreadPoolExecutor(1, thread_name_prefix="parareg-qc")
        self.drawn.append(self.pictures.submit(picture, *args))

    def write(self, k: int, templates: dict, ok: list, t0: float, *, images: int,
              mean_warp=None) -> None:
        """Iteration ``k``'s templates, QC montage, summary (and ``template.json``)."""
        written = False
        for name, image in templates.items():
            written |= write_template(template_path(self.out, name, k), image)
        self.paths.append(template_path(self.out, "", k))
        qc = self.out / f"qc_iter{k}.png"
        if self.qc and (written or not qc.is_file()):  # drawn while the next iteration runs
            self.draw(write_montage, qc, k, templates[""], [r.path("warped") for r in ok],
                      [r.name for r in ok])
        score = sharpness(templates[""].data)
        row = {"mean_warp_mm": mean_warp, "sharpness": score, "images": images,
               "seconds": time.perf_counter() - t0}
        if k > 0:
            row["failed"] = [r.name for r in self.last if not r.ok]
            write_settings(self.out, self.settings, {**self.done, **self.summary, k: row})
        self.summary[k] = row
        self.report(iteration=k, stage="updated", template=self.paths[-1],
                    mean_warp_mm=mean_warp, sharpness=score, seconds=row["seconds"])


def _initial_options(extra: dict) -> dict:
    """register() options of iteration 0: affine, its pyramid :data:`INITIAL_AFFINE_LEVELS`
    (a starting point; unless ``affine_options`` sets the levels)."""
    affine = dict(extra.get("affine_options") or {})
    affine.setdefault("levels", INITIAL_AFFINE_LEVELS)
    return dict(extra, transform="affine", affine_options=affine)


def _early_options(options: dict, levels: int, ndim: int) -> dict:
    """register() options of the iterations before the last: the ``levels`` coarsest levels of
    the preset's SyN pyramid (unless ``syn_options`` sets the levels)."""
    from ..registration.pipeline import preset_options

    syn = dict(options.get("syn_options") or {})
    if "levels" not in syn:
        syn["levels"] = tuple(preset_options(options["preset"], ndim)["levels"][:levels])
    return dict(options, syn_options=syn)
