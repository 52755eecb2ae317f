"""Targets files: the plan's defaults, the matching rule, extending, and errors that
name the file and the line."""

from __future__ import annotations

import textwrap

import pytest

from perflab.errors import InputError
from perflab.targets import default_targets, load_targets, matches, parse_targets


def write(tmp_path, text: str, name: str = "targets.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_default_targets_are_the_plans_table():
    targets = {t.name: t for t in default_targets()}
    # the plan's "Performance Targets" table, row by row
    plan = {
        "POST /publications": (150, 300, 100),
        "GET /publications": (100, 200, 1000),
        "POST /subscribers": (150, 300, 100),
        "GET /analytics/engagement": (500, 1000, 100),
        "POST /alerts": (150, 300, 500),
    }
    for endpoint, (p95, p99, rps) in plan.items():
        assert targets[f"{endpoint} p95"].limit == p95
        assert targets[f"{endpoint} p95"].comparison == "<"
        assert targets[f"{endpoint} p99"].limit == p99
        assert targets[f"{endpoint} throughput"].limit == rps
        assert targets[f"{endpoint} throughput"].comparison == ">="
    # System-Wide Metrics and Resource Monitoring
    system = {t.metric: t for t in targets.values() if t.scope == "system"}
    assert system["error_rate_percent"].limit == 1
    assert system["db_connections"].limit == 200
    assert system["cache_hit_ratio_percent"].limit == 80
    assert system["cache_hit_ratio_percent"].direction == "min"
    assert system["db_pool_usage_percent"].limit == 80
    assert system["redis_memory_percent"].limit == 80
    assert system["p95_ms"].limit == 150
    assert targets["newsletter generation throughput"].limit == pytest.approx(
        1000 / 60, abs=0.01
    )
    assert all(t.source.rsplit(":", 1)[1].isdigit() for t in targets.values())


@pytest.mark.parametrize(
    ("spec", "label", "expected"),
    [
        ("POST /publications", "POST /api/v1/publications", True),
        ("POST /publications", "POST /publications", True),
        ("POST /publications", "GET /api/v1/publications", False),
        ("POST /publications", "POST /api/v1/publications/newsletter/schedule", False),
        ("GET /publications", "GET /api/v1/publications?limit=20", True),
        ("GET /publications", "GET /api/v1/publications/{id}", False),
        ("GET /publications", "GET /api/v1/mypublications", False),
        ("get /analytics/engagement", "GET /api/v1/analytics/engagement", True),
        ("/alerts", "POST /api/v1/alerts", True),
        ("POST /alerts", "POST /api/v1/alerts/", True),
    ],
)
def test_endpoint_matching_rule(spec, label, expected):
    assert matches(spec, label) is expected


def test_a_regex_target_chooses_endpoints_by_label():
    (target,) = parse_targets(
        "endpoints:\n  - match: '^GET .*publications'\n    p95_ms: 9\n"
    )[0]
    labels = ["GET /api/v1/publications?limit=20", "GET /api/v1/publications/{id}"]
    assert target.endpoints_in(labels + ["POST /api/v1/publications"]) == labels
    assert target.name == "^GET .*publications p95"


def test_max_rps_is_the_plans_name_for_min_throughput():
    (target,) = parse_targets(
        "endpoints:\n  - endpoint: POST /alerts\n    max_rps: 5\n"
    )[0]
    assert (target.metric, target.direction, target.limit) == (
        "throughput_rps",
        "min",
        5,
    )
    assert target.passes(5) and not target.passes(4.9)
    assert target.margin(6) == 1


def test_a_users_file_extends_the_defaults(tmp_path):
    path = write(
        tmp_path,
        """
        extends: default
        endpoints:
          - endpoint: POST /publications
            p95_ms: 200
          - endpoint: GET /health
            p99_ms: 50
        """,
    )
    default = default_targets()
    targets = load_targets(path)
    by_name = {t.name: t for t in targets}
    assert len(targets) == len(default) + 1
    assert by_name["POST /publications p95"].limit == 200  # replaced
    assert by_name["POST /publications p95"].source == f"{path}:4"
    assert by_name["POST /publications p99"].limit == 300  # kept
    assert by_name["GET /health p99"].limit == 50  # added
    assert targets.sources[-1] == str(path)


def test_a_file_can_replace_the_defaults(tmp_path):
    body = "endpoints:\n  - endpoint: GET /health\n    p99_ms: 50\n"
    path = write(tmp_path, body)
    assert load_targets(path, extend_default=False).names() == ["GET /health p99"]
    assert len(load_targets(path)) == len(default_targets()) + 1
    path = write(tmp_path, "extends: none\n" + body, "own.yaml")
    assert load_targets(path, extend_default=True).names() == ["GET /health p99"]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("endpoints:\n  - endpoint: GET /a\n    p95: 100\n", 3, "Unknown key 'p95'"),
        ("system:\n  max_error_rate: 1\n", 2, "Unknown key 'max_error_rate'"),
        ("endpoint:\n  - endpoint: GET /a\n", 1, "Unknown key 'endpoint'"),
        ("endpoints:\n  - endpoint: GET /a\n    p95_ms: 150ms\n", 3, "a number"),
        ("endpoints:\n  - endpoint: GET /a\n    p95_ms: -1\n", 3, "positive"),
        ("system:\n  max_db_connections: true\n", 2, "a number"),
        ("endpoints:\n  - endpoint: GET /a\n", 2, "sets no limit"),
        ("endpoints:\n  - p95_ms: 100\n", 2, "exactly one of"),
        ("endpoints:\n  - match: '('\n    p95_ms: 1\n", 2, "not a regular"),
        ("system:\n  max_p95_ms: 1\n  max_p95_ms: 2\n", 3, "appears twice"),
        ("system: [1, 2\n", 2, "not valid YAML"),
        ("extends: mine\n", 1, "extends must be"),
        (
            "endpoints:\n  - endpoint: GET /a\n    max_rps: 1\n"
            "    min_throughput_rps: 1\n",
            3,
            "give one of them",
        ),
    ],
)
def test_mistakes_name_the_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_targets(path)
    assert caught.value.path == path
    assert caught.value.line == line
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_a_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot be read"):
        load_targets(tmp_path / "absent.yaml")
