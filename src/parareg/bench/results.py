"""The study's CSV files, written so that a crash at any moment leaves a valid file.

Why rewrite-and-rename rather than append
-----------------------------------------
Only the client process writes (workers return rows to it), so there is a
single writer and no lock is needed. Each finished task rewrites the whole CSV
through :mod:`parareg.io.outputs` (a temporary in the same folder, ``fsync``,
``os.replace``, ``fsync`` of the folder). A reader, or a study resumed after ``kill -9`` or a
power cut, therefore sees either the previous complete file or the new
complete file, never a torn last line, which a plain append (even with
``fsync``) can leave behind. The cost is rewriting the file per task:
milliseconds for thousands of rows, nothing next to a registration.

Resume key
----------
A row is identified by ``(fixed, moving, method)``; ``settings_hash``
(:func:`parareg.bench.methods.settings_hash`) records what produced it, and
the runner refuses to resume a study whose rows were made with other settings.
The per-label file is written before ``results.csv``, so a crash between the
two leaves per-label rows without a result row; they are dropped on load.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from ..io.outputs import write_text

RESULTS_CSV = "results.csv"
PER_LABEL_CSV = "per_label_dice.csv"
KEY = ("fixed", "moving", "method")
#: columns of results.csv, in order
COLUMNS = (
    "fixed", "moving", "method", "status", "dice_mean", "jaccard_mean", "n_labels", "ncc",
    "nmi", "folded_percent", "jacobian_min", "seconds", "peak_rss_mb", "baseline_rss_mb",
    "threads", "warmup_seconds", "prealign", "prealign_seconds", "seed", "settings_hash",
    "worker", "finished", "error", "info",
)
PER_LABEL_COLUMNS = ("fixed", "moving", "method", "label", "dice", "jaccard")
NUMERIC = frozenset({"dice_mean", "jaccard_mean", "ncc", "nmi", "folded_percent",
                     "jacobian_min", "seconds", "peak_rss_mb", "baseline_rss_mb",
                     "warmup_seconds", "prealign_seconds", "dice", "jaccard"})
INTEGER = frozenset({"n_labels", "threads", "seed", "label"})
#: statuses of a task that did not produce scores
FAILED = ("error", "timeout", "crashed")

__all__ = ["COLUMNS", "FAILED", "KEY", "PER_LABEL_COLUMNS", "PER_LABEL_CSV", "RESULTS_CSV",
           "ResultStore", "read_csv", "write_csv_atomic"]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def _parse(column, text):
    if column in NUMERIC:
        return float(text) if text not in ("", None) else math.nan
    if column in INTEGER:
        return int(float(text)) if text not in ("", None) else None
    return text


def write_csv_atomic(path, columns, rows) -> Path:
    """Write ``rows`` (dicts; missing cells empty, extra keys ignored) as a CSV, atomically."""
    path = Path(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return write_text(path, buffer.getvalue())


def read_csv(path) -> list[dict]:
    """Rows of a CSV written by :func:`write_csv_atomic`, known numeric columns parsed."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: _parse(k, v) for k, v in row.items()} for row in csv.DictReader(f)]


class ResultStore:
    """``results.csv`` and ``per_label_dice.csv`` of one study folder, in memory and on disk."""

    def __init__(self, out):
        self.out = Path(out)
        self.results_path = self.out / RESULTS_CSV
        self.per_label_path = self.out / PER_LABEL_CSV
        self.rows: dict[tuple, dict] = {}
        self.per_label: dict[tuple, list[dict]] = {}
        self.order: dict[tuple, int] = {}

    def load(self) -> "ResultStore":
        """Read what an earlier run left (nothing if the files do not exist)."""
        for row in read_csv(self.results_path):
            self.rows[tuple(row[k] for k in KEY)] = row
        for row in read_csv(self.per_label_path):
            key = tuple(row[k] for k in KEY)
            if key in self.rows:  # a crash between the two writes leaves orphans: drop them
                self.per_label.setdefault(key, []).append(row)
        return self

    def done(self, *, retry_failed: bool = False) -> set:
        """Keys that need no new run: every recorded row, or only the ``ok`` ones."""
        return {key for key, row in self.rows.items()
                if not (retry_failed and row.get("status") in FAILED)}

    def put(self, row: dict, per_label=()) -> None:
        """Record one finished task (replacing an earlier row with its key) and write both files."""
        key = tuple(row[k] for k in KEY)
        self.rows[key] = row
        self.per_label[key] = [dict(zip(KEY, key), **r) for r in per_label]
        self.flush()

    def flush(self) -> None:
        """Write both CSVs atomically, per-label first, rows in the study's task order."""
        keys = sorted(self.rows, key=lambda k: (self.order.get(k, len(self.order)), k))
        write_csv_atomic(self.per_label_path, PER_LABEL_COLUMNS,
                         [r for k in keys for r in self.per_label.get(k, [])])
        write_csv_atomic(self.results_path, COLUMNS, [self.rows[k] for k in keys])
