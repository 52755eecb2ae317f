"""The public surface: every name ``perflab`` exports resolves, to the object it names,
and ``import perflab`` alone stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import perflab


@pytest.mark.parametrize("name", perflab.__all__)
def test_every_exported_name_resolves(name):
    assert getattr(perflab, name) is not None


@pytest.mark.parametrize("name, module", sorted(perflab._NAMES.items()))
def test_exported_functions_are_their_modules_objects(name, module):
    assert getattr(perflab, name) is getattr(
        importlib.import_module(f"perflab.{module}"), name
    )
    assert callable(getattr(perflab, name))


@pytest.mark.parametrize("name", [*perflab._MODULES, "errors"])
def test_exported_modules_are_modules(name):
    assert getattr(perflab, name) is importlib.import_module(f"perflab.{name}")
    assert isinstance(getattr(perflab, name), types.ModuleType)


def test_no_name_is_both_a_module_and_a_function():
    # perflab.ingest is the package of readers: a function of that name would be
    # shadowed by it, the first time anything imports perflab.ingest
    assert not set(perflab._MODULES) & set(perflab._NAMES)


def test_the_command_lines_library_calls_are_exported():
    for name in ("check_run", "load_targets", "compare", "regressions", "trend"):
        assert name in perflab.__all__
    for name in ("fit_usl", "step_throughput", "users_at_target", "parse_shape"):
        assert name in perflab.__all__
    assert perflab.analyze_comparison.__module__ == "perflab.notebooks"


def test_dir_is_the_public_surface_and_unknown_names_fail():
    assert dir(perflab) == perflab.__all__
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        perflab.nothing_here  # noqa: B018


def test_import_perflab_pulls_in_nothing_heavy():
    code = (
        "import sys, perflab; "
        "print(sorted(m for m in ('pandas', 'matplotlib', 'papermill', 'locust', "
        "'gevent', 'scipy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
