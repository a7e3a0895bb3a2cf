"""The client side of :func:`parareg.population.register_many` before any work: each job
checked, its settings hashed (inputs' contents, options, extra images), earlier records read.

Each distinct input file is read and fingerprinted once per process while it is unchanged (a
cache keyed by its path, inode, size and modification time), so a workflow that runs batch
after batch on the same images (a template's iterations) does not read them again each time.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .batch_worker import FORMAT, RECORD, label_interpolation

__all__ = ["Inputs", "check_job", "digest", "fingerprint", "read_record"]

#: register() arguments a job may not set: the images are the job's, threads are the batch's
NOT_OPTIONS = ("fixed", "moving", "num_threads")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
#: (resolved path, labels) -> ((size, mtime_ns), (ndim, digest)): files fingerprinted already
_FILES: dict = {}
_FILES_KEPT = 256


def digest(image) -> str:
    """sha256 of an image's grid, dtype and values (what a registration depends on)."""
    h = hashlib.sha256()
    data = np.ascontiguousarray(image.data)
    h.update(f"{data.dtype.str}{data.shape}".encode())
    h.update(np.ascontiguousarray(image.vox2world, dtype=np.float64).tobytes())
    h.update(memoryview(data).cast("B"))
    return h.hexdigest()


def fingerprint(obj, *, name: str, labels: bool = False, image=None) -> tuple[int, str]:
    """``(ndim, digest)`` of an image or image file, read and checked (``name`` in errors;
    ``image``: ``obj`` already read); a file's is kept while its inode, size and mtime
    stay the same, so the next batch on it does not read it again."""
    from ..image import as_image

    if not isinstance(obj, (str, Path)):
        image = as_image(obj, name=name, labels=labels) if image is None else image
        return image.ndim, digest(image)
    path = Path(obj)
    try:
        stat = path.stat()
        key, stamp = (str(path.resolve()), labels), (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    except OSError:  # missing or unreadable: as_image says so
        key = stamp = None
    known = _FILES.get(key)
    if known is not None and known[0] == stamp:
        return known[1]
    image = as_image(obj, name=name, labels=labels) if image is None else image
    value = (image.ndim, digest(image))
    if key is not None:
        while len(_FILES) >= _FILES_KEPT:
            _FILES.pop(next(iter(_FILES)))
        _FILES[key] = (stamp, value)
    return value


class Inputs:
    """The inputs of one batch, each checked and fingerprinted once (see :func:`fingerprint`)."""

    def __init__(self):
        self.seen: dict = {}

    def check(self, obj, *, name: str, labels: bool = False) -> tuple[int, str]:
        from ..image import Image

        key = (str(obj), labels) if not isinstance(obj, Image) else (id(obj), labels)
        if key not in self.seen:
            self.seen[key] = fingerprint(obj, name=name, labels=labels)
        return self.seen[key]


def _value_text(value, inputs: Inputs, where: str):
    """A JSON-able, content-faithful form of an option value (for the settings hash): images
    (also those of a :class:`parareg.Channel`) by their digest."""
    from ..image import Image
    from ..registration.channels import Channel

    if isinstance(value, Image):
        return {"image": digest(value)}
    if isinstance(value, Channel):
        fixed = inputs.check(value.fixed, name=f"{where}: a channel's fixed")[1]
        moving = inputs.check(value.moving, name=f"{where}: a channel's moving")[1]
        return {"channel": [fixed, moving, _value_text(value.weight, inputs, where),
                            value.affine_metric, repr(value.syn_metric)]}
    if isinstance(value, np.ndarray):
        return {"array": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest(),
                "shape": list(value.shape), "dtype": value.dtype.str}
    if isinstance(value, Mapping):
        return {str(k): _value_text(v, inputs, where) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_value_text(v, inputs, where) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def check_job(job, index: int, inputs: Inputs) -> str:
    """Check ``job`` before any work; return its settings hash."""
    from .._options import accepted_options, choice
    from ..registration import register
    from ..registration.pipeline import AFFINE_PIPELINES, SYN_PRESETS

    where = f"job {job.name!r}"
    if not isinstance(job.name, str) or not _NAME_RE.match(job.name):
        raise ValueError(f"jobs[{index}].name must be a file name of letters, digits and ._- "
                         f"(the job's folder), got {job.name!r}")
    options = dict(job.options)
    accepted = accepted_options(register) or []
    for key in options:
        if key in NOT_OPTIONS:
            what = "register_many's task_threads=" if key == "num_threads" else \
                f"the job's own {key}"
            raise ValueError(f"{where}: options has {key!r}, which the batch sets itself: use "
                             f"{what}")
        if key not in accepted:
            takes = [k for k in accepted if k not in NOT_OPTIONS]
            raise ValueError(f"{where}: options has {key!r}, which is not an option of "
                             f"parareg.register here; it takes {takes}")
    if "transform" in options:
        options["transform"] = choice(options["transform"], sorted(AFFINE_PIPELINES),
                                      name=f"{where}: options['transform']")
    if "preset" in options:
        options["preset"] = choice(options["preset"], sorted(SYN_PRESETS),
                                   name=f"{where}: options['preset']")
    fixed_ndim, fixed_digest = inputs.check(job.fixed, name=f"{where}: fixed")
    moving_ndim, moving_digest = inputs.check(job.moving, name=f"{where}: moving")
    if fixed_ndim != moving_ndim:
        raise ValueError(f"{where}: fixed is {fixed_ndim}D but moving is {moving_ndim}D; "
                         "register images of the same dimensionality")
    also = {}
    for key, value in dict(job.also).items():
        if not isinstance(key, str) or not KEY_RE.match(key):
            raise ValueError(f"{where}: also keys must be letters, digits, _ and - (they name "
                             f"Warped_KEY.nii.gz), got {key!r}")
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            raise ValueError(f"{where}: also[{key!r}] must be (image or path, interpolation), "
                             f"got {value!r}")
        image, interpolation = value
        labels = label_interpolation(interpolation)
        ndim, image_digest = inputs.check(image, name=f"{where}: also[{key!r}]", labels=labels)
        if ndim != moving_ndim:
            raise ValueError(f"{where}: also[{key!r}] is {ndim}D but moving is "
                             f"{moving_ndim}D; it must be an image of the moving space")
        also[key] = [image_digest, interpolation]
    settings = {"format": FORMAT, "fixed": fixed_digest, "moving": moving_digest,
                "options": _value_text(options, inputs, where), "also": also,
                "inverse_warped": bool(job.inverse_warped)}
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_record(folder: Path) -> dict | None:
    """The job's record, or ``None`` when it has none (or an unreadable one)."""
    from ..io.outputs import recover

    if not folder.is_dir():
        return None
    recover(folder)  # finish or clean up what a killed writer left
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("status") == "ok" and not all(
            (folder / name).is_file() for name in record.get("files", {}).values()):
        return None  # outputs removed by hand: run it again
    return record

