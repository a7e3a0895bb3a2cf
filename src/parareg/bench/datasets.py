"""Subjects (an image and its label map) and the pairs of a study, checked before any work.

Images and label maps are paired by **subject ID**, never by position alone.
A file's subject ID is its name without the image extension, up to the first
underscore (:func:`subject_id`): ``IXI012-HH-1211-T1_ds.nii.gz`` and
``IXI012-HH-1211-T1_ds_DLMUSE.nii.gz`` are both ``IXI012-HH-1211-T1``;
``OASIS-TRT-20-1_slice118`` and ``OASIS-TRT-20-1_DKT31_CMA_labels_slice118``
both ``OASIS-TRT-20-1``; BIDS names (``sub-01_T1w`` / ``sub-01_dseg``) give
``sub-01``; a name without an underscore is its own ID. Every image needs
exactly one label map with its ID, or the study stops and names the files that
do not match. For names that this rule does not pair, list the pairs in a CSV
(:func:`read_pairs_csv`). A subject is *named* (in ``results.csv``) after its
image file without the extension.
"""

from __future__ import annotations

import csv
import glob
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PAIR_MODES", "Pair", "Subject", "check_subjects", "find_subjects", "make_pairs",
           "read_pairs_csv", "subject_id", "subject_name"]

#: how all pairs are formed: every (fixed, moving) order, or each unordered pair once
PAIR_MODES = ("ordered", "unordered")
#: largest difference (mm) between a label map's and its image's vox2world entries
GRID_ATOL_MM = 1e-3
_SUFFIXES = (".nii.gz", ".nii", ".mgz", ".mgh", ".img", ".hdr")
_PAIR_COLUMNS = ("fixed_image", "fixed_labels", "moving_image", "moving_labels")


@dataclass(frozen=True)
class Subject:
    """An image and its label map (same grid)."""

    name: str
    image: Path
    labels: Path


@dataclass(frozen=True)
class Pair:
    """One registration to run: ``moving`` onto ``fixed``."""

    fixed: Subject
    moving: Subject

    @property
    def key(self) -> tuple[str, str]:
        """``(fixed name, moving name)``, the pair's part of a result's key."""
        return (self.fixed.name, self.moving.name)


def subject_name(path) -> str:
    """A file name without its image extension.

    >>> subject_name("/data/OASIS-TRT-20-1_slice118.nii.gz")
    'OASIS-TRT-20-1_slice118'
    """
    name = Path(path).name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def subject_id(path) -> str:
    """The subject ID that pairs an image with its label map: the name up to the first ``_``.

    >>> subject_id("/data/t1/IXI012-HH-1211-T1_ds.nii.gz")
    'IXI012-HH-1211-T1'
    >>> subject_id("/data/labels/IXI012-HH-1211-T1_ds_DLMUSE.nii.gz")
    'IXI012-HH-1211-T1'
    >>> subject_id("brain01.nii")
    'brain01'
    """
    return subject_name(path).split("_", 1)[0]


def _by_id(paths, what: str) -> dict:
    """``{subject ID: path}``; two files with one ID is an error naming both."""
    found = {}
    for path in paths:
        ident = subject_id(path)
        if ident in found:
            raise ValueError(
                f"{what}: {found[ident].name!r} and {path.name!r} have the same subject ID "
                f"{ident!r} (the name up to the first '_'), so images cannot be paired with "
                "label maps by name; rename the files or list the pairs in a pairs CSV")
        found[ident] = path
    return found


def _expand(pattern, what: str) -> list[Path]:
    """Files matching a glob pattern (or a list of paths), sorted."""
    if pattern is None:
        return []
    if isinstance(pattern, (str, os.PathLike)):
        text = os.path.expanduser(str(pattern))
        if os.path.isdir(text):
            raise ValueError(f"{what}: {text!r} is a folder; give a pattern such as "
                             f"{os.path.join(text, '*.nii.gz')!r}")
        paths = [Path(p) for p in glob.glob(text, recursive=True) if os.path.isfile(p)]
    else:
        paths = [Path(p) for p in pattern]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{what}: no such file(s): {', '.join(missing[:5])}")
    return sorted(paths, key=str)


def find_subjects(images, labels) -> list[Subject]:
    """Pair images with label maps by subject ID (:func:`subject_id`).

    Parameters
    ----------
    images, labels : str, path-like or sequence of paths
        Glob patterns (``**`` allowed) or explicit lists of files.

    Returns
    -------
    list of Subject
        Sorted by image path.

    Raises
    ------
    FileNotFoundError
        When ``images`` matches no file.
    ValueError
        When ``labels`` is missing or matches no file, an image has no label
        map with its subject ID (or a label map no image), two files share a
        subject ID, two images share a name, or fewer than two subjects are found.
    """
    image_paths = _expand(images, "images")
    if not image_paths:
        raise FileNotFoundError(f"images: {str(images)!r} matches no file")
    if labels is None:
        raise ValueError("labels: every image needs a label map; give labels (a glob "
                         "pattern or a list of files), or a pairs CSV")
    label_paths = _expand(labels, "labels")
    if not label_paths:
        raise ValueError(f"labels: {str(labels)!r} matches no file; every image needs a "
                         "label map")
    by_image, by_labels = _by_id(image_paths, "images"), _by_id(label_paths, "labels")
    lonely = [f"image {by_image[i].name!r} (ID {i!r})" for i in by_image if i not in by_labels]
    lonely += [f"label map {by_labels[i].name!r} (ID {i!r})" for i in by_labels
               if i not in by_image]
    if lonely:
        raise ValueError(
            f"{len(image_paths)} image(s) and {len(label_paths)} label map(s) do not pair up by "
            f"subject ID (the file name up to the first '_'): no partner for "
            f"{', '.join(lonely[:4])}{' ...' if len(lonely) > 4 else ''}; name each label map "
            "after its image's subject (sub-01_T1w.nii.gz / sub-01_labels.nii.gz), or list the "
            "pairs in a CSV")
    subjects = [Subject(subject_name(i), i, by_labels[subject_id(i)]) for i in image_paths]
    _check_unique(subjects)
    if len(subjects) < 2:
        raise ValueError(f"a study needs at least 2 subjects, found {len(subjects)}")
    return subjects


def _check_unique(subjects):
    seen = {}
    for s in subjects:
        if s.name in seen and seen[s.name] != s:
            raise ValueError(f"two subjects are named {s.name!r} ({seen[s.name].image} and "
                             f"{s.image}); rename the files or list pairs in a CSV with "
                             "fixed_name/moving_name columns")
        seen[s.name] = s


def read_pairs_csv(path) -> list[Pair]:
    """Pairs from a CSV with columns ``fixed_image, fixed_labels, moving_image, moving_labels``
    (and optionally ``fixed_name, moving_name``); relative paths are taken from the CSV's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pairs: no such file: {str(path)!r}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _PAIR_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"pairs: {str(path)!r} lacks column(s) {', '.join(missing)}; "
                             f"it needs {', '.join(_PAIR_COLUMNS)}")
        rows = [(reader.line_num, row) for row in reader]
    if not rows:
        raise ValueError(f"pairs: {str(path)!r} lists no pair")
    for number, (line, row) in enumerate(rows, start=1):
        empty = [c for c in _PAIR_COLUMNS if not (row.get(c) or "").strip()]
        if empty:
            raise ValueError(f"pairs: row {number} (line {line}) of {str(path)!r} has no "
                             f"{' and no '.join(repr(c) for c in empty)}; every row needs a "
                             f"path in each of {', '.join(_PAIR_COLUMNS)}")

    def subject(row, role):
        image = path.parent / row[f"{role}_image"].strip()
        labels = path.parent / row[f"{role}_labels"].strip()
        name = (row.get(f"{role}_name") or "").strip() or subject_name(image)
        return Subject(name, image, labels)

    pairs = [Pair(subject(r, "fixed"), subject(r, "moving")) for _, r in rows]
    subjects = [s for p in pairs for s in (p.fixed, p.moving)]
    missing = sorted({str(f) for s in subjects for f in (s.image, s.labels) if not f.is_file()})
    if missing:
        raise FileNotFoundError(f"pairs: no such file(s): {', '.join(missing[:5])}")
    _check_unique(subjects)
    keys = [p.key for p in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"pairs: {str(path)!r} lists a (fixed, moving) pair twice")
    return pairs


def make_pairs(subjects, *, mode: str = "ordered", n=None, seed: int = 0) -> list[Pair]:
    """All pairs of ``subjects``, or a seeded sample of ``n`` of them (in their original order).

    Parameters
    ----------
    subjects : sequence of Subject
    mode : {"ordered", "unordered"}
        ``"ordered"``: every (fixed, moving) with fixed != moving (n (n - 1)
        pairs); ``"unordered"``: each pair once, the earlier subject fixed.
    n : int, optional
        Number of pairs to draw without replacement.
    seed : int

    Examples
    --------
    >>> s = [Subject(c, Path(c), Path(c)) for c in "abc"]
    >>> [p.key for p in make_pairs(s, mode="unordered")]
    [('a', 'b'), ('a', 'c'), ('b', 'c')]
    >>> len(make_pairs(s)), len(make_pairs(s, n=2, seed=1))
    (6, 2)
    """
    if mode not in PAIR_MODES:
        raise ValueError(f"mode must be one of {list(PAIR_MODES)}, got {mode!r}")
    combine = itertools.permutations if mode == "ordered" else itertools.combinations
    pairs = [Pair(a, b) for a, b in combine(subjects, 2)]
    return sample_pairs(pairs, n=n, seed=seed)


def sample_pairs(pairs, *, n=None, seed: int = 0) -> list:
    """A seeded sample of ``n`` of ``pairs`` without replacement, kept in their order."""
    pairs = list(pairs)
    if n is None:
        return pairs
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the number of pairs must be a positive integer, got {n!r}")
    if n > len(pairs):
        raise ValueError(f"asked for {n} pairs but only {len(pairs)} exist; ask for at most "
                         f"{len(pairs)}")
    pick = np.sort(np.random.default_rng(seed).choice(len(pairs), size=int(n), replace=False))
    return [pairs[i] for i in pick]


def _grid(path, what: str):
    """(shape without singleton axes, vox2world of those axes, header dtype) from a header."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for unreadable files
        raise ValueError(f"{what}: could not read {str(path)!r} as an image: {exc}") from exc
    shape = tuple(img.shape)
    kept = [axis for axis, size in enumerate(shape) if size > 1]
    if len(kept) not in (2, 3) or any(axis >= 3 for axis in kept):
        raise ValueError(f"{what}: {str(path)!r} has shape {shape}; need a 2D or 3D image")
    affine = np.asarray(img.affine, dtype=np.float64)
    return tuple(shape[a] for a in kept), affine[:, kept + [3]], img.get_data_dtype()


def check_subjects(subjects) -> int:
    """Check every image and label map before a study starts; return the dimension (2 or 3).

    Reads headers only (and the voxels of label maps stored as floats, to
    check they hold whole numbers).

    Raises
    ------
    ValueError
        An unreadable file, a label map on another grid than its image (shape
        or voxel-to-world matrix), non-integer labels, or 2D and 3D subjects mixed.
    """
    dims = {}
    for s in subjects:
        shape, vox2world, _ = _grid(s.image, "image")
        lshape, lvox2world, ldtype = _grid(s.labels, "labels")
        if lshape != shape or not np.allclose(lvox2world, vox2world, atol=GRID_ATOL_MM):
            raise ValueError(
                f"labels of {s.name!r} are on another grid than the image: {str(s.labels)!r} "
                f"has shape {lshape} and vox2world {np.round(lvox2world, 3).tolist()}, "
                f"{str(s.image)!r} has shape {shape} and vox2world "
                f"{np.round(vox2world, 3).tolist()}; resample the labels onto the image grid "
                "(nearest neighbour) first")
        if not np.issubdtype(ldtype, np.integer):
            import nibabel as nib

            data = np.asanyarray(nib.load(str(s.labels)).dataobj)
            if not np.all(np.isfinite(data)) or not np.all(data == np.round(data)):
                raise ValueError(f"labels of {s.name!r}: {str(s.labels)!r} holds non-integer "
                                 "values; is it an intensity image?")
        dims[s.name] = len(shape)
    if len(set(dims.values())) > 1:
        two = sorted(n for n, d in dims.items() if d == 2)[:3]
        three = sorted(n for n, d in dims.items() if d == 3)[:3]
        raise ValueError(f"subjects mix 2D ({', '.join(two)}, ...) and 3D ({', '.join(three)}, "
                         "...) images; a study registers images of one dimension")
    return next(iter(dims.values()))
