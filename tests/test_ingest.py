"""Ingest orchestration: detection, raw copies, bad input, the recorder's files."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from perflab.errors import DataWarning, InputError
from perflab.ingest import ingest
from perflab.recording import REQUEST_COLUMNS, USERS_COLUMNS

RECORDED = (
    ",".join(REQUEST_COLUMNS)
    + "\n"
    + "1767225600.000000,GET,/a,200,12.5,100,,0\n"
    + "1767225600.500000,GET,/a,200,20.0,100,,1\n"
    + "1767225601.000000,POST,/b,500,7.25,10,HTTPError: 500 Server Error,0\n"
    + "1767225601.200000,POST,/b,,3.0,0,ConnectionRefusedError: refused,1\n"
)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_recorder_files_become_exact_tables(tmp_path, store):
    source = tmp_path / "perflab_requests-host-1.csv"
    source.write_text(RECORDED)
    users = tmp_path / "perflab_users.csv"
    users.write_text(",".join(USERS_COLUMNS) + "\n1767225600.0,2\n1767225601.0,2\n")
    run = ingest([tmp_path], store=store)

    requests = run.table("requests")
    assert len(requests) == 4
    assert list(requests["ok"]) == [True, True, False, False]
    assert requests["status"].isna().sum() == 1  # no response: null, never 0
    assert requests["worker"].unique().tolist() == ["host-1"]
    endpoints = run.table("endpoints").set_index("endpoint")
    assert endpoints.loc["GET /a", "p50"] == 12.5
    assert endpoints.loc["POST /b", "failures"] == 2
    errors = run.table("errors")
    assert set(errors["error"]) == {
        "HTTPError: 500 Server Error",
        "ConnectionRefusedError: refused",
    }
    assert run.meta["peak_users"] == 2
    assert run.meta["tables"]["endpoints"]["provenance"] == "exact"
    for name in (source.name, users.name):
        assert _sha(run.raw / name) == _sha(tmp_path / name)


def test_truncated_recorder_line_is_dropped_with_a_warning(tmp_path, store):
    source = tmp_path / "perflab_requests-host-1.csv"
    source.write_text(RECORDED + "1767225602.0,GET,/a,2")
    with pytest.warns(DataWarning, match=r"1 of 5 recorded rows"):
        run = ingest([source], store=store)
    assert len(run.table("requests")) == 4
    assert any("1 of 5" in w for w in run.meta["warnings"])


def test_empty_file_is_a_clear_error(tmp_path, store):
    empty = tmp_path / "results.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"results\.csv: The file is empty"):
        ingest([empty], store=store)
    assert list(store.iterdir()) == []


def test_a_file_that_is_not_an_export_is_named(tmp_path, store):
    other = tmp_path / "notes.csv"
    other.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(InputError, match=r"notes\.csv: This is not a load-test export"):
        ingest([other], store=store)


def test_missing_path(tmp_path, store):
    with pytest.raises(InputError, match="No such file"):
        ingest([tmp_path / "absent.csv"], store=store)


def test_unknown_format_option(tmp_path, store):
    source = tmp_path / "perflab_requests-x.csv"
    source.write_text(RECORDED)
    with pytest.raises(InputError, match="Unknown format"):
        ingest([source], store=store, fmt="excel")


def test_command_line_prints_errors_without_traceback(tmp_path):
    other = tmp_path / "notes.csv"
    other.write_text("a,b,c\n1,2,3\n")
    result = subprocess.run(
        [sys.executable, "-m", "perflab.cli", "--store", str(tmp_path / "runs"),
         "ingest", str(other)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "perflab: error:" in result.stderr and "notes.csv" in result.stderr
    assert "Traceback" not in result.stderr
