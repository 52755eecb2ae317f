"""The notebooks: stored clean with one parameters cell, executed by papermill through
analyze() on a small synthetic run, and rendered to a self-contained HTML report."""

from __future__ import annotations

import re
import shutil
import sys

import nbformat
import pytest
from runfactory import make_run

from perflab import reporting
from perflab.errors import AnalysisError
from perflab.notebooks import (
    NOTEBOOKS,
    analyze,
    default_notebooks_dir,
    kernel_for_this_python,
)

IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_without_outputs_and_one_parameters_cell(name):
    nb = nbformat.read(default_notebooks_dir() / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)

    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert tagged[0].cell_type == "code"
    assert 'run_dir = ""' in tagged[0].source
    assert "whole = False" in tagged[0].source
    if name == "report":
        assert 'out_dir = ""' in tagged[0].source
    assert nb.cells[0].cell_type == "markdown"  # says what the notebook is for


def test_kernel_starts_this_interpreter():
    from jupyter_client.kernelspec import KernelSpecManager

    name = kernel_for_this_python()
    command = KernelSpecManager().get_kernel_spec(name).argv[0]
    # jupyter_client runs sys.executable for a kernel whose command is plain python
    assert command == "python" or command == sys.executable


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    store = tmp_path_factory.mktemp("runs")
    run = make_run(store)
    out_dir = tmp_path_factory.mktemp("reports") / run.id
    return run, analyze(run, out_dir=out_dir)


def test_analyze_writes_every_output(analysed):
    run, result = analysed

    assert result.run_id == run.id
    assert [p.name for p in result.notebooks] == [f"{n}.ipynb" for n in NOTEBOOKS]
    for path in result.notebooks:
        nb = nbformat.read(path, as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert outputs, f"{path.name} has no outputs"
        assert not [o for o in outputs if o.output_type == "error"]
    assert result.report_md.read_text() == reporting.render_markdown(run)
    assert {p.name for p in result.figures} == {
        "latency_histogram.png",
        "latency_ecdf.png",
        "latency_percentiles.png",
        "percentiles_over_time.png",
        "throughput_over_time.png",
        "resource_usage.png",
    }
    assert all(p.stat().st_size > 1000 for p in result.figures)


def test_latency_notebook_shows_every_figure(analysed):
    _, result = analysed
    nb = nbformat.read(result.out_dir / "latency.ipynb", as_version=4)
    alts = [
        output.metadata.get("image/png", {}).get("alt", "")
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert alts == [
        "Latency by percentile",
        "Latency over time (dashed: the steady-state window analysed)",
        "Cumulative latency distribution per endpoint",
        "Latency per endpoint (box p25-p75, whiskers p1-p99, x the max)",
        "Latency distribution per endpoint",
        "Latency percentiles over time",
        "Throughput and users over time",
    ]
    text = "".join(
        output.get("data", {}).get("text/markdown", "")
        for cell in nb.cells
        for output in cell.get("outputs", [])
    )
    assert "**Window analysed**: steady state" in text


def _tiny_notebook(source: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python"}
    parameters = nbformat.v4.new_code_cell('run_dir = ""\nout_dir = ""\nwhole = False')
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(source)]
    return nb


def test_analyze_passes_whole_to_every_notebook(tmp_path, store):
    # stand-in notebooks that record the parameter they were given
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name in NOTEBOOKS:
        target = "report.md" if name == "report" else f"{name}.txt"
        nbformat.write(
            _tiny_notebook(
                "from pathlib import Path\n"
                f"Path(out_dir, {target!r}).write_text(repr(whole))"
            ),
            notebooks / f"{name}.ipynb",
        )
    run = make_run(store)
    out = tmp_path / "out"
    result = analyze(run, out_dir=out, notebooks_dir=notebooks, whole=True)
    assert result.report_md.read_text() == "True"
    assert (out / "latency.txt").read_text() == "True"
    assert (out / "findings.txt").read_text() == "True"
    analyze(run, out_dir=out, notebooks_dir=notebooks)
    assert result.report_md.read_text() == "False"


def test_report_html_is_self_contained_without_code(analysed):
    _, result = analysed
    html = result.report_html.read_text()

    images = IMG.findall(html)
    assert images
    assert all('src="data:image/png;base64,' in tag for tag in images)
    assert all('alt="No description' not in tag for tag in images)
    assert "Load Test Results" in html and "Bottlenecks Identified" in html
    # no code: neither a code editor area nor the cells' source
    assert 'class="jp-CodeMirrorEditor' not in html
    assert "open_run(" not in html and "write_report(" not in html


def test_failing_notebook_raises_analysis_error(tmp_path, store):
    notebooks = tmp_path / "notebooks"
    shutil.copytree(default_notebooks_dir(), notebooks)
    broken = nbformat.read(notebooks / "latency.ipynb", as_version=4)
    broken.cells.insert(2, nbformat.v4.new_code_cell('raise ValueError("boom")'))
    nbformat.write(broken, notebooks / "latency.ipynb")

    with pytest.raises(AnalysisError) as caught:
        analyze(make_run(store), out_dir=tmp_path / "out", notebooks_dir=notebooks)
    message = str(caught.value)
    assert "latency.ipynb" in message and "ValueError: boom" in message
    assert "Traceback" not in message


def test_missing_notebooks_raise_analysis_error(tmp_path, store):
    with pytest.raises(AnalysisError, match="are not in"):
        analyze(make_run(store), out_dir=tmp_path / "out", notebooks_dir=tmp_path)
