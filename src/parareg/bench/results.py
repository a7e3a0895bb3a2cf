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
two leaves per-label rows without a result row; on resume they are set aside
in ``per_label_dice.rejected.csv`` and their task runs again.

Damaged files
-------------
A file edited by hand, truncated by a full disk or a copy, or replaced by
another CSV is read defensively (:func:`read_table`):

* a file whose header is not a study's (it lacks the key columns ``fixed,
  moving, method`` and ``status, settings_hash``) is refused with a
  :class:`ForeignTableError` before anything is touched;
* a row that cannot be one this module wrote (wrong number of cells, an empty
  key, an unknown status, a number that does not parse, ``info`` that is not
  JSON, a last row without its final newline, the same key twice) is
  *rejected*: reported with its line number (:class:`RejectedRow`), kept out of
  the study, and, when the study resumes, appended to ``results.rejected.csv``
  (or ``per_label_dice.rejected.csv``) with its line number and the reason
  before ``results.csv`` is rewritten without it. Nothing is deleted, and the
  tasks of rejected rows are simply not done, so they run again.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..io.outputs import write_text

RESULTS_CSV = "results.csv"
PER_LABEL_CSV = "per_label_dice.csv"
KEY = ("fixed", "moving", "method")
#: columns of results.csv, in order
COLUMNS = (
    "fixed", "moving", "method", "status", "dice_mean", "jaccard_mean", "hd95_mean", "n_labels",
    "ncc", "nmi", "folded_percent", "jacobian_min", "jacobian_max", "sdlogj", "seconds",
    "peak_rss_mb", "baseline_rss_mb", "threads", "warmup_seconds", "prealign",
    "prealign_seconds", "seed", "settings_hash", "worker", "finished", "error", "info",
)
#: (a file written before a column was added is read as it is: the missing cells are empty)
PER_LABEL_COLUMNS = ("fixed", "moving", "method", "label", "dice", "jaccard", "hd95")
NUMERIC = frozenset({"dice_mean", "jaccard_mean", "hd95_mean", "ncc", "nmi", "folded_percent",
                     "jacobian_min", "jacobian_max", "sdlogj", "hd95", "seconds", "peak_rss_mb",
                     "baseline_rss_mb", "warmup_seconds", "prealign_seconds", "dice", "jaccard"})
INTEGER = frozenset({"n_labels", "threads", "seed", "label"})
#: statuses of a task that did not produce scores
FAILED = ("error", "timeout", "crashed")
#: every status a row of results.csv may hold
STATUSES = ("ok",) + FAILED
#: columns a file must have to be read as a study's results.csv / per_label_dice.csv
REQUIRED = {RESULTS_CSV: KEY + ("status", "settings_hash"),
            PER_LABEL_CSV: KEY + ("label", "dice")}
#: where rejected rows of each file are set aside
REJECTED_SUFFIX = ".rejected.csv"
REJECTED_COLUMNS = ("line", "reason", "text")

__all__ = ["COLUMNS", "FAILED", "KEY", "PER_LABEL_COLUMNS", "PER_LABEL_CSV", "RESULTS_CSV",
           "ForeignTableError", "RejectedRow", "ResultStore", "read_csv", "read_table",
           "write_csv_atomic"]


class ForeignTableError(ValueError):
    """A file in a study folder that is not one a study wrote (e.g. another CSV in its place)."""


@dataclass(frozen=True)
class RejectedRow:
    """A row of a study CSV that could not have been written by a study."""

    line: int  #: 1-based line of the file where the row starts
    reason: str
    text: str  #: the row's cells joined by commas, as read


def describe_rejected(rejected, *, most: int = 5) -> str:
    """One line about rejected rows: ``"2 damaged row(s): line 3 (reason), line 7 (reason)"``."""
    shown = ", ".join(f"line {r.line} ({r.reason})" for r in rejected[:most])
    more = f" and {len(rejected) - most} more" if len(rejected) > most else ""
    return f"{len(rejected)} damaged row(s): {shown}{more}"


def rejected_path(path) -> Path:
    """``results.csv`` -> ``results.rejected.csv``."""
    path = Path(path)
    return path.with_name(path.name[: -len(".csv")] + REJECTED_SUFFIX)


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
    """Rows of a CSV written by :func:`write_csv_atomic`, known numeric columns parsed.

    ``results.csv`` and ``per_label_dice.csv`` are read with :func:`read_table`:
    rejected rows are left out and a foreign file raises :class:`ForeignTableError`.
    """
    path = Path(path)
    if path.name in REQUIRED:
        return read_table(path)[0]
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: _parse(k, v) for k, v in row.items()} for row in csv.DictReader(f)]


def _records(physical: list[str]):
    """``(first line, cells or None, error)`` per CSV record of the file's lines."""
    reader = csv.reader(physical)
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # the reader goes on with the next line
            yield start, None, f"unreadable CSV: {exc}"
        else:
            yield start, cells, None
        start = reader.line_num + 1


def _check_cells(column, text) -> str | None:
    """Why ``text`` cannot be a value of ``column`` this module wrote, or None."""
    if text == "":
        return f"empty {column!r}" if column in KEY + ("status", "label") else None
    try:
        if column in NUMERIC:
            float(text)
        elif column in INTEGER:
            if float(text) != int(float(text)):
                return f"{column!r} is not a whole number: {text[:40]!r}"
    except (ValueError, OverflowError):
        return f"{column!r} is not a number: {text[:40]!r}"
    if column == "status" and text not in STATUSES:
        return f"unknown status {text[:40]!r}"
    if column == "info":
        try:
            json.loads(text)
        except ValueError:
            return "'info' is not valid JSON (a torn row?)"
    return None


def read_table(path) -> tuple[list[dict], list[RejectedRow]]:
    """Read ``results.csv`` or ``per_label_dice.csv`` defensively: ``(rows, rejected)``.

    Parameters
    ----------
    path : path
        A study's ``results.csv`` or ``per_label_dice.csv``; a missing or
        empty file has no rows.

    Returns
    -------
    rows : list of dict
        The valid rows, numeric columns parsed, in file order.
    rejected : list of RejectedRow
        Rows that a study cannot have written, with their line numbers.

    Raises
    ------
    ForeignTableError
        When the header is not the study's (another CSV in its place).
    """
    rows, _, rejected = _read_table(path)
    return rows, rejected


def _read_table(path) -> tuple[list[dict], list[int], list[RejectedRow]]:
    """:func:`read_table`, plus the line number of each valid row."""
    path = Path(path)
    if not path.is_file():
        return [], [], []
    text = path.read_bytes().decode("utf-8", errors="replace")
    physical = io.StringIO(text, newline="").readlines()  # line ends kept, as csv needs
    records = list(_records(physical))
    if not records:
        return [], [], []
    required = REQUIRED.get(path.name, KEY)
    _, header, _ = records[0]
    if header is None or not set(required) <= set(header) or len(set(header)) != len(header):
        shown = physical[0].rstrip("\r\n")[:80]
        raise ForeignTableError(
            f"{path} is not a parareg study's {path.name}: its first line is {shown!r}, but a "
            f"study's has the columns {', '.join(required)}; give another output folder, or "
            "move the file away to start the study afresh")
    rows, lines, rejected = [], [], []
    torn_end = not text.endswith(("\n", "\r"))
    for number, (line, cells, error) in enumerate(records[1:], start=1):
        if cells is not None and not any(c.strip() for c in cells):
            continue  # a blank line
        raw = physical[line - 1].rstrip("\r\n") if cells is None else ",".join(cells)
        if error is None and len(cells) != len(header):
            error = (f"{len(cells)} cell(s) where the header has {len(header)} (a torn or "
                     "garbled row)")
        if error is None:
            error = next((e for e in map(_check_cells, header, cells) if e), None)
        if error is None and torn_end and number == len(records) - 1:
            error = "the file ends in the middle of this row (no final newline): a torn row"
        if error is not None:
            rejected.append(RejectedRow(line, error, raw))
            continue
        rows.append({k: _parse(k, v) for k, v in zip(header, cells)})
        lines.append(line)
    return rows, lines, rejected


class ResultStore:
    """``results.csv`` and ``per_label_dice.csv`` of one study folder, in memory and on disk."""

    def __init__(self, out):
        self.out = Path(out)
        self.results_path = self.out / RESULTS_CSV
        self.per_label_path = self.out / PER_LABEL_CSV
        self.rows: dict[tuple, dict] = {}
        self.per_label: dict[tuple, list[dict]] = {}
        self.order: dict[tuple, int] = {}
        self.rejected: list[RejectedRow] = []
        self.rejected_per_label: list[RejectedRow] = []
        #: valid per-label rows whose key has no row in results.csv (set aside, not warned of)
        self.orphans: list[RejectedRow] = []

    def load(self) -> "ResultStore":
        """Read what an earlier run left (nothing if the files do not exist).

        Damaged rows go to :attr:`rejected` (and :attr:`rejected_per_label`)
        instead, per-label rows without a result row to :attr:`orphans`;
        :meth:`set_aside` moves them all out of the files.

        Raises
        ------
        ForeignTableError
            When either file is not a study's.
        """
        rows, row_lines, self.rejected = _read_table(self.results_path)
        lines = {}
        for line, row in zip(row_lines, rows):
            key = tuple(row[k] for k in KEY)
            if key in self.rows:
                self.rejected.append(RejectedRow(line, f"the same (fixed, moving, method) as "
                                                       f"line {lines[key]}", ",".join(key)))
                continue
            self.rows[key], lines[key] = row, line
        self.rejected.sort(key=lambda r: r.line)
        per_label, per_label_lines, self.rejected_per_label = _read_table(self.per_label_path)
        for line, row in zip(per_label_lines, per_label):
            key = tuple(row[k] for k in KEY)
            if key in self.rows:
                self.per_label.setdefault(key, []).append(row)
            else:  # a crash between the two writes, or its result row was rejected
                self.orphans.append(RejectedRow(line, "no row of results.csv has its key",
                                                ",".join(_cell(v) for v in row.values())))
        return self

    def set_aside(self) -> list[Path]:
        """Append rejected rows to the ``*.rejected.csv`` files, then rewrite the study's files
        without them; return the files written to (none when nothing was rejected)."""
        written = []
        for path, rejected in ((self.results_path, self.rejected),
                               (self.per_label_path, self.rejected_per_label + self.orphans)):
            if not rejected:
                continue
            aside = rejected_path(path)
            earlier = []
            if aside.is_file():
                with open(aside, newline="", encoding="utf-8", errors="replace") as f:
                    earlier = list(csv.DictReader(f))
            new = [{"line": r.line, "reason": r.reason, "text": r.text} for r in rejected]
            write_csv_atomic(aside, REJECTED_COLUMNS, earlier + new)
            written.append(aside)
        if written:
            self.flush()  # only after the rejected rows are safe elsewhere
            self.rejected, self.rejected_per_label, self.orphans = [], [], []
        return written

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

