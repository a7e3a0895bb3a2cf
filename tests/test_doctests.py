"""Every example in every module of ``src/parareg`` runs (``python -m pytest -q`` runs them).

Examples that need files the repository does not hold are marked
``# doctest: +SKIP`` where they are written. One test per module, so a failure
names the module; the modules are found by walking the package, so a new
module's examples run without being listed here.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import parareg

MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(parareg.__path__, "parareg."))


def test_the_walk_finds_the_package():
    assert {"parareg.registration.affine", "parareg.cli._common", "parareg.__main__"} <= set(
        MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = []
    for test in finder.find(module, name):
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)
