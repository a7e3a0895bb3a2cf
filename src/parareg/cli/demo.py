"""``parareg demo``: recover a known deformation of real anatomy, offline, in about a minute.

The fixed image is the MNI152 2009a T1 template that ``nilearn`` ships inside
its wheel (``nilearn/datasets/data/``, with grey- and white-matter probability
maps used as a two-class segmentation); without nilearn, DIPY's bundled T1
coronal slice (2D, segmented by intensity terciles) is used. Neither package
is imported: only its data files are read, so the demo needs no network.

The moving image is the fixed one pulled through a known map
``psi(x) = R (x + u(x))`` -- ``u`` a seeded random smooth field of a few mm,
``R`` a small rotation and shift -- followed by a gamma change and a smooth
bias field. Registering it back (affine + SyN) should make ``psi o phi``
close to the identity, where ``phi`` is the recovered fixed -> moving map.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..transforms.chain import sample_field, world_points
from ._common import (
    CLIError,
    RegistrationProgress,
    add_quiet_argument,
    add_threads_argument,
    describe_grid,
    make_parser,
    ncc,
    run_command,
)

#: nilearn's bundled MNI152 2009a symmetric template (1 mm, 197 x 233 x 189, uint8)
NILEARN_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
#: DIPY's bundled T1 slice (2D, 1 mm)
DIPY_FILE = "t1_coronal_slice.npy"
SOURCES = ("auto", "nilearn", "dipy")


@dataclass(frozen=True)
class Setting:
    """How big the demo is: voxel size (mm), SyN preset, deformation and its smoothness."""

    voxel_mm: float
    preset: str
    amplitude_mm: float = 4.0
    smoothness_mm: float = 10.0
    rotation_deg: float = 4.0


#: (source, quick) -> setting
SETTINGS = {
    ("nilearn", False): Setting(voxel_mm=2.0, preset="default"),
    ("nilearn", True): Setting(voxel_mm=4.0, preset="fast", amplitude_mm=6.0,
                               smoothness_mm=16.0),
    ("dipy", False): Setting(voxel_mm=1.0, preset="default"),
    ("dipy", True): Setting(voxel_mm=2.0, preset="fast"),
}

DESCRIPTION = """\
Deform a real brain image with a known random smooth deformation, rotation and
intensity change, register it back with parareg (affine + SyN), and report how
well the deformation was recovered: NCC, Dice of tissue classes, the residual
displacement in mm, the time and the thread count. Runs offline."""

EPILOG = """\
data: the MNI152 template shipped inside nilearn's wheel (pip install
'parareg[demo]'); without nilearn, DIPY's bundled T1 slice (2D).

writes into --out: fixed.nii.gz, moving.nii.gz, warped.nii.gz, labels of the
fixed image, and qc.png (when matplotlib is installed). Try next:
  parareg register parareg_demo/fixed.nii.gz parareg_demo/moving.nii.gz -o parareg_demo/out_

examples:
  parareg demo
  parareg demo --out /tmp/demo --threads 2
  parareg demo --quick -q          # a few seconds: 4 mm grid"""


def _get_parser():
    parser = make_parser("parareg demo", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--out", default="parareg_demo", metavar="DIR",
                        help="folder for the outputs, created if needed (default: parareg_demo)")
    add_threads_argument(parser)
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random deformation (default: 0)")
    parser.add_argument("--quick", action="store_true",
                        help="coarser grid and fewer iterations (a few seconds)")
    parser.add_argument("--source", choices=SOURCES, default="auto",
                        help="bundled data to use (default: nilearn if installed, else dipy)")
    add_quiet_argument(parser)
    return parser


def main(argv=None) -> int:
    """Run ``parareg demo``; return the exit code."""
    return run_command(_run, _get_parser(), argv)


# --- data ------------------------------------------------------------------------------------


def _package_dir(name: str) -> Path | None:
    """Folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def nilearn_files() -> dict | None:
    """Paths of nilearn's bundled MNI152 T1, GM and WM maps, or ``None``."""
    root = _package_dir("nilearn")
    if root is None:
        return None
    paths = {key: root / "datasets" / "data" / name for key, name in NILEARN_FILES.items()}
    return paths if all(p.is_file() for p in paths.values()) else None


def dipy_file() -> Path | None:
    root = _package_dir("dipy")
    if root is None:
        return None
    path = root / "data" / "files" / DIPY_FILE
    return path if path.is_file() else None


def choose_source(source: str) -> str:
    if source in ("auto", "nilearn") and nilearn_files() is not None:
        return "nilearn"
    if source == "nilearn":
        raise CLIError("--source nilearn: nilearn is not installed (it bundles the MNI152 "
                       "template): pip install 'parareg[demo]'")
    if dipy_file() is not None:
        return "dipy"
    if source == "dipy":
        raise CLIError("--source dipy: dipy is not installed")
    raise CLIError("the demo reads the MNI152 template bundled with nilearn, which is not "
                   "installed: pip install 'parareg[demo]'")


def _crop(image, labels, *, margin: int):
    """Both images cut to the bounding box of ``image`` > 0 plus ``margin`` voxels."""
    from ..image import Image

    nonzero = np.argwhere(image.data > 0)
    lo = np.maximum(nonzero.min(axis=0) - margin, 0)
    hi = np.minimum(nonzero.max(axis=0) + 1 + margin, image.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    shift = np.eye(image.ndim + 1)
    shift[: image.ndim, image.ndim] = lo
    vox2world = image.vox2world @ shift
    return (Image(np.ascontiguousarray(image.data[box]), vox2world),
            [np.ascontiguousarray(m[box]) for m in labels])


def _shrink(image, factor: int, num_threads):
    from ..registration.pyramid import pyramid_level

    if factor == 1:
        return image
    return pyramid_level(image, factor=factor, sigma=0.5 * factor, num_threads=num_threads)


def load_fixed(source: str, setting: Setting, num_threads):
    """``(fixed Image, labels Image (int32), class names, description)`` on the demo grid."""
    from ..image import Image
    from ..io.nifti import load

    if source == "nilearn":
        paths = nilearn_files()
        t1, gm, wm = (load(paths[key]) for key in ("t1", "gm", "wm"))
        t1, (gm_data, wm_data) = _crop(t1, [gm.data, wm.data], margin=4)
        factor = max(1, int(round(setting.voxel_mm / float(t1.spacing.min()))))
        maps = [_shrink(Image(d, t1.vox2world), factor, num_threads) for d in (gm_data, wm_data)]
        t1 = _shrink(t1, factor, num_threads)
        labels = _tissue_from_maps(maps[0].data, maps[1].data)
        names = ("grey matter", "white matter")
        what = f"MNI152 2009a T1 template bundled with nilearn, at {factor} mm"
    else:
        image = Image(np.load(dipy_file()).astype(np.float32), np.eye(3))
        image, _ = _crop(image, [], margin=4)
        factor = max(1, int(round(setting.voxel_mm)))
        t1 = _shrink(image, factor, num_threads)
        labels = _tissue_from_terciles(t1.data)
        names = ("dark tissue", "mid tissue", "bright tissue")
        what = f"T1 coronal slice bundled with DIPY (2D), at {factor} mm"
    return t1, Image(labels, t1.vox2world), names, what


def _tissue_from_maps(gm, wm) -> np.ndarray:
    """0 background, 1 grey matter, 2 white matter (the larger probability, if >= 0.5)."""
    labels = np.zeros(gm.shape, np.int32)
    labels[(gm >= 0.5) & (gm >= wm)] = 1
    labels[(wm >= 0.5) & (wm > gm)] = 2
    return labels


def _tissue_from_terciles(data) -> np.ndarray:
    """0 background, then 1..3 by intensity terciles of the foreground (> 10 % of the max)."""
    foreground = data > 0.1 * float(data.max())
    lo, hi = np.percentile(data[foreground], [100 / 3, 200 / 3])
    labels = np.zeros(data.shape, np.int32)
    values = data[foreground]
    labels[foreground] = 1 + (values > lo).astype(np.int32) + (values > hi).astype(np.int32)
    return labels


# --- the known deformation and intensity change ----------------------------------------------


def _rotation(ndim: int, degrees: float) -> np.ndarray:
    """Rotation by ``degrees`` in the first two world axes (about z in 3D)."""
    angle = np.deg2rad(degrees)
    rotation = np.eye(ndim)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return rotation


@dataclass
class Truth:
    """The known map ``psi(x) = matrix @ (x + u(x))``, fixed world -> moving world."""

    matrix: np.ndarray
    u: np.ndarray
    degrees: float
    shift_mm: np.ndarray


def known_deformation(grid, setting: Setting, seed: int, num_threads) -> Truth:
    """The truth: Gaussian-smoothed white noise ``u`` scaled to a largest displacement of
    ``setting.amplitude_mm``, then a rotation by ``setting.rotation_deg`` about the grid
    centre and a shift of up to 2 mm per axis.
    """
    from ..fields import smooth_field

    rng = np.random.default_rng(seed)
    ndim = grid.ndim
    noise = rng.standard_normal((*grid.shape, ndim)).astype(np.float32)
    u = smooth_field(noise, setting.smoothness_mm / grid.spacing, num_threads=num_threads)
    largest = float(np.sqrt((u.astype(np.float64) ** 2).sum(axis=-1)).max())
    u = (u * np.float32(setting.amplitude_mm / largest)).astype(np.float32)
    centre_vox = (np.asarray(grid.shape, dtype=np.float64) - 1.0) / 2.0
    centre = grid.vox2world[:ndim, :ndim] @ centre_vox + grid.vox2world[:ndim, ndim]
    degrees = setting.rotation_deg * float(rng.choice([-1.0, 1.0]))
    rotation = _rotation(ndim, degrees)
    shift = rng.uniform(-2.0, 2.0, ndim)
    matrix = np.eye(ndim + 1)
    matrix[:ndim, :ndim] = rotation
    matrix[:ndim, ndim] = centre - rotation @ centre + shift
    return Truth(matrix=matrix, u=u, degrees=degrees, shift_mm=shift)


def intensity_change(data, grid, seed: int, num_threads) -> np.ndarray:
    """Gamma 0.8, a smooth multiplicative bias field (about +-20 %) and 1 % noise."""
    from ..filters import gaussian_smooth

    rng = np.random.default_rng(seed + 1)
    foreground = data > 0
    top = float(np.percentile(data[foreground], 99.5)) if foreground.any() else 1.0
    x = np.clip(data / top, 0.0, None) ** 0.8
    bias = gaussian_smooth(rng.standard_normal(data.shape).astype(np.float32),
                           40.0 / grid.spacing, num_threads=num_threads)
    bias /= max(float(np.abs(bias).max()), 1e-12)
    noise = rng.normal(0.0, 0.01, data.shape)
    return (top * (x * np.exp(0.2 * bias) + noise * foreground)).astype(np.float32)


# --- scores ----------------------------------------------------------------------------------


def dice(a, b, label: int) -> float:
    a, b = a == label, b == label
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / total if total else float("nan")


def residual_mm(truth: Truth, grid, phi_points, mask) -> float:
    """Mean ``|psi(phi(x)) - x|`` over ``mask``: how far the recovered map is from the truth."""
    ndim = grid.ndim
    x = world_points(grid)[mask.ravel()]
    y = phi_points[mask.ravel()]
    disp, _ = sample_field(truth.u, grid.vox2world, y)
    psi = (y + disp) @ truth.matrix[:ndim, :ndim].T + truth.matrix[:ndim, ndim]
    return float(np.sqrt(((psi - x) ** 2).sum(axis=1)).mean())


def recovered_points(mapping, grid) -> np.ndarray:
    """``phi(x)`` for every voxel of ``grid`` (the registration's fixed -> moving map)."""
    ndim = grid.ndim
    x = world_points(grid)
    moved = x + mapping.forward.reshape(-1, ndim)
    return moved @ mapping.prealign[:ndim, :ndim].T + mapping.prealign[:ndim, ndim]


# --- the command -----------------------------------------------------------------------------


def _run(args, console) -> int:
    from .. import register
    from ..image import Image
    from ..io.nifti import save
    from ..io.outputs import OutputSet
    from ..parallel import resolve_num_threads
    from ..registration.affine import DEFAULT_LEVELS
    from ..registration.pipeline import SYN_PRESETS
    from ..resampling import resample

    source = choose_source(args.source)
    setting = SETTINGS[(source, args.quick)]
    num_threads = resolve_num_threads(args.threads)
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise CLIError(f"--out: {str(out_dir)!r} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    has_qc = importlib.util.find_spec("matplotlib") is not None

    t_start = time.perf_counter()
    fixed, labels, names, what = load_fixed(source, setting, num_threads)
    truth = known_deformation(fixed, setting, args.seed, num_threads)
    moving_shape = resample(fixed, fixed, affine=truth.matrix, field=truth.u,
                            num_threads=num_threads)
    moving = Image(intensity_change(moving_shape.data, fixed, args.seed, num_threads),
                   fixed.vox2world)
    moving_labels = resample(labels, fixed, affine=truth.matrix, field=truth.u,
                             interpolation="nearest", num_threads=num_threads)
    t_prepared = time.perf_counter()

    console.print(f"parareg demo: {what}")
    console.print(f"  grid        {describe_grid(fixed)}")
    console.print(f"  truth       moving(x) = fixed(R (x + u(x))): smooth u up to "
                  f"{setting.amplitude_mm:g} mm, R a {truth.degrees:+.0f} deg rotation and a "
                  f"{float(np.linalg.norm(truth.shift_mm)):.1f} mm shift; then gamma 0.8, "
                  "bias field, 1 % noise")
    console.print(f"  register    affine (mi) + SyN (cc, preset {setting.preset}), "
                  f"{num_threads} thread{'s' * (num_threads != 1)}")

    progress = RegistrationProgress(enabled=not console.quiet, affine_levels=DEFAULT_LEVELS,
                                    syn_levels=SYN_PRESETS[setting.preset]["levels"],
                                    affine_metric="mi", syn_metric="cc")
    try:
        result = register(fixed, moving, transform="syn", preset=setting.preset,
                          num_threads=num_threads, seed=args.seed,
                          affine_options={"callback": progress.affine},
                          syn_options={"callback": progress.syn})
    finally:
        progress.close()
    t_registered = time.perf_counter()

    mapping = result.mapping
    warped_labels = mapping.transform(moving_labels, interpolation="nearest",
                                      num_threads=num_threads)
    brain = labels.data > 0
    scores = {
        "NCC in the brain": (ncc(fixed.data, moving.data, brain),
                             ncc(fixed.data, result.warped.data, brain)),
        "mean Dice": (np.mean([dice(labels.data, moving_labels.data, k)
                               for k in range(1, len(names) + 1)]),
                      np.mean([dice(labels.data, warped_labels.data, k)
                               for k in range(1, len(names) + 1)])),
    }
    for k, name in enumerate(names, start=1):
        scores[f"Dice {name}"] = (dice(labels.data, moving_labels.data, k),
                                  dice(labels.data, warped_labels.data, k))
    scores["mean |psi(phi(x)) - x| (mm)"] = (  # phi = identity before registration
        residual_mm(truth, fixed, world_points(fixed), brain),
        residual_mm(truth, fixed, recovered_points(mapping, fixed), brain))
    jacobian = mapping.jacobian_determinant(num_threads=num_threads)

    files = {"fixed": "fixed.nii.gz", "moving": "moving.nii.gz", "warped": "warped.nii.gz",
             "labels": "fixed_labels.nii.gz", "moving_labels": "moving_labels.nii.gz"}
    with OutputSet(num_threads=num_threads) as outputs:
        for key, image in (("fixed", fixed), ("moving", moving), ("warped", result.warped),
                           ("labels", labels), ("moving_labels", moving_labels)):
            save(image, out_dir / files[key], outputs=outputs)
        if has_qc:
            from ..qc import qc_figure

            ncc_before, ncc_after = scores["NCC in the brain"]
            title = (f"parareg demo: NCC in the brain {ncc_before:.3f} -> {ncc_after:.3f}, "
                     f"mean Dice {scores['mean Dice'][0]:.3f} -> {scores['mean Dice'][1]:.3f}")
            qc_figure(fixed, result.warped, out_dir / "qc.png", jacobian=jacobian, title=title,
                      outputs=outputs)
    t_end = time.perf_counter()

    console.print(f"{'':<34}{'before':>8}{'after':>8}")
    for name, (before, after) in scores.items():
        console.print(f"  {name:<32}{before:8.3f}{after:8.3f}")
    folds = int(np.count_nonzero(jacobian <= 0))
    console.print(f"  Jacobian determinant in [{float(jacobian.min()):.3g}, "
                  f"{float(jacobian.max()):.3g}], {folds} folded voxels")
    console.print(f"time: registration {t_registered - t_prepared:.1f} s "
                  f"(affine {result.seconds.get('affine', 0.0):.1f} s, "
                  f"SyN {result.seconds.get('syn', 0.0):.1f} s) on {num_threads} "
                  f"thread{'s' * (num_threads != 1)}; total {t_end - t_start:.1f} s")
    console.print(f"outputs in {out_dir}/: " + ", ".join(p.name for p in outputs.paths)
                  + ("" if has_qc else " (no qc.png: pip install matplotlib)"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
