"""``import parareg`` is cheap: heavy dependencies load only when a name needs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import parareg

SRC = Path(parareg.__file__).resolve().parents[1]
HEAVY = ("numba", "scipy", "matplotlib", "dask", "distributed", "nibabel")

LOADED = """\
import sys
{statement}
heavy = {heavy!r}
print(sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy)))
"""


def _loaded(statement: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    result = subprocess.run([sys.executable, "-c", LOADED.format(statement=statement,
                                                                 heavy=HEAVY)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_parareg_loads_no_heavy_dependency():
    assert _loaded("import parareg") == "[]"


def test_cli_help_path_loads_no_numba():
    assert "numba" not in _loaded("import parareg.cli.main, parareg.cli.register")


def test_lazy_names_resolve_and_dir_is_honest():
    assert "numba" in _loaded("from parareg import register")
    names = set(parareg.__all__)
    assert names <= set(dir(parareg))
    for name in sorted(names):
        assert getattr(parareg, name) is not None
    assert parareg.register is parareg.registration.register
    assert parareg.Image.__name__ == "Image"


def test_unknown_attribute_is_an_attribute_error():
    try:
        parareg.no_such_name
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")
