"""The examples in the metric functions' docstrings run, and give what they say."""

import doctest
import importlib
import inspect
import pkgutil

import pytest

import mfrkit.bench.metrics as metrics_package

MODULES = sorted(f"{metrics_package.__name__}.{m.name}" for m in pkgutil.iter_modules(metrics_package.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (run pytest --doctest-modules {name.replace('.', '/')}.py)"


def test_every_public_metric_function_has_an_example():
    missing = [name for name in metrics_package.__all__
               if inspect.isfunction(getattr(metrics_package, name)) and ">>>" not in (getattr(metrics_package, name).__doc__ or "")]
    assert missing == []
