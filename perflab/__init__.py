"""perflab: a notebook-driven workbench for analysing HTTP load tests.

The public surface is what this module exports (``__all__``); notebooks use only that.
Modules and functions are imported on first use, so ``import perflab`` stays fast and
does not pull in matplotlib, papermill or Locust until they are needed.

>>> import perflab
>>> run = perflab.open_run("data/runs/<run_id>")          # doctest: +SKIP
>>> perflab.statistics.endpoint_table(run.table("requests"))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public modules, one per step of the flow.
_MODULES = (
    "capacity",
    "catalog",
    "checking",
    "comparing",
    "findings",
    "ingest",
    "launching",
    "monitoring",
    "notebooks",
    "omission",
    "plotting",
    "reporting",
    "shapes",
    "statistics",
    "store",
    "targets",
    "windows",
)

#: Public functions and classes, and the module each one lives in. A name here must
#: not also be a module's name: ``perflab.ingest`` is the package of readers (its
#: function is ``perflab.ingest.ingest``) and ``perflab.catalog`` the catalog module
#: (``perflab.catalog.catalog``).
_NAMES = {
    "Run": "store",
    "open_run": "store",
    "create_run": "store",
    "list_runs": "store",
    "LocustOptions": "launching",
    "run_locust": "launching",
    "parse_shape": "shapes",
    "analyze": "notebooks",
    "analyze_comparison": "notebooks",
    "find": "findings",
    "percentiles": "statistics",
    "percentile_intervals": "statistics",
    "endpoint_table": "statistics",
    "interval_table": "statistics",
    "run_window": "windows",
    "detect_omission": "omission",
    "render_markdown": "reporting",
    "write_report": "reporting",
    "check_run": "checking",
    "load_targets": "targets",
    "compare": "comparing",
    "regressions": "comparing",
    "write_comparison": "comparing",
    "trend": "catalog",
    "step_throughput": "capacity",
    "fit_usl": "capacity",
    "users_at_target": "capacity",
    "PerflabError": "errors",
    "PerflabWarning": "errors",
}

__all__ = sorted([*_MODULES, *_NAMES, "errors", "__version__"])


def __getattr__(name: str):
    if name in _MODULES or name == "errors":
        module = importlib.import_module(f"perflab.{name}")
    elif name in _NAMES:
        module = importlib.import_module(f"perflab.{_NAMES[name]}")
        module = getattr(module, name)
    else:
        raise AttributeError(f"module 'perflab' has no attribute {name!r}")
    globals()[name] = module
    return module


def __dir__() -> list[str]:
    return __all__
