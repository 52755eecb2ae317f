"""Targets: the thresholds a run is checked against, read from a YAML file.

perflab ships the load-testing plan's targets (``perflab/data/targets.yaml``): its
"Performance Targets" table per endpoint and its system-wide limits. A user's file
either replaces them or extends them (``extends: default`` in the file, or
``extend_default=True`` in :func:`load_targets`). A file looks like::

    extends: default          # optional; "none" replaces the default targets
    endpoints:
      - endpoint: POST /publications      # as the plan writes it
        p95_ms: 150
        p99_ms: 300
        min_throughput_rps: 100           # the plan's "Max RPS" (max_rps also works)
      - name: any publication read        # optional; defaults to the endpoint
        match: '^GET /api/v1/publications' # a regex instead of endpoint
        p95_ms: 100
    system:
      max_error_rate_percent: 1
      max_db_connections: 200

Endpoint keys
-------------
``endpoint``
    ``"METHOD /path"``. It matches a run's endpoint label ``"METHOD name"`` when the
    methods are equal (case-insensitive) and the label's path without its query
    string is the target's path or ends with it at a ``/``: ``POST /publications``
    matches ``POST /api/v1/publications`` but not
    ``POST /api/v1/publications/newsletter/schedule``; ``GET /publications`` matches
    ``GET /api/v1/publications?limit=20``. A path alone (no method) matches every
    method. When several endpoints match, their requests are checked together.
``match``
    A regular expression searched in the run's endpoint labels, instead of
    ``endpoint``.
``name``
    The target's name in reports; by default the ``endpoint`` text or the regex.
``p50_ms``, ``p90_ms``, ``p95_ms``, ``p99_ms``, ``p99_9_ms``
    The latency percentile must stay below this many milliseconds.
``min_throughput_rps`` (or ``max_rps``, the plan's name)
    The rate the endpoint must sustain: its *successful* requests per second over
    the window must reach it. The plan's "Max RPS" column is the capacity an
    endpoint must handle, so it is a minimum the run has to show, not a cap; a run
    that never offered that much load cannot show it and fails the target.
``max_error_rate_percent``
    Failed / all requests of the endpoint, in percent, must stay below it.

System keys
-----------
``max_p95_ms``, ``max_p99_ms``
    Latency percentile over all requests.
``max_error_rate_percent``
    Failed / all requests, in percent.
``max_db_connections``
    Peak PostgreSQL client connections (the ``postgres`` probe's ``connections``).
``max_db_pool_usage_percent``
    Peak connections in use of the service's pool, in percent of its size (the
    service's ``perflab_db_pool_in_use`` / ``perflab_db_pool_size`` gauges).
``min_cache_hit_ratio_percent``
    Redis keyspace hits / lookups over the window, in percent.
``max_redis_memory_percent``
    Peak Redis memory in percent of its ``maxmemory``.
``max_load_generator_cpu_percent``
    Peak CPU of the busiest load generator process (100 is one core).

A maximum passes when the measured value is below it; a minimum when the value
reaches it. Unknown keys and malformed values are :class:`~perflab.errors.InputError`
naming the file and the line.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from perflab.errors import InputError

log = logging.getLogger(__name__)

#: The shipped targets, the plan's (package data of ``perflab``).
DEFAULT_TARGETS = "data/targets.yaml"

#: Endpoint keys holding a latency limit: key -> percentile column.
LATENCY_KEYS = {
    "p50_ms": "p50",
    "p90_ms": "p90",
    "p95_ms": "p95",
    "p99_ms": "p99",
    "p99_9_ms": "p99_9",
}

#: Endpoint keys holding a limit: key -> (metric, direction).
ENDPOINT_LIMITS: dict[str, tuple[str, str]] = {
    **{key: (key, "max") for key in LATENCY_KEYS},
    "min_throughput_rps": ("throughput_rps", "min"),
    "max_rps": ("throughput_rps", "min"),
    "max_error_rate_percent": ("error_rate_percent", "max"),
}

ENDPOINT_KEYS = {"endpoint", "match", "name", *ENDPOINT_LIMITS}

#: System keys: key -> (metric, direction).
SYSTEM_LIMITS: dict[str, tuple[str, str]] = {
    "max_p95_ms": ("p95_ms", "max"),
    "max_p99_ms": ("p99_ms", "max"),
    "max_error_rate_percent": ("error_rate_percent", "max"),
    "max_db_connections": ("db_connections", "max"),
    "max_db_pool_usage_percent": ("db_pool_usage_percent", "max"),
    "min_cache_hit_ratio_percent": ("cache_hit_ratio_percent", "min"),
    "max_redis_memory_percent": ("redis_memory_percent", "max"),
    "max_load_generator_cpu_percent": ("load_generator_cpu_percent", "max"),
}

TOP_KEYS = {"extends", "endpoints", "system"}


@dataclass(frozen=True)
class Target:
    """One threshold: a metric of an endpoint (or of the whole system) and its limit.

    Attributes
    ----------
    name
        What reports call it, such as ``POST /publications p95``.
    scope
        ``"endpoint"`` or ``"system"``.
    metric
        ``p95_ms`` (and the other percentiles), ``throughput_rps``,
        ``error_rate_percent``, ``db_connections``, ``db_pool_usage_percent``,
        ``cache_hit_ratio_percent``, ``redis_memory_percent`` or
        ``load_generator_cpu_percent``.
    limit
        The threshold, in the metric's unit.
    direction
        ``"max"`` (the value must stay below the limit) or ``"min"`` (it must reach
        it).
    endpoint
        The endpoint as written in the file (``POST /publications``), or None.
    match
        The regular expression choosing endpoints, or None.
    source
        ``file:line`` where the threshold was written.
    """

    name: str
    scope: str
    metric: str
    limit: float
    direction: str
    endpoint: str | None = None
    match: str | None = None
    source: str = ""

    @property
    def comparison(self) -> str:
        """``"<"`` for a maximum, ``">="`` for a minimum."""
        return "<" if self.direction == "max" else ">="

    def passes(self, value: float) -> bool:
        """Whether a measured value meets the threshold."""
        return value < self.limit if self.direction == "max" else value >= self.limit

    def margin(self, value: float) -> float:
        """Headroom: how far the value is on the good side (negative: failing)."""
        return self.limit - value if self.direction == "max" else value - self.limit

    def endpoints_in(self, labels) -> list[str]:
        """The endpoint labels of a run this target concerns (see the module doc)."""
        if self.scope != "endpoint":
            return []
        if self.match is not None:
            pattern = re.compile(self.match)
            return [label for label in labels if pattern.search(str(label))]
        return [label for label in labels if matches(self.endpoint or "", label)]


@dataclass
class Targets:
    """A set of thresholds and the files they were read from."""

    targets: list[Target] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __iter__(self):
        return iter(self.targets)

    def __len__(self) -> int:
        return len(self.targets)

    def names(self) -> list[str]:
        return [t.name for t in self.targets]


def _split(text: str) -> tuple[str | None, str]:
    """``"POST /a/b?x=1"`` -> ``("POST", "/a/b")``; a bare path has no method."""
    text = text.strip()
    method, _, rest = text.partition(" ")
    if rest and not method.startswith("/"):
        path = rest.strip()
    else:
        method, path = None, text
    return (method.upper() if method else None), path.split("?", 1)[0].rstrip("/")


def matches(spec: str, label: str) -> bool:
    """Whether a target's ``endpoint`` matches a run's endpoint label.

    Parameters
    ----------
    spec
        ``"METHOD /path"`` or ``"/path"``, as written in a targets file.
    label
        A run's endpoint label, ``"METHOD name"``.

    Returns
    -------
    bool
        True when the methods agree (or the spec has none) and the label's path
        without its query string equals the spec's path or ends with it at a ``/``.
    """
    spec_method, spec_path = _split(spec)
    label_method, label_path = _split(str(label))
    if spec_method is not None and spec_method != label_method:
        return False
    if not spec_path:
        return False
    return label_path == spec_path or label_path.endswith(
        spec_path if spec_path.startswith("/") else "/" + spec_path
    )


# -- reading -----------------------------------------------------------------------


class _Mapping(dict):
    """A YAML mapping that remembers its line and the lines of its keys (1-based)."""

    line: int = 0
    key_lines: dict[str, int]


class _Loader(yaml.SafeLoader):
    """A safe loader whose mappings keep line numbers and refuse duplicate keys."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Mapping:
    loader.flatten_mapping(node)
    key_lines: dict[str, int] = {}
    for key_node, _ in node.value:
        key = key_node.value
        if key in key_lines:
            raise InputError(
                f"The key {key!r} appears twice in one mapping (first on line "
                f"{key_lines[key]}); keep one.",
                loader.name,
                key_node.start_mark.line + 1,
            )
        key_lines[key] = key_node.start_mark.line + 1
    mapping = _Mapping(yaml.SafeLoader.construct_mapping(loader, node, deep=True))
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = key_lines
    return mapping


_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def _read_yaml(text: str, where: str) -> Any:
    loader = _Loader(text)
    loader.name = where
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise InputError(
            f"The targets file is not valid YAML: {exc.problem or exc}.", where, line
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(f"The targets file is not valid YAML: {exc}.", where) from None
    finally:
        loader.dispose()


def _limit(value: Any, key: str, where: str, line: int) -> float:
    """A threshold value: a plain positive number (``150``, not ``"150ms"``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(
            f"{key} must be a number, not {value!r}; write it without a unit "
            f"(the unit is in the key's name), for example {key}: 150.",
            where,
            line,
        )
    if not value > 0 or value != value or value == float("inf"):
        raise InputError(
            f"{key} must be a positive number, not {value!r}.", where, line
        )
    return float(value)


def _unknown(mapping: _Mapping, known: set[str], what: str, where: str) -> None:
    for key in mapping:
        if key not in known:
            raise InputError(
                f"Unknown key {key!r} in {what}; the keys are "
                f"{', '.join(sorted(known))}.",
                where,
                mapping.key_lines.get(key, mapping.line),
            )


def _endpoint_targets(items: Any, where: str, line: int) -> list[Target]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise InputError(
            "endpoints must be a list of mappings, each starting with "
            "'- endpoint: METHOD /path'.",
            where,
            line,
        )
    targets = []
    for item in items:
        if not isinstance(item, _Mapping):
            raise InputError(
                f"Each endpoint target must be a mapping with an endpoint and its "
                f"limits, not {item!r}.",
                where,
                line,
            )
        _unknown(item, ENDPOINT_KEYS, "an endpoint target", where)
        endpoint, pattern = item.get("endpoint"), item.get("match")
        if (endpoint is None) == (pattern is None):
            raise InputError(
                "An endpoint target needs exactly one of 'endpoint: METHOD /path' "
                "and 'match: REGEX'.",
                where,
                item.line,
            )
        for key, value in (("endpoint", endpoint), ("match", pattern)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InputError(
                    f"{key} must be a non-empty text, not {value!r}.",
                    where,
                    item.key_lines[key],
                )
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InputError(
                    f"match {pattern!r} is not a regular expression: {exc}.",
                    where,
                    item.key_lines["match"],
                ) from None
        if "min_throughput_rps" in item and "max_rps" in item:
            raise InputError(
                "max_rps is the plan's name for min_throughput_rps; give one of them.",
                where,
                item.key_lines["max_rps"],
            )
        label = str(item.get("name") or endpoint or pattern).strip()
        limits = [k for k in item if k in ENDPOINT_LIMITS]
        if not limits:
            raise InputError(
                f"The endpoint target {label!r} sets no limit; give at least one of "
                f"{', '.join(sorted(ENDPOINT_LIMITS))}.",
                where,
                item.line,
            )
        for key in limits:
            key_line = item.key_lines[key]
            metric, direction = ENDPOINT_LIMITS[key]
            suffix = LATENCY_KEYS.get(key) or metric.removesuffix("_percent").replace(
                "_rps", ""
            )
            targets.append(
                Target(
                    name=f"{label} {suffix}",
                    scope="endpoint",
                    metric=metric,
                    limit=_limit(item[key], key, where, key_line),
                    direction=direction,
                    endpoint=endpoint.strip() if endpoint else None,
                    match=pattern,
                    source=f"{where}:{key_line}",
                )
            )
    return targets


def _system_targets(mapping: Any, where: str, line: int) -> list[Target]:
    if mapping is None:
        return []
    if not isinstance(mapping, _Mapping):
        raise InputError(
            "system must be a mapping of limits, such as max_error_rate_percent: 1.",
            where,
            line,
        )
    _unknown(mapping, set(SYSTEM_LIMITS), "system", where)
    targets = []
    for key, value in mapping.items():
        metric, direction = SYSTEM_LIMITS[key]
        key_line = mapping.key_lines[key]
        targets.append(
            Target(
                name=f"system {metric}",
                scope="system",
                metric=metric,
                limit=_limit(value, key, where, key_line),
                direction=direction,
                source=f"{where}:{key_line}",
            )
        )
    return targets


def parse_targets(text: str, where: str = "<targets>") -> tuple[list[Target], str]:
    """Read the targets in a YAML text.

    Parameters
    ----------
    text
        The file's content.
    where
        The file's name, put in error messages and in each target's ``source``.

    Returns
    -------
    tuple
        The targets in file order, and the file's ``extends`` value (``"default"``,
        ``"none"``, or ``""`` when absent).

    Raises
    ------
    InputError
        Naming the file and line of an unknown key or a malformed value.
    """
    data = _read_yaml(text, where)
    if data is None:
        return [], ""
    if not isinstance(data, _Mapping):
        raise InputError(
            "A targets file must be a mapping with 'endpoints' and/or 'system'.",
            where,
            1,
        )
    _unknown(data, TOP_KEYS, "the targets file", where)
    extends = data.get("extends", "")
    if extends not in ("", "default", "none", None):
        raise InputError(
            f"extends must be 'default' or 'none', not {extends!r}.",
            where,
            data.key_lines["extends"],
        )
    targets = _endpoint_targets(
        data.get("endpoints"), where, data.key_lines.get("endpoints", data.line)
    ) + _system_targets(
        data.get("system"), where, data.key_lines.get("system", data.line)
    )
    names = {}
    for target in targets:
        if target.name in names:
            raise InputError(
                f"Two targets are named {target.name!r} (the other is at "
                f"{names[target.name]}); give one a distinct name: key.",
                where,
                int(target.source.rsplit(":", 1)[1]),
            )
        names[target.name] = target.source
    return targets, extends or ""


def default_targets() -> Targets:
    """The plan's targets, shipped with perflab."""
    resource = resources.files("perflab").joinpath(DEFAULT_TARGETS)
    targets, _ = parse_targets(resource.read_text(encoding="utf-8"), str(resource))
    return Targets(targets, [str(resource)])


def load_targets(
    path: str | Path | None = None, extend_default: bool = True
) -> Targets:
    """The targets to check a run against.

    Parameters
    ----------
    path
        A targets file; None gives the plan's targets (:func:`default_targets`).
    extend_default
        Whether the file extends the default targets (its targets replace default
        ones of the same name and add the others) or replaces them, when the file
        does not say so itself: a file's ``extends: default`` or ``extends: none``
        wins over this argument.

    Returns
    -------
    Targets

    Raises
    ------
    InputError
        When the file cannot be read, or has an unknown key or a malformed value
        (with its line).
    """
    if path is None:
        return default_targets()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"The targets file cannot be read ({exc.strerror or exc}).", path
        ) from None
    own, extends = parse_targets(text, str(path))
    log.info("read %d targets from %s", len(own), path)
    extend = extend_default if not extends else extends == "default"
    if not extend:
        return Targets(own, [str(path)])
    base = default_targets()
    replaced = {t.name: t for t in own}
    merged = [replaced.pop(t.name, t) for t in base.targets]
    merged += [t for t in own if t.name in replaced]
    return Targets(merged, [*base.sources, str(path)])
