"""The package as installed: ``python -m parareg``, ``py.typed``, annotations of the public API."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import parareg

ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "parareg", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_python_dash_m_parareg_runs_the_command():
    done = _run("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: parareg")
    assert "register" in done.stdout


def test_python_dash_m_parareg_reports_bad_input_in_one_line():
    done = _run("register", "no_such_fixed.nii.gz", "no_such_moving.nii.gz", "-o", "x_")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("parareg: error:"), done.stderr


def test_py_typed_ships_with_the_package():
    assert (Path(parareg.__file__).parent / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["parareg"]


def _unannotated(function, label):
    signature = inspect.signature(function)
    missing = [f"{label}({p.name})" for p in signature.parameters.values()
               if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    if (signature.return_annotation is inspect.Signature.empty
            and function.__name__ != "__init__"):
        missing.append(f"{label} -> ?")
    return missing


def test_the_public_api_carries_annotations():
    """Every name of ``parareg.__all__`` (its public methods too) and every public function
    of the modules that define them is annotated, parameters and return."""
    missing, modules = [], set()
    for name in parareg.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(parareg, name)
        modules.add(obj.__module__)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if inspect.isfunction(member) and (not attr.startswith("_")
                                                   or attr == "__init__"):
                    missing += _unannotated(member, f"{name}.{attr}")
        else:
            missing += _unannotated(obj, name)
    for module_name in sorted(modules):
        module = sys.modules[module_name]
        for attr, member in vars(module).items():
            if (inspect.isfunction(member) and not attr.startswith("_")
                    and member.__module__ == module_name):
                missing += _unannotated(member, f"{module_name}.{attr}")
    assert not missing, "not annotated: " + ", ".join(sorted(set(missing)))
