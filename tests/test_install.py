"""The installed package: compiled kernels, shipped files and docstring examples."""

import doctest
import importlib
import os

import pytest

import csmile

DOCTEST_MODULES = [
    "csmile.estimator",
    "csmile.data.images",
    "csmile.data.augment",
    "csmile.metrics",
    "csmile.progress",
]


def test_compiled_kernels_active_when_required():
    if os.environ.get("CSMILE_REQUIRE_COMPILED") != "1":
        pytest.skip("set CSMILE_REQUIRE_COMPILED=1 to require the compiled kernels")
    assert csmile.backend() == "cython"


@pytest.mark.parametrize("module_name", DOCTEST_MODULES)
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
