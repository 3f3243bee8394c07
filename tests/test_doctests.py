"""The examples in the package's docstrings run and print what they say (ELLIPSIS allowed)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import perceptlab

MODULES = sorted(m.name for m in pkgutil.walk_packages(perceptlab.__path__, "perceptlab.")
                 if not m.name.endswith("__main__"))  # fmt: skip


def _with_examples() -> list[str]:
    out = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # an optional dependency (vmaf-torch, onnx, ...) is missing
            continue
        if any(t.examples for t in doctest.DocTestFinder().find(module)):
            out.append(name)
    return out


@pytest.mark.parametrize("name", _with_examples())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} fail (python -m doctest -v)"
