"""The report of a segmentation: per label, how much the atlases agree with the fused map.

No ground truth is needed: for every label of the fused map,
:func:`label_statistics` gives its size, the Dice of each atlas's warped
labels against the fused labels (low where the atlases disagree, i.e. where
the segmentation is uncertain) and the mean posterior inside it.
:func:`plot_label_statistics` draws them (``OUT_report.png`` of
:func:`parareg.population.segment.segment`; matplotlib is optional, without
it no picture is drawn).
"""

from __future__ import annotations

import numpy as np


def _ranks_of(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each voxel's index into ``values`` (sorted, holding every label of ``labels``)."""
    return np.searchsorted(values, labels.ravel()).astype(np.intp)


def label_statistics(fused: np.ndarray, warped_labels, label_values: np.ndarray,
                     posteriors: np.ndarray | None = None) -> list[dict]:
    """Per non-zero label of ``label_values``: voxels, atlas Dice, mean posterior.

    Parameters
    ----------
    fused : ndarray, shape (X, Y[, Z])
        The fused label map.
    warped_labels : sequence of ndarray
        Each atlas's labels on the target grid (the fusion's input).
    label_values : ndarray, shape (L,)
        Every label of the inputs, ascending (``FusionResult.label_values``).
    posteriors : ndarray, shape (X, Y[, Z], L), optional
        The fusion's posteriors.

    Returns
    -------
    list of dict
        ``{"label", "voxels", "atlas_dice": [one per atlas], "posterior": mean
        posterior of the label over the voxels fused to it (None without
        posteriors or voxels)}``, in label order; background (0) left out.

    Examples
    --------
    >>> fused = np.array([[1, 1, 2, 0]])
    >>> stats = label_statistics(fused, [fused, np.array([[1, 2, 2, 0]])], np.array([0, 1, 2]))
    >>> [(s["label"], s["voxels"], [round(d, 3) for d in s["atlas_dice"]]) for s in stats]
    [(1, 2, [1.0, 0.667]), (2, 1, [1.0, 0.667])]
    """
    values = np.asarray(label_values)
    n = len(values)
    fused_ranks = _ranks_of(np.asarray(fused), values)
    fused_count = np.bincount(fused_ranks, minlength=n)
    dice = []
    for atlas in warped_labels:
        ranks = _ranks_of(np.asarray(atlas), values)
        both = np.bincount(fused_ranks[fused_ranks == ranks], minlength=n)
        total = fused_count + np.bincount(ranks, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            dice.append(np.where(total > 0, 2.0 * both / np.maximum(total, 1), np.nan))
    dice = np.array(dice).reshape(len(dice), n)
    mean_posterior = None
    if posteriors is not None:
        flat = posteriors.reshape(-1, n)
        picked = flat[np.arange(flat.shape[0]), fused_ranks].astype(np.float64)
        sums = np.bincount(fused_ranks, weights=picked, minlength=n)
        mean_posterior = sums / np.maximum(fused_count, 1)
    stats = []
    for r, value in enumerate(values.tolist()):
        if value == 0:
            continue
        posterior = None
        if mean_posterior is not None and fused_count[r] > 0:
            posterior = float(mean_posterior[r])
        stats.append({"label": value, "voxels": int(fused_count[r]),
                      "atlas_dice": [float(d) for d in dice[:, r]], "posterior": posterior})
    return stats


def can_plot() -> bool:
    """Whether matplotlib (optional) is installed, so the report can be drawn."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def plot_label_statistics(stats: list[dict], path, *, title: str = "",
                          outputs=None) -> bool:
    """Draw :func:`label_statistics` into ``path`` (PNG): per label, the atlases' Dice
    against the fused map (median, range) and the mean posterior. Returns False (and
    draws nothing) without matplotlib (see :func:`can_plot`); ``outputs`` stages the file
    in an OutputSet."""
    if not can_plot():
        return False
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from ..io.outputs import write_file

    shown = [s for s in stats if s["voxels"] > 0]
    fig = Figure(figsize=(max(6.0, 0.1 * len(shown) + 2.0), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(shown))
    dice = [np.array(s["atlas_dice"], dtype=np.float64) for s in shown]
    low = [np.nanmin(d) if np.isfinite(d).any() else np.nan for d in dice]
    high = [np.nanmax(d) if np.isfinite(d).any() else np.nan for d in dice]
    middle = [np.nanmedian(d) if np.isfinite(d).any() else np.nan for d in dice]
    ax.vlines(x, low, high, color="0.6", linewidth=1.5, label="atlas Dice vs fused: range")
    ax.plot(x, middle, "o", markersize=3, color="C0", label="atlas Dice vs fused: median")
    if any(s["posterior"] is not None for s in shown):
        ax.plot(x, [np.nan if s["posterior"] is None else s["posterior"] for s in shown],
                "_", markersize=6, color="C3", label="mean posterior")
    ax.set_xticks(x)
    ax.set_xticklabels([str(s["label"]) for s in shown], rotation=90, fontsize=5)
    ax.set_xlabel("label")
    ax.set_ylim(0, 1.02)
    ax.set_title(title or "agreement of the atlases with the fused labels", fontsize=9)
    ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()

    def write(tmp):
        fig.savefig(tmp, format="png")

    if outputs is not None:
        outputs.add(path, write)
    else:
        write_file(path, write, num_threads=1)
    return True
