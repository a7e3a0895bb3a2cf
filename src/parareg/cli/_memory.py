"""The memory check of ``parareg register``: ``--max-memory`` and out-of-memory messages."""

from __future__ import annotations

from ._common import CLIError


def _options(args, syn_metric, quiet) -> dict:
    return dict(transform=args.transform, preset=args.preset, metric=syn_metric or "cc",
                fixed_mask=args.fixed_mask is not None, cli=True, summary=not quiet,
                channels=_channel_metrics(args))


def _channel_metrics(args) -> tuple:
    """The SyN metric (``None``: ``--metric``'s) of each ``-i`` channel, from
    ``--channel-metrics`` (already checked by ``_register_options.channels``)."""
    from .register import METRICS

    count = len(getattr(args, "inputs", None) or ())
    text = getattr(args, "channel_metrics", None)
    if not count or text is None:
        return (None,) * count
    names = [part.strip().lower() for part in str(text).split(",")][1:]
    return tuple(METRICS[name][1] if name in METRICS else None for name in names[:count])


def check_memory(args, *, syn_metric, quiet: bool):
    """Stop before reading any voxel if the registration will not fit in memory.

    The grids come from the file headers; the estimate (:mod:`parareg.memory`) is
    compared with ``--max-memory`` and the memory available. Returns the
    estimate (``None`` when a header cannot be read: loading reports why).
    """
    from ..memory import InsufficientMemoryError, check_registration

    try:
        return check_registration(args.fixed, args.moving, max_memory=args.max_memory,
                                  **_options(args, syn_metric, quiet))
    except InsufficientMemoryError as exc:
        raise CLIError(str(exc)) from None


def out_of_memory(exc: MemoryError, args, *, syn_metric, quiet: bool) -> str:
    """One line for a MemoryError while registering: the estimate and what to change."""
    from ..memory import advice, available_memory, estimate_registration, format_bytes

    reason = str(exc) or "an allocation failed"
    need, remedies = estimate_registration(args.fixed, args.moving,
                                           **_options(args, syn_metric, quiet))
    if need is None:
        return f"out of memory while registering ({reason})"
    available, source = available_memory()
    room = f", {format_bytes(available)} can be used ({source})" if available is not None else ""
    return (f"out of memory while registering ({reason}); the estimate was about "
            f"{need.describe()}{room}" + advice(need, remedies, "cli", available))
