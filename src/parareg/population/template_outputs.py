"""What a template build writes besides the registrations: templates, settings, pictures.

File names: see :mod:`parareg.population.template` ("Outputs in ``out``").
"""

from __future__ import annotations

import json
from pathlib import Path

from .._cluster import safe_name
from .batch_checks import digest

__all__ = ["SETTINGS", "image_names", "plot_iterations", "read_settings", "template_path",
           "write_montage", "write_settings", "write_template"]

SETTINGS = "template.json"
#: images warped to the template shown next to it in qc_iterK.png (each column costs ~0.3 s
#: of CPU for a 3D image, drawn while the next iteration registers)
MONTAGE_IMAGES = 3


def template_path(out: Path, channel: str, k: int | None) -> Path:
    """``template[_CHANNEL][_iterK].nii.gz`` (``channel`` ``""``: the first contrast's;
    ``k`` ``None``: the final template).

    >>> template_path(Path("t"), "", 2).name, template_path(Path("t"), "t2", None).name
    ('template_iter2.nii.gz', 'template_t2.nii.gz')
    """
    stem = "template" + (f"_{channel}" if channel else "")
    return out / (f"{stem}.nii.gz" if k is None else f"{stem}_iter{k}.nii.gz")


def image_names(images) -> list[str]:
    """A unique folder name per image: its file name without the NIfTI suffix, else
    ``imageNNN``."""
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


def read_settings(out: Path, settings: dict) -> dict:
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


def write_settings(out: Path, settings: dict, iterations: dict) -> None:
    from ..io.outputs import write_text

    data = dict(settings, iterations={str(k): v for k, v in sorted(iterations.items())})
    write_text(out / SETTINGS, json.dumps(data, indent=1, default=str))


def write_template(path: Path, image) -> bool:
    """``image`` to ``path``, unless the file holds these values already (a resumed run);
    True when written."""
    from ..io.nifti import load, save

    if path.is_file():
        try:
            same = digest(load(path)) == digest(image)
        except (OSError, ValueError):
            same = False
        if same:
            return False
    save(image, path, num_threads=1)
    return True


def write_montage(path: Path, k: int, image, warped_paths, names) -> None:
    """``qc_iterK.png``: the template of iteration ``k`` and (up to 3 of) the images warped
    to the template before it (nothing without matplotlib)."""
    from ..io.nifti import load

    try:
        from ..qc import montage_figure

        shown = list(zip(names, warped_paths))[:MONTAGE_IMAGES]
        montage_figure([image] + [load(p) for _, p in shown], path,
                       labels=[f"template {k}"] + [n for n, _ in shown],
                       title=f"iteration {k}: template and the images warped to "
                             f"template {max(k - 1, 0)}")
    except ImportError:
        pass


def plot_iterations(path: Path, summary: list) -> None:
    """``report.png``: per iteration, the template's sharpness, the mean warp length and the
    seconds the iteration took (nothing without matplotlib)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # matplotlib is optional: no picture
        return
    from ..io.outputs import write_file

    fig = Figure(figsize=(10.0, 3.0), layout="constrained")
    FigureCanvasAgg(fig)
    sharp, warp, seconds = fig.subplots(1, 3)
    iterations = range(len(summary))
    sharp.plot(iterations, [s["sharpness"] for s in summary], "o-")
    sharp.set(xlabel="iteration (0: initial)", ylabel="sharpness", title="template sharpness")
    moved = [(k, s["mean_warp_mm"]) for k, s in enumerate(summary) if s["mean_warp_mm"]]
    warp.plot([k for k, _ in moved], [m for _, m in moved], "o-")
    warp.set(xlabel="iteration", ylabel="mm", title="mean warp to the template")
    timed = [(k, s["seconds"]) for k, s in enumerate(summary) if s.get("seconds") is not None]
    seconds.bar([k for k, _ in timed], [t for _, t in timed])
    seconds.set(xlabel="iteration (0: initial)", ylabel="s", title="time per iteration")
    for ax in (sharp, warp, seconds):
        ax.xaxis.get_major_locator().set_params(integer=True)
    write_file(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100), num_threads=1)
