"""Run the analysis notebooks on a run and turn the report notebook into HTML.

:func:`analyze` executes every notebook of ``notebooks/`` (``latency``, ``findings``,
``report``) with papermill, passing each the parameters it declares among ``run_dir``
(the run folder), ``out_dir`` (the output folder) and ``whole`` (analyse the whole run
instead of its steady state; False by default). It keeps each executed notebook
beside the report and converts the executed report notebook to a self-contained
``report.html`` with its code hidden and its figures embedded as base64 PNG images.
The report notebook writes ``report.md`` and the figures itself, through
:mod:`perflab.reporting`.

:func:`analyze_comparison` does the same for two runs with the ``compare`` notebook
(``base_dir``, ``candidate_dir``, ``out_dir``, ``threshold``): it writes
``comparison.md``, the figures, the executed notebook and ``compare.html``.

The notebooks run in the Jupyter kernel named ``python3``; it must start the Python
that runs perflab. ipykernel installs that kernel in the virtual environment, and
jupyter_client starts the current interpreter for a kernel whose command is plain
``python``. When the ``python3`` kernel found first names another interpreter, a
kernel for this one is installed in ``sys.prefix`` under :data:`KERNEL_NAME`.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from html import escape as html_escape
from pathlib import Path

import perflab
from perflab.checking import check_run
from perflab.comparing import RUN_NOISE, RunNoise
from perflab.errors import AnalysisError, PerflabError
from perflab.store import Run, open_run

log = logging.getLogger(__name__)

#: The notebooks, in the order they run; the last one writes the report.
NOTEBOOKS = ("latency", "findings", "report")

#: The notebook that compares two runs (see :func:`analyze_comparison`).
COMPARE_NOTEBOOK = "compare"

#: The kernel installed for this interpreter when ``python3`` names another one.
KERNEL_NAME = "perflab-python3"

DEFAULT_REPORTS = Path("reports")

_PYTHON_NAMES = {"python", "python3", f"python3.{sys.version_info.minor}"}


@dataclass
class AnalysisResult:
    """What :func:`analyze` wrote.

    Attributes
    ----------
    run_id
        The run analysed.
    out_dir
        The folder holding everything below.
    report_md, report_html
        The markdown report and its HTML rendering.
    notebooks
        The executed notebooks, in the order they ran.
    figures
        The PNG figures the report notebook saved.
    seconds
        Wall-clock time of the whole analysis, in seconds.
    """

    run_id: str
    out_dir: Path
    report_md: Path
    report_html: Path
    notebooks: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def default_notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder, found beside the package."""
    return Path(perflab.__file__).resolve().parent.parent / "notebooks"


def kernel_for_this_python() -> str:
    """Name of a Jupyter kernel that starts the interpreter running perflab.

    ``python3`` when the kernelspec found under that name starts ``python`` (which
    jupyter_client replaces by ``sys.executable``) or this very interpreter; else a
    kernelspec for this interpreter is installed into ``sys.prefix`` as
    :data:`KERNEL_NAME` and its name returned.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        spec = manager.get_kernel_spec("python3")
    except NoSuchKernel:
        spec = None
    if spec is not None and _starts_this_python(spec.argv):
        return "python3"

    try:
        spec = manager.get_kernel_spec(KERNEL_NAME)
        if _starts_this_python(spec.argv):
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    path = install(
        kernel_name=KERNEL_NAME,
        display_name=f"Python {sys.version_info.major}.{sys.version_info.minor} "
        "(perflab)",
        prefix=sys.prefix,
    )
    log.info(
        "installed Jupyter kernel %s for %s in %s", KERNEL_NAME, sys.executable, path
    )
    return KERNEL_NAME


def _starts_this_python(argv: list[str]) -> bool:
    if not argv:
        return False
    command = argv[0]
    if command in _PYTHON_NAMES:
        return True
    # compare without following symlinks: a virtual environment's python is a link
    # to the base interpreter, which lacks the environment's packages
    return os.path.abspath(command) == os.path.abspath(sys.executable)


def analyze(
    run: Run | str | Path,
    out_dir: Path | str | None = None,
    notebooks_dir: Path | str | None = None,
    kernel_name: str | None = None,
    timeout_s: float = 600.0,
    whole: bool = False,
) -> AnalysisResult:
    """Execute the analysis notebooks on a run and write its reports.

    Parameters
    ----------
    run
        A run, or its folder, or its id in the default store.
    out_dir
        Where to write; ``reports/<run_id>`` (relative to the working directory) by
        default. Created when missing.
    notebooks_dir
        Folder holding ``latency.ipynb``, ``findings.ipynb`` and ``report.ipynb``; the
        repository's ``notebooks/`` by default.
    kernel_name
        Jupyter kernel to run them in; by default one that starts this interpreter
        (see :func:`kernel_for_this_python`).
    timeout_s
        Longest time one cell may run, in seconds.
    whole
        Analyse the whole run, ramp-up and ramp-down included, instead of the steady
        state (:func:`perflab.windows.run_window`); passed to every notebook as its
        ``whole`` parameter.

    Returns
    -------
    AnalysisResult
        Paths of ``report.md``, ``report.html``, the executed notebooks and figures.

    Raises
    ------
    AnalysisError
        A notebook is missing or failed (the message names the notebook, the cell
        and its error), or the report was not written.
    """
    started = time.perf_counter()
    run = run if isinstance(run, Run) else open_run(run)
    out_dir = Path(out_dir) if out_dir is not None else DEFAULT_REPORTS / run.id
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    source_dir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    kernel = kernel_name or kernel_for_this_python()
    values = {
        "run_dir": str(run.path.resolve()),
        "out_dir": str(out_dir),
        "whole": bool(whole),
    }

    missing = [n for n in NOTEBOOKS if not (source_dir / f"{n}.ipynb").exists()]
    if missing:
        raise AnalysisError(
            f"The notebooks {', '.join(m + '.ipynb' for m in missing)} are not in "
            f"{source_dir}; pass notebooks_dir= the folder that holds them."
        )

    executed = []
    for name in NOTEBOOKS:
        source = source_dir / f"{name}.ipynb"
        log.info(
            "executing %s on run %s (%s)",
            source,
            run.id,
            "whole run" if whole else "steady state",
        )
        # pass each notebook only the parameters it declares
        declared = _declared(source)
        parameters = {k: v for k, v in values.items() if k in declared}
        executed.append(
            _execute(source, out_dir / source.name, parameters, kernel, timeout_s)
        )

    report_md = out_dir / "report.md"
    if not report_md.exists():
        raise AnalysisError(
            f"The report notebook ran but did not write {report_md}; check that "
            f"{source_dir / 'report.ipynb'} calls reporting.write_report(run, out_dir)."
        )
    report_html = write_html(
        out_dir / "report.ipynb",
        out_dir / "report.html",
        title=f"Load test report: {run.id}",
    )
    figures = sorted((out_dir / "figures").glob("*.png"))

    # the run catalog shows each analysed run's verdict against the plan's targets
    try:
        check_run(run, whole=whole).record(run)
    except PerflabError as exc:
        log.warning("run %s: its targets verdict was not recorded: %s", run.id, exc)

    seconds = time.perf_counter() - started
    log.info("analysed run %s in %.1f s; reports in %s", run.id, seconds, out_dir)
    return AnalysisResult(
        run_id=run.id,
        out_dir=out_dir,
        report_md=report_md,
        report_html=report_html,
        notebooks=executed,
        figures=figures,
        seconds=seconds,
    )


def _declared(source: Path) -> dict:
    """The parameters a notebook declares in its ``parameters`` cell."""
    import papermill

    try:
        return papermill.inspect_notebook(str(source))
    except Exception as exc:  # not JSON, not a notebook...
        raise AnalysisError(
            f"Notebook {source} cannot be read: {type(exc).__name__}: "
            f"{_plain(str(exc))}."
        ) from exc


def _execute(
    source: Path, target: Path, parameters: dict, kernel: str, timeout_s: float
) -> Path:
    """Execute one notebook with papermill into ``target``, in ``target``'s folder.

    Raises
    ------
    AnalysisError
        Naming the notebook, the failed cell and its error.
    """
    import papermill

    try:
        papermill.execute_notebook(
            str(source),
            str(target),
            parameters=parameters,
            kernel_name=kernel,
            cwd=str(target.parent),
            progress_bar=False,
            execution_timeout=timeout_s,
        )
    except papermill.PapermillExecutionError as exc:
        raise AnalysisError(
            f"Notebook {source.name} failed in cell In [{exc.exec_count}] "
            f"(cell {exc.cell_index + 1} of the executed notebook): "
            f"{exc.ename}: {_plain(exc.evalue)}. The partly executed notebook is "
            f"{target}."
        ) from None
    except Exception as exc:  # kernel died, bad notebook, missing kernel...
        raise AnalysisError(
            f"Notebook {source.name} could not be executed: "
            f"{type(exc).__name__}: {_plain(str(exc))}."
        ) from exc
    log.info("wrote executed notebook %s", target)
    return target


@dataclass
class ComparisonAnalysis:
    """What :func:`analyze_comparison` wrote.

    Attributes
    ----------
    base_id, candidate_id
        The two runs compared.
    out_dir
        The folder holding everything below.
    comparison_md
        The markdown comparison (:func:`perflab.comparing.write_comparison`).
    comparison_html
        The executed notebook as HTML, code hidden, figures embedded.
    notebook
        The executed ``compare.ipynb``.
    figures
        The PNG figures the notebook saved.
    seconds
        Wall-clock time, in seconds.
    """

    base_id: str
    candidate_id: str
    out_dir: Path
    comparison_md: Path
    comparison_html: Path
    notebook: Path
    figures: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def analyze_comparison(
    base: Run | str | Path,
    candidate: Run | str | Path,
    out_dir: Path | str | None = None,
    threshold: float = 0.05,
    whole: bool = False,
    notebooks_dir: Path | str | None = None,
    kernel_name: str | None = None,
    timeout_s: float = 600.0,
    run_noise: RunNoise = RUN_NOISE,
) -> ComparisonAnalysis:
    """Execute the ``compare`` notebook on two runs and write its outputs.

    Parameters
    ----------
    base, candidate
        The two runs, or their folders, or their ids in the default store.
    out_dir
        Where to write; ``reports/compare-<base>-<candidate>`` (relative to the
        working directory) by default. Created when missing.
    threshold
        The practical threshold, as a fraction (0.05 is 5 %); see
        :func:`perflab.comparing.compare`.
    whole
        Compare the whole runs instead of their steady states. The notebook must
        declare a ``whole`` parameter for this.
    notebooks_dir
        Folder holding ``compare.ipynb``; the repository's ``notebooks/`` by default.
    kernel_name
        Jupyter kernel to run it in (see :func:`kernel_for_this_python`).
    timeout_s
        Longest time one cell may run, in seconds.
    run_noise
        How much runs of one build differ as a whole; see
        :class:`perflab.comparing.RunNoise`. The notebook must declare
        ``run_noise_relative`` and ``run_noise_ms`` for any but the default.

    Returns
    -------
    ComparisonAnalysis
        Paths of ``comparison.md``, ``compare.html``, the executed notebook and its
        figures.

    Raises
    ------
    AnalysisError
        The notebook is missing, lacks a parameter asked for, failed (the message
        names the cell and its error), or did not write ``comparison.md``.
    """
    started = time.perf_counter()
    base = base if isinstance(base, Run) else open_run(base)
    candidate = candidate if isinstance(candidate, Run) else open_run(candidate)
    if out_dir is None:
        out_dir = DEFAULT_REPORTS / f"compare-{base.id}-{candidate.id}"
    out_dir = Path(out_dir).resolve()
    source_dir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    source = source_dir / f"{COMPARE_NOTEBOOK}.ipynb"
    if not source.exists():
        raise AnalysisError(
            f"The notebook {source.name} is not in {source_dir}; pass "
            "notebooks_dir= the folder that holds it."
        )
    declared = _declared(source)
    if whole and "whole" not in declared:
        raise AnalysisError(
            f"{source} has no 'whole' parameter, so it can only compare steady "
            "states; compare without whole, or add whole = False to its "
            "parameters cell."
        )
    noise_parameters = {"run_noise_relative", "run_noise_ms"}
    if run_noise != RUN_NOISE and not noise_parameters <= declared:
        raise AnalysisError(
            f"{source} has no run_noise_relative and run_noise_ms parameters, so it "
            f"can only use the default run noise ({RUN_NOISE}); add them to its "
            "parameters cell."
        )
    values = {
        "base_dir": str(base.path.resolve()),
        "candidate_dir": str(candidate.path.resolve()),
        "out_dir": str(out_dir),
        "threshold": float(threshold),
        "whole": bool(whole),
        "run_noise_relative": float(run_noise.relative),
        "run_noise_ms": float(run_noise.absolute_ms),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    kernel = kernel_name or kernel_for_this_python()

    log.info("executing %s on runs %s and %s", source, base.id, candidate.id)
    parameters = {k: v for k, v in values.items() if k in declared}
    notebook = _execute(source, out_dir / source.name, parameters, kernel, timeout_s)
    comparison_md = out_dir / "comparison.md"
    if not comparison_md.exists():
        raise AnalysisError(
            f"The compare notebook ran but did not write {comparison_md}; check that "
            f"{source} calls comparing.write_comparison(comparison, out_dir)."
        )
    html = write_html(
        notebook,
        out_dir / f"{COMPARE_NOTEBOOK}.html",
        title=f"Comparison: {candidate.id} against {base.id}",
    )

    seconds = time.perf_counter() - started
    log.info("compared runs in %.1f s; outputs in %s", seconds, out_dir)
    return ComparisonAnalysis(
        base_id=base.id,
        candidate_id=candidate.id,
        out_dir=out_dir,
        comparison_md=comparison_md,
        comparison_html=html,
        notebook=notebook,
        figures=sorted((out_dir / "figures").glob("*.png")),
        seconds=seconds,
    )


def write_html(
    notebook: Path | str, html: Path | str, title: str | None = None
) -> Path:
    """Convert an executed notebook to HTML without its code, images embedded.

    Parameters
    ----------
    notebook
        The executed notebook.
    html
        The HTML file to write.
    title
        The page title; the notebook's file name without extension by default.

    Raises
    ------
    AnalysisError
        The HTML links an image instead of embedding it.
    """
    import nbformat
    from nbconvert import HTMLExporter

    html = Path(html)
    exporter = HTMLExporter(
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        exclude_anchor_links=True,
        embed_images=True,
    )
    # nbconvert's lab template drops an image's alt text and puts a placeholder in its
    # place; put back the figures' own descriptions, in order
    exporter.log = log.getChild("html")
    node = nbformat.read(notebook, as_version=4)
    name = title or Path(notebook).stem
    body, _ = exporter.from_notebook_node(node, resources={"metadata": {"name": name}})
    for text in _alt_texts(node):
        body = body.replace(
            f'alt="{_PLACEHOLDER_ALT}"', f'alt="{html_escape(text, quote=True)}"', 1
        )
    linked = [
        src for src in _IMG_SRC.findall(body) if not src.startswith("data:image/")
    ]
    if linked:
        raise AnalysisError(
            f"{html.name} would link images instead of embedding them "
            f"({', '.join(linked[:3])}); it would not be self-contained."
        )
    html.write_text(body, encoding="utf-8")
    log.info("wrote %s", html)
    return html


_PLACEHOLDER_ALT = "No description has been provided for this image"


class _AltTextRestored(logging.Filter):
    """Drops nbconvert's missing-alt-text warning: write_html restores the text."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Alternative text is missing" not in record.getMessage()


log.getChild("html").addFilter(_AltTextRestored())


def _alt_texts(node) -> list[str]:
    """The alt text of each image output of a notebook, in order ("" when none)."""
    texts = []
    for cell in node.cells:
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                meta = output.get("metadata", {}).get("image/png", {})
                texts.append(meta.get("alt") or _PLACEHOLDER_ALT)
    return texts


_IMG_SRC = re.compile(r"<img[^>]*?\ssrc=[\"']([^\"']*)[\"']", re.IGNORECASE)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plain(text: str) -> str:
    """An error message without terminal colour codes or a trailing full stop."""
    return _ANSI.sub("", text or "").strip().rstrip(".")
