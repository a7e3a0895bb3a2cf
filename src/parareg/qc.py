"""Quality-control pictures of a registration: fixed against warped, and the Jacobian determinant.

Used by ``--qc`` and by the benchmark reports. matplotlib is an optional
dependency (``pip install 'parareg[bench]'``); it is imported inside the
functions, and only its object-oriented Agg API is used (a
``matplotlib.figure.Figure`` with its own ``FigureCanvasAgg``, never
``pyplot``), so pictures can be drawn headless and from several threads.

Display conventions
-------------------
orientation
    Arrays are reoriented to the closest RAS+ axes of their ``vox2world``
    (as :func:`nibabel.as_closest_canonical` would) before slicing, and every
    plane is drawn with its first axis to the right and its second upwards:
    axial (R right, A up), coronal (R right, S up), sagittal (A right, S up).
    This is the neurological convention: the patient's right is on the right
    of the picture. A 2D image is drawn with its first world axis to the right.
    Pixels keep their physical aspect ratio (voxel sizes from ``vox2world``).
intensities
    Each image is windowed by its own 1st and 99th percentiles over the whole
    grid (minimum and maximum when those coincide).
Jacobian determinant
    Linear diverging colour map (blue below 1, white at 1, red above), values
    clipped to ``[0, 2]``; folding voxels (det <= 0) are painted bright green.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .image import Image, as_image, check_array, check_matrix
from .io.outputs import staging_in, write_file

__all__ = ["checkerboard", "jacobian_figure", "montage_figure", "qc_figure", "qc_summary"]

_INSTALL_HINT = "pip install 'parareg[bench]' (or pip install matplotlib)"
#: percentiles that window each image's intensities to black ... white
_WINDOW_PERCENTILES = (1.0, 99.0)
#: a pixel is an edge when its Sobel magnitude reaches this percentile of the non-zero ones
_EDGE_PERCENTILE = 85.0
_EDGE_RGB = (1.0, 0.25, 0.0)
_FOLD_COLOUR = "#39ff14"
_JACOBIAN_CMAP = "RdBu_r"
_JACOBIAN_RANGE = (0.0, 2.0)
#: largest world-coordinate difference (mm) between fixed's and warped's vox2world
_GRID_ATOL_MM = 1e-3
_PANEL_INCHES = 2.6
#: (plane, RAS axis held fixed, horizontal RAS axis, vertical RAS axis)
_PLANES_3D = (("axial", 2, 0, 1), ("coronal", 1, 0, 2), ("sagittal", 0, 1, 2))
_VOXEL_LETTERS = "ijk"


# --- checkerboard --------------------------------------------------------------------------


def _check_squares(squares) -> int:
    if isinstance(squares, bool) or not isinstance(squares, (int, np.integer)) or squares < 2:
        raise ValueError(f"squares must be an integer >= 2, got {squares!r}")
    return int(squares)


def _tile_parity(shape: tuple[int, ...], squares: int) -> np.ndarray:
    """True on the tiles taken from ``fixed``: those whose tile indices sum to an even number."""
    total = np.zeros((1,) * len(shape), dtype=np.intp)
    for axis, n in enumerate(shape):
        tiles = min(squares, n)                       # at most one tile per voxel
        index = (np.arange(n) * tiles) // n            # tile of each voxel along this axis
        total = total + index.reshape([n if a == axis else 1 for a in range(len(shape))])
    return total % 2 == 0


def checkerboard(fixed, warped, *, squares=8) -> np.ndarray:
    """Interleave two images on the same grid in a checkerboard of tiles.

    Parameters
    ----------
    fixed, warped : ndarray, shape (M, N[, P])
        Two images on one grid (typically one plane of each, already windowed).
    squares : int, optional
        Tiles along each axis (at most one per voxel on short axes); tile
        boundaries fall at ``floor(t * n / squares)``.

    Returns
    -------
    ndarray, shape (M, N[, P])
        ``fixed`` on the tiles whose indices sum to an even number (the corner
        tile at index 0 included), ``warped`` on the others.

    Examples
    --------
    >>> import numpy as np
    >>> checkerboard(np.zeros((4, 4)), np.ones((4, 4)), squares=2)
    array([[0., 0., 1., 1.],
           [0., 0., 1., 1.],
           [1., 1., 0., 0.],
           [1., 1., 0., 0.]])
    """
    squares = _check_squares(squares)
    f = np.asarray(fixed.data if isinstance(fixed, Image) else fixed)
    w = np.asarray(warped.data if isinstance(warped, Image) else warped)
    for name, a in (("fixed", f), ("warped", w)):
        if a.ndim not in (2, 3):
            raise ValueError(f"{name} must be a 2D or 3D array, got shape {a.shape}")
    if f.shape != w.shape:
        raise ValueError(f"fixed and warped must have the same shape, got fixed {f.shape} "
                         f"and warped {w.shape}")
    return np.where(_tile_parity(f.shape, squares), f, w)


# --- inputs --------------------------------------------------------------------------------


def _split(obj, *, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The checked data of an Image, path or array, and its vox2world (None for an array)."""
    if isinstance(obj, (Image, str, os.PathLike)):
        image = as_image(obj, name=name)
        return image.data, image.vox2world
    return check_array(obj, name=name), None


def _check_inputs(fixed, warped, jacobian):
    """Arrays of fixed, warped and jacobian on one grid, and the grid's vox2world."""
    f, f_v2w = _split(fixed, name="fixed")
    w, w_v2w = _split(warped, name="warped")
    if f.shape != w.shape:
        raise ValueError(f"fixed and warped must be on the same grid, got fixed shape {f.shape} "
                         f"and warped shape {w.shape}; resample the moving image onto fixed's "
                         "grid first (parareg.resample(moving, fixed, ...))")
    if f_v2w is not None and w_v2w is not None:
        corners = _grid_corners(f.shape)
        gap = np.abs(corners @ (f_v2w - w_v2w).T).max()
        if gap > _GRID_ATOL_MM:
            raise ValueError(f"fixed and warped have the same shape but different vox2world "
                             f"(grid corners up to {gap:.3g} mm apart); resample the moving "
                             "image onto fixed's grid first (parareg.resample(moving, fixed, ...))")
    vox2world = f_v2w if f_v2w is not None else w_v2w
    if vox2world is None:
        vox2world = np.eye(f.ndim + 1)
    jac = None
    if jacobian is not None:
        jac, _ = _split(jacobian, name="jacobian")
        if jac.shape != f.shape:
            raise ValueError(f"jacobian must be on fixed's grid, got jacobian shape {jac.shape} "
                             f"and fixed shape {f.shape}")
    return f, w, jac, vox2world


def _grid_corners(shape) -> np.ndarray:
    """Homogeneous voxel coordinates of the 2**ndim corners of a grid, shape (2**ndim, ndim+1)."""
    axes = [(0.0, n - 1.0) for n in shape]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(shape))
    return np.concatenate([mesh, np.ones((len(mesh), 1))], axis=1)


def _check_path(path) -> tuple[Path, str]:
    """``path`` as a Path whose folder exists, and the picture format its suffix names.

    Imports matplotlib (to know its formats), so a missing install is reported first.
    """
    _, FigureCanvasAgg, _ = _import_matplotlib()
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path: the folder {str(path.parent)!r} does not exist")
    fmt = path.suffix[1:].lower() or "png"
    supported = FigureCanvasAgg.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(f"path must end in one of {sorted('.' + s for s in supported)}, "
                         f"got {str(path)!r}")
    return path, fmt


def _check_dpi(dpi) -> float:
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float, np.number)) or not dpi > 0:
        raise ValueError(f"dpi must be a positive number, got {dpi!r}")
    return float(dpi)


def _import_matplotlib():
    """``(Figure, FigureCanvasAgg, ListedColormap)``, or an ImportError saying what to install."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.colors import ListedColormap
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"parareg.qc draws with matplotlib, which is not installed: "
                          f"{_INSTALL_HINT}") from exc
    return Figure, FigureCanvasAgg, ListedColormap


def _new_figure(*, figsize, dpi: float):
    """A headless figure with its own Agg canvas, and matplotlib's ListedColormap."""
    Figure, FigureCanvasAgg, ListedColormap = _import_matplotlib()
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, ListedColormap


def _save(fig, path: Path, fmt: str, dpi: float, outputs=None) -> Path:
    def write(tmp):
        fig.savefig(tmp, format=fmt, dpi=dpi)

    if staging_in(outputs) is not None:
        return outputs.add(path, write)
    return write_file(path, write, num_threads=1)


# --- display geometry ----------------------------------------------------------------------


def _window(data: np.ndarray) -> np.ndarray:
    """Intensities mapped to [0, 1] by the 1st..99th percentiles (min..max if those coincide)."""
    data = np.asarray(data, dtype=np.float32)
    lo, hi = np.percentile(data, _WINDOW_PERCENTILES)
    if not hi > lo:
        lo, hi = float(data.min()), float(data.max())
    if not hi > lo:
        return np.zeros(data.shape, dtype=np.float32)
    return np.clip((data - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _ras_index(index, shape, ornt) -> list[int]:
    """Where voxel ``index`` of an array lands after ``apply_orientation(array, ornt)``."""
    out = [0] * len(shape)
    for axis, (new_axis, flip) in enumerate(ornt):
        out[int(new_axis)] = int(index[axis]) if flip > 0 else shape[axis] - 1 - int(index[axis])
    return out


def _check_slices(slices, shape) -> tuple[int, ...]:
    if slices is None:
        return tuple(n // 2 for n in shape)
    if len(shape) != 3:
        raise ValueError(f"slices applies to 3D images only, got a 2D image of shape {shape}")
    try:
        index = tuple(int(s) for s in slices)
    except (TypeError, ValueError):
        raise ValueError(f"slices must be three voxel indices (i, j, k), got {slices!r}") from None
    if len(index) != 3 or any(not 0 <= s < n for s, n in zip(index, shape)):
        raise ValueError(f"slices must be three voxel indices (i, j, k) inside the grid "
                         f"{shape}, got {slices!r}")
    return index


def _display_planes(arrays, vox2world, slices=None):
    """Cut arrays on one grid into the planes that are drawn.

    Returns a list of ``(row label, [plane of each array], aspect)``: each
    plane has axes (horizontal, vertical) after reorientation to RAS+, and
    ``aspect`` is the vertical over horizontal voxel size, for ``imshow``.
    A 3D grid gives the axial, coronal and sagittal planes through voxel
    ``slices`` (the centre voxel ``n // 2`` by default); a 2D grid gives itself.
    """
    from nibabel.orientations import apply_orientation, io_orientation

    shape = arrays[0].shape
    ndim = len(shape)
    index = _check_slices(slices, shape)
    matrix = check_matrix(vox2world, ndim, name="vox2world")
    ornt = io_orientation(matrix)
    spacing = np.empty(ndim)
    spacing[ornt[:, 0].astype(int)] = np.sqrt((matrix[:ndim, :ndim] ** 2).sum(axis=0))
    ras = [apply_orientation(a, ornt) for a in arrays]
    if ndim == 2:
        return [("2D", ras, spacing[1] / spacing[0])]
    centre = _ras_index(index, shape, ornt)
    planes = []
    for name, held, horizontal, vertical in _PLANES_3D:
        voxel_axis = int(np.flatnonzero(ornt[:, 0] == held)[0])
        label = f"{name}\n{_VOXEL_LETTERS[voxel_axis]} = {index[voxel_axis]}"
        cut = [np.take(a, centre[held], axis=held) for a in ras]   # axes stay in RAS order
        planes.append((label, cut, spacing[vertical] / spacing[horizontal]))
    return planes


def _show(ax, plane, aspect, **kwargs):
    """``imshow`` a (horizontal, vertical[, rgb]) plane with its vertical axis upwards."""
    return ax.imshow(np.swapaxes(plane, 0, 1), origin="lower", aspect=aspect,
                     interpolation="nearest", **kwargs)


def _edges(plane: np.ndarray) -> np.ndarray:
    """Edges of a windowed plane: Sobel magnitude at or above its 85th non-zero percentile."""
    from scipy import ndimage

    magnitude = np.hypot(ndimage.sobel(plane, axis=0), ndimage.sobel(plane, axis=1))
    nonzero = magnitude[magnitude > 0]
    if nonzero.size == 0:
        return np.zeros(plane.shape, dtype=bool)
    return magnitude >= np.percentile(nonzero, _EDGE_PERCENTILE)


def _edge_overlay(fixed_plane, warped_plane) -> np.ndarray:
    rgb = np.repeat(warped_plane[..., None], 3, axis=-1)
    rgb[_edges(fixed_plane)] = _EDGE_RGB
    return rgb


def _draw_jacobian(ax, plane, aspect, listed_colormap):
    """The determinant map on ``ax`` with folds painted over; the mappable for a colorbar."""
    vmin, vmax = _JACOBIAN_RANGE
    image = _show(ax, plane, aspect, cmap=_JACOBIAN_CMAP, vmin=vmin, vmax=vmax)
    folds = plane <= 0
    if folds.any():
        _show(ax, np.ma.masked_where(~folds, np.ones(plane.shape)), aspect,
              cmap=listed_colormap([_FOLD_COLOUR]), vmin=0.0, vmax=1.0)
    return image


def _plain(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _jacobian_text(jac: np.ndarray) -> str:
    folds = int(np.count_nonzero(jac <= 0))
    return (f"det J in [{float(jac.min()):.3g}, {float(jac.max()):.3g}], "
            f"{folds} folded voxels ({100.0 * folds / jac.size:.2f} %)")


def _colorbar(fig, image, axes) -> None:
    bar = fig.colorbar(image, ax=axes, shrink=0.8, extend="both")
    lo, hi = _JACOBIAN_RANGE
    bar.set_label(f"det J in [{lo:g}, {hi:g}]; det <= 0 green")


# --- public figures ------------------------------------------------------------------------


def qc_summary(fixed, warped, *, jacobian=None) -> str:
    """One line of numbers for a QC picture: global NCC, and det J range and folds.

    Parameters
    ----------
    fixed, warped : Image, path or ndarray, shape (M, N[, P])
        The fixed image and the moving image resampled onto its grid.
    jacobian : Image or ndarray, shape (M, N[, P]), optional
        Jacobian determinant of the transform on the same grid.

    Returns
    -------
    str
        ``"NCC(fixed, warped) = ..."``, the normalised cross-correlation over
        the whole grid (``n/a`` for a constant image), then, with ``jacobian``,
        its range and the number of folding voxels (det <= 0).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(12.0).reshape(3, 4)
    >>> qc_summary(x, 2 * x + 1, jacobian=np.ones((3, 4)))
    'NCC(fixed, warped) = 1.0000 | det J in [1, 1], 0 folded voxels (0.00 %)'
    """
    f, w, jac, _ = _check_inputs(fixed, warped, jacobian)
    return _summary(f, w, jac)


def _summary(f: np.ndarray, w: np.ndarray, jac: np.ndarray | None) -> str:
    fc = f.astype(np.float64) - f.mean(dtype=np.float64)
    wc = w.astype(np.float64) - w.mean(dtype=np.float64)
    denominator = np.sqrt(np.vdot(fc, fc) * np.vdot(wc, wc))
    ncc = f"{np.vdot(fc, wc) / denominator:.4f}" if denominator > 0 else "n/a"
    parts = [f"NCC(fixed, warped) = {ncc}"]
    if jac is not None:
        parts.append(_jacobian_text(jac))
    return " | ".join(parts)


def qc_figure(fixed, warped, path, *, jacobian=None, title=None, slices=None, squares=8,
              dpi=100, outputs=None) -> Path:
    """Draw fixed against warped (and the Jacobian determinant) and write the picture.

    One row per plane (axial, coronal, sagittal for 3D; one for 2D), with
    columns: fixed, warped, their checkerboard, the edges of fixed drawn in
    orange over warped, and, given ``jacobian``, its determinant map with
    folds in green and a colour bar. See the module notes for orientation
    and windowing.

    Parameters
    ----------
    fixed : Image, path or ndarray, shape (M, N[, P])
        Its ``vox2world`` orients the display; an array is drawn as stored
        (its voxel axes taken as RAS+, isotropic).
    warped : Image, path or ndarray, shape (M, N[, P])
        The moving image resampled onto fixed's grid.
    path : str or path-like
        Picture to write, atomically; its suffix names the format (``.png``
        when it has none). The folder must exist.
    jacobian : Image or ndarray, shape (M, N[, P]), optional
        Jacobian determinant on fixed's grid (:func:`parareg.fields.jacobian_determinant`).
    title : str, optional
        First line of the figure title (say, the pair and NCC before/after);
        the :func:`qc_summary` line follows it.
    slices : tuple of 3 int, optional
        Voxel ``(i, j, k)`` of fixed's grid that the three planes pass
        through; the centre voxel ``n // 2`` by default. 3D only.
    squares : int, optional
        Checkerboard tiles along each axis of a plane.
    dpi : float, optional
        Pixels per inch (a panel is 2.6 inches square).
    outputs : parareg.io.OutputSet, optional
        Stage the picture in this output set (written with the rest of the
        set) instead of writing it at once.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        Inputs that are not 2D/3D, fixed and warped (or jacobian) on different
        grids, bad ``slices``, ``squares``, ``dpi`` or picture format.
    FileNotFoundError
        The folder of ``path`` does not exist.
    ImportError
        matplotlib is not installed.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> fixed = np.random.default_rng(0).random((40, 50))
    >>> folder = tempfile.mkdtemp()
    >>> qc_figure(fixed, np.roll(fixed, 2, axis=0), os.path.join(folder, "qc.png")).name
    'qc.png'
    """
    f, w, jac, vox2world = _check_inputs(fixed, warped, jacobian)
    squares = _check_squares(squares)
    dpi = _check_dpi(dpi)
    path, fmt = _check_path(path)
    arrays = [_window(f), _window(w)] + ([jac] if jac is not None else [])
    planes = _display_planes(arrays, vox2world, slices)
    summary = _summary(f, w, jac)

    ncols = 4 + (jac is not None)
    figsize = (ncols * _PANEL_INCHES + (1.0 if jac is not None else 0.0),
               len(planes) * _PANEL_INCHES + 0.7)
    fig, listed_colormap = _new_figure(figsize=figsize, dpi=dpi)
    axes = fig.subplots(len(planes), ncols, squeeze=False)
    headings = ["fixed", "warped", f"checkerboard ({squares}x{squares})",
                "fixed edges on warped", "Jacobian determinant"]
    for col in range(ncols):
        axes[0, col].set_title(headings[col], fontsize="medium")
    jacobian_image = None
    for row, (label, cut, aspect) in enumerate(planes):
        fixed_plane, warped_plane = cut[0], cut[1]
        for ax in axes[row]:
            _plain(ax)
        axes[row, 0].set_ylabel(label)
        gray = dict(cmap="gray", vmin=0.0, vmax=1.0)
        _show(axes[row, 0], fixed_plane, aspect, **gray)
        _show(axes[row, 1], warped_plane, aspect, **gray)
        _show(axes[row, 2], checkerboard(fixed_plane, warped_plane, squares=squares), aspect,
              **gray)
        _show(axes[row, 3], _edge_overlay(fixed_plane, warped_plane), aspect)
        if jac is not None:
            jacobian_image = _draw_jacobian(axes[row, 4], cut[2], aspect, listed_colormap)
    if jacobian_image is not None:
        _colorbar(fig, jacobian_image, list(axes[:, 4]))
    fig.suptitle(f"{title}\n{summary}" if title else summary, fontsize="medium")
    return _save(fig, path, fmt, dpi, outputs)


def jacobian_figure(jacobian, path, *, vox2world=None, title=None, slices=None,
                    dpi=100) -> Path:
    """Draw a Jacobian-determinant map on its own and write the picture.

    One panel per plane (axial, coronal, sagittal for 3D; one for 2D), with
    the colour map of :func:`qc_figure`: clipped to ``[0, 2]``, white at 1,
    folds (det <= 0) in green.

    Parameters
    ----------
    jacobian : Image, path or ndarray, shape (M, N[, P])
        Jacobian determinant (:func:`parareg.fields.jacobian_determinant`).
    path : str or path-like
        Picture to write, atomically; the folder must exist.
    vox2world : ndarray, shape (ndim + 1, ndim + 1), optional
        Orients the display. By default that of an Image ``jacobian``, and
        ``np.eye(ndim + 1)`` for an array (drawn as stored).
    title : str, optional
        First line of the title; the range and fold count follow it.
    slices : tuple of 3 int, optional
        Voxel ``(i, j, k)`` the planes pass through (3D only); the centre by default.
    dpi : float, optional
        Pixels per inch.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> jac = np.ones((30, 40)); jac[10:15, 10:15] = -0.2
    >>> jacobian_figure(jac, os.path.join(tempfile.mkdtemp(), "jac.png")).suffix
    '.png'
    """
    jac, own = _split(jacobian, name="jacobian")
    if vox2world is None:
        vox2world = own if own is not None else np.eye(jac.ndim + 1)
    vox2world = check_matrix(vox2world, jac.ndim, name="vox2world")
    dpi = _check_dpi(dpi)
    path, fmt = _check_path(path)
    planes = _display_planes([jac], vox2world, slices)

    figsize = (len(planes) * _PANEL_INCHES + 1.0, _PANEL_INCHES + 1.2)
    fig, listed_colormap = _new_figure(figsize=figsize, dpi=dpi)
    axes = fig.subplots(1, len(planes), squeeze=False)[0]
    image = None
    for ax, (label, cut, aspect) in zip(axes, planes):
        _plain(ax)
        ax.set_title(label.replace("\n", ", "), fontsize="medium")
        image = _draw_jacobian(ax, cut[0], aspect, listed_colormap)
    _colorbar(fig, image, list(axes))
    summary = _jacobian_text(jac)
    fig.suptitle(f"{title}\n{summary}" if title else summary, fontsize="medium")
    return _save(fig, path, fmt, dpi)


def montage_figure(images, path, *, labels=None, title=None, slices=None, dpi=100,
                   outputs=None) -> Path:
    """Draw several images of one grid side by side (e.g. a template and the subjects
    warped to it) and write the picture.

    One column per image, one row per plane (axial, coronal, sagittal for 3D;
    one for 2D); each image windowed by its own percentiles (see the module notes).

    Parameters
    ----------
    images : sequence of Image or ndarray, shape (M, N[, P])
        On one grid; the first one's ``vox2world`` orients the display.
    path : str or path-like
        Picture to write, atomically; the folder must exist.
    labels : sequence of str, optional
        Column headings, one per image.
    title : str, optional
    slices : tuple of 3 int, optional
        Voxel ``(i, j, k)`` the planes pass through (3D only); the centre by default.
    dpi : float, optional
    outputs : parareg.io.OutputSet, optional
        Stage the picture in this output set instead of writing it at once.

    Returns
    -------
    Path

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> a = np.random.default_rng(0).random((30, 40))
    >>> montage_figure([a, a[::-1]], os.path.join(tempfile.mkdtemp(), "m.png"),
    ...                labels=["a", "flipped"]).suffix
    '.png'
    """
    pairs = [_split(image, name=f"images[{i}]") for i, image in enumerate(images)]
    if not pairs:
        raise ValueError("images is empty; give at least one image")
    shape = pairs[0][0].shape
    for i, (data, _) in enumerate(pairs):
        if data.shape != shape or data.ndim not in (2, 3):
            raise ValueError(f"images[{i}] has shape {data.shape}; every image must be 2D or "
                             f"3D on the grid of images[0], shape {shape}")
    if labels is not None and len(labels) != len(pairs):
        raise ValueError(f"labels has {len(labels)} entries for {len(pairs)} images")
    vox2world = pairs[0][1] if pairs[0][1] is not None else np.eye(len(shape) + 1)
    dpi = _check_dpi(dpi)
    path, fmt = _check_path(path)
    planes = _display_planes([_window(data) for data, _ in pairs], vox2world, slices)
    figsize = (len(pairs) * _PANEL_INCHES * 0.8, len(planes) * _PANEL_INCHES * 0.8 + 0.6)
    fig, _ = _new_figure(figsize=figsize, dpi=dpi)
    axes = fig.subplots(len(planes), len(pairs), squeeze=False)
    for row, (label, cut, aspect) in enumerate(planes):
        axes[row, 0].set_ylabel(label)
        for col, plane in enumerate(cut):
            _plain(axes[row, col])
            _show(axes[row, col], plane, aspect, cmap="gray", vmin=0.0, vmax=1.0)
    for col in range(len(pairs)):
        if labels is not None:
            axes[0, col].set_title(str(labels[col]), fontsize="small")
    if title:
        fig.suptitle(title, fontsize="medium")
    return _save(fig, path, fmt, dpi, outputs)
