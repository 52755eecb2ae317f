"""Stages: parsing, the planned users over time, and what the Locust shape asks for."""

import pytest

from perflab.shapes import (
    Stage,
    format_stages,
    parse_duration,
    parse_stages,
    tick,
    total_duration,
    users_at,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30), ("30s", 30), ("2m", 120), ("1m30s", 90), ("1h", 3600), ("0.5s", 0.5)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "m"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_parse_stages_like_k6():
    stages = parse_stages("1m:100, 5m:500,1m:0")
    assert stages == [Stage(60, 100), Stage(300, 500), Stage(60, 0)]
    assert total_duration(stages) == 420
    assert parse_stages(format_stages(stages)) == stages


@pytest.mark.parametrize(
    ("text", "message"),
    [("10s", "Stage 1"), ("10s:5,abc:3", "Stage 2"), ("0s:5", "positive duration")],
)
def test_parse_stages_names_the_bad_stage(text, message):
    with pytest.raises(ValueError, match=message):
        parse_stages(text)


def test_users_ramp_linearly_and_end():
    stages = parse_stages("10s:20,40s:20,10s:0")
    assert users_at(stages, 0) == 0
    assert users_at(stages, 5) == 10
    assert users_at(stages, 30) == 20
    assert users_at(stages, 55) == 10
    assert users_at(stages, 60) is None


def test_shape_tick_follows_stages():
    stages = parse_stages("10s:20,10s:20,10s:0")
    assert tick(stages, 0) == (0, 2.0)
    assert tick(stages, 5) == (10, 2.0)
    assert tick(stages, 15) == (20, 1.0)  # holding: the spawn rate floor is 1 user/s
    assert tick(stages, 25) == (10, 2.0)
    assert tick(stages, 30) is None  # the run stops by itself


def test_nothing_imports_locust_into_the_calling_process():
    # Importing Locust monkey-patches the whole process with gevent, which breaks
    # threads and subprocesses of the caller (papermill, uvicorn, tests).
    import subprocess
    import sys

    code = (
        "import sys, perflab.cli, perflab.launching, perflab.ingest, perflab.shapes;"
        "print('locust' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
