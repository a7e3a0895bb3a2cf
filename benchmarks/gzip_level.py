"""Time and size of each gzip level/strategy on parareg's outputs: how GZIP_LEVEL was chosen.

For every ``.nii.gz`` of one or more ``parareg register`` output folders the
uncompressed NIfTI bytes are compressed the way :mod:`parareg.io.outputs`
does it (1 MiB gzip members, each compressed on its own), serially, at each
setting; the table gives seconds (minimum of the interleaved repeats), the
compressed size relative to the raw file, and MB/s. The end-to-end writer
(:func:`parareg.io.write_nifti`, fsync included) is timed at 1 and N threads.

Run::

    parareg register FIXED MOVING -o /tmp/reg2mm/o_       # once per pair
    python benchmarks/gzip_level.py --outputs /tmp/reg2mm --outputs /tmp/reg1mm
    python benchmarks/gzip_level.py --quick --out /tmp/g  # synthetic smoke run, seconds

Writes ``gzip_level.json`` and ``gzip_level.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    format_time,
    log,
    machine_info,
    markdown_table,
    measure,
    write_json,
)

from parareg.io import gzip_chunks, outputs as writer  # noqa: E402

#: (name, level, strategy) of every setting measured
SETTINGS = [
    ("stored (level 0)", 0, zlib.Z_DEFAULT_STRATEGY),
    ("level 1", 1, zlib.Z_DEFAULT_STRATEGY),
    ("level 2", 2, zlib.Z_DEFAULT_STRATEGY),
    ("level 4", 4, zlib.Z_DEFAULT_STRATEGY),
    ("level 6 (gzip default)", 6, zlib.Z_DEFAULT_STRATEGY),
    ("level 9", 9, zlib.Z_DEFAULT_STRATEGY),
    ("level 1, Z_HUFFMAN_ONLY", 1, zlib.Z_HUFFMAN_ONLY),
    ("level 1, Z_RLE (parareg)", 1, zlib.Z_RLE),
]


def compress(view, level: int, strategy: int) -> int:
    """Compressed size of ``view`` in writer-style chunks (serial)."""
    size, n = 0, len(view)
    for start in range(0, n, gzip_chunks.CHUNK_BYTES):
        stop = min(start + gzip_chunks.CHUNK_BYTES, n)
        size += len(gzip_chunks.compress_chunk(view, start, stop, level, strategy))
    return size


def synthetic_folder(folder: Path) -> Path:
    """A smooth warp and an image shaped like registration outputs (for --quick)."""
    import parareg

    rng = np.random.default_rng(0)
    shape = (48, 56, 40)
    field = np.cumsum(rng.normal(0, 0.05, (*shape, 3)), axis=0).astype(np.float32)
    parareg.io.write_warp(field, np.eye(4), folder / "o_1Warp.nii.gz")
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    image = np.where(sum(g**2 for g in grid) < 0.8, 100 + 20 * grid[0], 0) + rng.random(shape)
    parareg.save(parareg.Image(image.astype(np.float32), np.eye(4)), folder / "o_Warped.nii.gz")
    return folder


def run(folders, *, repeats: int, threads: int, pattern: str = "*.nii.gz") -> dict:
    import nibabel as nib

    rows = []
    for folder in folders:
        for path in sorted(Path(folder).glob(pattern)):
            raw = gzip.decompress(path.read_bytes())
            view = memoryview(raw)
            log(f"{path}: {len(raw) / 1e6:.1f} MB raw")
            funcs = {name: (lambda level=level, strategy=strategy:
                            compress(view, level, strategy))
                     for name, level, strategy in SETTINGS}
            times = measure(funcs, repeats=repeats, min_time=0.0)
            nifti = nib.load(path)
            nifti = nib.Nifti1Image(np.asanyarray(nifti.dataobj), nifti.affine, nifti.header)
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                ends = measure({f"writer, {n} thread{'s' * (n > 1)}": (
                    lambda n=n: writer.write_nifti(Path(tmp) / path.name, nifti, num_threads=n))
                    for n in sorted({1, threads})}, repeats=repeats, min_time=0.0)
            for name, level, strategy in SETTINGS:
                size = compress(view, level, strategy)
                seconds = times[name]["min_s"]
                rows.append({"folder": str(folder), "file": path.name, "raw_mb": len(raw) / 1e6,
                             "setting": name, "level": level, "strategy": strategy,
                             "ratio": size / len(raw), "seconds": seconds,
                             "mb_per_s": len(raw) / 1e6 / seconds})
            for name, t in ends.items():
                rows.append({"folder": str(folder), "file": path.name, "raw_mb": len(raw) / 1e6,
                             "setting": name, "seconds": t["min_s"],
                             "mb_per_s": len(raw) / 1e6 / t["min_s"]})
    return {"machine": machine_info(), "repeats": repeats, "threads": threads,
            "chunk_bytes": gzip_chunks.CHUNK_BYTES,
            "chosen": {"level": gzip_chunks.GZIP_LEVEL, "strategy": gzip_chunks.GZIP_STRATEGY},
            "rows": rows}


def render_markdown(study: dict) -> str:
    lines = [f"Serial compression in {study['chunk_bytes'] >> 20} MiB chunks (minimum of "
             f"{study['repeats']} interleaved repeats); the writer rows include building the "
             "NIfTI, fsync and rename.", ""]
    table = [[Path(r["folder"]).name + "/" + r["file"], f"{r['raw_mb']:.1f}", r["setting"],
              f"{r['ratio']:.3f}" if "ratio" in r else "",
              format_time(r["seconds"]), f"{r['mb_per_s']:.0f}"] for r in study["rows"]]
    lines.append(markdown_table(["file", "raw MB", "setting", "size / raw", "time", "MB/s"],
                                table, align="lrlrrr"))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outputs", action="append", default=[], metavar="DIR",
                        help="a folder of `parareg register` outputs (repeatable)")
    parser.add_argument("--quick", action="store_true", help="synthetic outputs, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", default="*.nii.gz", metavar="GLOB",
                        help="which files of each folder (default: every .nii.gz)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" /
                                             "gzip_level"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    folders = [Path(f) for f in args.outputs]
    repeats = args.repeats
    if args.quick:
        (out / "synthetic").mkdir(exist_ok=True)
        folders.append(synthetic_folder(out / "synthetic"))
        repeats = 1
    if not folders:
        parser.error("give --outputs DIR (a parareg register output folder) or --quick")
    study = run(folders, repeats=repeats, threads=args.threads, pattern=args.files)
    write_json(out / "gzip_level.json", study)
    text = render_markdown(study)
    (out / "gzip_level.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
