"""The checks of :func:`parareg.population.template.build` before any work: option values,
the contrasts of ``channels``, and every input image read once (grids, dimensionality, digests).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .batch_checks import KEY_RE, fingerprint

__all__ = ["LABELS", "check_channels", "check_unit", "read_inputs"]

#: also-key of the label maps (a channel may not take it)
LABELS = "labels"


def check_unit(value, name, *, low_open=True, allow_none=False):
    """``value`` as a float in (0, 1] (``low_open``) or [0, 1], else a ValueError naming it."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if ok and np.isfinite(value) and (0 < value <= 1 if low_open else 0 <= value <= 1):
        return float(value)
    interval = "(0, 1]" if low_open else "[0, 1]"
    raise ValueError(f"{name} must be a number in {interval}{' or None' if allow_none else ''}, "
                     f"got {value!r}")


def _text(images, k) -> str:
    return repr(str(images[k])) if isinstance(images[k], (str, Path)) else f"images[{k}]"


def check_channels(channels, channel_weights, count: int) -> tuple[dict, dict]:
    """``channels`` as name -> list of images, and each one's weight (1 by default)."""
    if channels is None:
        if channel_weights is not None:
            raise ValueError("channel_weights needs channels (name -> one image per subject)")
        return {}, {}
    if not isinstance(channels, Mapping):
        raise ValueError("channels must be a dict: contrast name -> one image per subject "
                         f"(e.g. {{'t2': [...]}}), got {type(channels).__name__}")
    checked = {}
    for name, images in channels.items():
        if not isinstance(name, str) or not KEY_RE.match(name) or name == LABELS:
            raise ValueError(f"channels: names are letters, digits, _ and - (they name "
                             f"template_NAME.nii.gz), not {LABELS!r}; got {name!r}")
        images = [images] if isinstance(images, (str, Path)) else list(images)
        if len(images) != count:
            raise ValueError(f"channels[{name!r}]: give one image per subject, got "
                             f"{len(images)} for {count} images")
        checked[name] = images
    weights = dict(channel_weights or {})
    for name in weights:
        if name not in checked:
            raise ValueError(f"channel_weights has {name!r}, which is not one of channels "
                             f"{sorted(checked)}")
    for name in checked:
        weight = weights.get(name, 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float, np.number)) \
                or not np.isfinite(weight) or weight < 0:
            raise ValueError(f"channel_weights[{name!r}] must be a number >= 0, got "
                             f"{weight!r}")
        weights[name] = float(weight)
    return checked, weights


def read_inputs(images, channels, labels):
    """Every image read once and checked: (paths or Images to pass on, digests)."""
    from ..image import as_image
    from ..registration.channels import GRID_ATOL

    inputs, digests = [], []
    first_ndim = None
    for i, image in enumerate(images):  # one at a time: only the paths and digests are kept
        loaded = as_image(image, name=f"images[{i}]")
        first_ndim = first_ndim or loaded.ndim
        if loaded.ndim != first_ndim:
            raise ValueError(f"images must all be 2D or all 3D: {_text(images, i)} is "
                             f"{loaded.ndim}D but {_text(images, 0)} is {first_ndim}D")
        inputs.append(str(image) if isinstance(image, (str, Path)) else loaded)
        row = [fingerprint(image, name=f"images[{i}]", image=loaded)[1]]
        for name, contrast in channels.items():
            other = as_image(contrast[i], name=f"channels[{name!r}][{i}]")
            if other.shape != loaded.shape or not np.allclose(
                    other.vox2world, loaded.vox2world, rtol=0, atol=GRID_ATOL):
                raise ValueError(f"channels[{name!r}][{i}] must be on the grid of "
                                 f"{_text(images, i)} (shape {loaded.shape}), got shape "
                                 f"{other.shape}; resample it first "
                                 "(parareg.resample(image, reference))")
            row.append(fingerprint(contrast[i], name=f"channels[{name!r}][{i}]",
                                   image=other)[1])
            if not isinstance(contrast[i], (str, Path)):
                contrast[i] = other
        if labels is not None:
            fingerprint(labels[i], name=f"labels[{i}]", labels=True)
        digests.append(row[0] if len(row) == 1 else row)
    return inputs, digests, first_ndim
