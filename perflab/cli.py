"""The ``perflab`` command line.

Each subcommand is one step of the flow (see DESIGN.md): ``serve`` and ``seed`` the
sample service, ``run`` a load test, ``ingest`` exports, ``analyze`` a run into a
report, ``check`` a run against its targets (the CI gate), ``compare`` two runs,
``runs`` to list the store, and ``demo`` to do all of it on this machine.

Exit status: 0 when the command did its job (and, for ``check``, every target that
could be evaluated passed, at least one could, and nothing regressed); 1 when a
``check`` failed or judged nothing, or a ``run`` did not complete; 2 for a usage or
input error: errors perflab raises on purpose and malformed options are printed as
one message, without a traceback.
perflab's warnings (caveats about the numbers) are printed as ``warning:`` lines.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import warnings
from pathlib import Path

from perflab import __version__
from perflab.errors import InputError, PerflabError, PerflabWarning
from perflab.shapes import DEFAULT_STAGES
from perflab.store import DEFAULT_STORE

log = logging.getLogger("perflab")

DEFAULT_REPORTS = Path("reports")


def _shape(text: str):
    from perflab.shapes import parse_shape

    try:
        return parse_shape(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _threshold(text: str) -> float:
    """A practical threshold: a fraction (``0.05``) or a percentage (``5%``)."""
    number = text.strip()
    try:
        value = float(number.removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number; write the threshold as a fraction, for "
            "example 0.05 (or 5%)"
        ) from None
    if number.endswith("%"):
        value /= 100
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a fraction from 0 to 1; 0.05 (or 5%) is a 5 % threshold"
        )
    return value


def _positive(text: str, unit: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number of {unit}"
        ) from None
    return value


def _positive_seconds(text: str) -> float:
    return _positive(text, "seconds")


def _positive_ms(text: str) -> float:
    return _positive(text, "milliseconds")


def _wait(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    try:
        pair = float(low), float(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not MIN,MAX seconds, for example 1,2"
        ) from None
    if pair[0] < 0 or pair[1] < pair[0]:
        raise argparse.ArgumentTypeError("think time needs 0 <= MIN <= MAX")
    return pair


def _duration(text: str) -> float:
    from perflab.shapes import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_service_options(parser: argparse.ArgumentParser) -> None:
    from perflab.service import add_arguments

    add_arguments(parser.add_argument_group("sample service"))


def _service_settings(args):
    from perflab.service import settings_from_arguments

    return settings_from_arguments(args)


def _add_probe_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("resource monitor")
    group.add_argument("--target-pid", type=int, help="PID of the service to monitor")
    group.add_argument(
        "--target-match", help="regular expression matching the service's command"
    )
    group.add_argument("--target-name", help="process name of the service")
    group.add_argument("--postgres", metavar="DSN", help="PostgreSQL to monitor")
    group.add_argument("--redis", metavar="URL", help="Redis to monitor")
    group.add_argument(
        "--redis-list",
        action="append",
        default=[],
        metavar="NAME",
        help="a Redis list whose length to record (a Celery queue); repeatable",
    )
    group.add_argument(
        "--prometheus",
        action="append",
        default=[],
        metavar="[NAME=]URL",
        help="a Prometheus metrics page to record; repeatable",
    )


def _run_noise(text: str):
    """Run noise as ``RELATIVE,MS``: ``1%,0.12ms`` or ``0.01,0.12``; ``0,0`` is none."""
    from perflab.comparing import RunNoise

    parts = [part.strip() for part in text.split(",")]
    usage = (
        "write the run noise as RELATIVE,MS, for example 1%,0.12ms (a proportional "
        "part and a part in ms; 0,0 for none)"
    )
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"{text!r}: {usage}")
    relative, absolute = parts
    try:
        value = float(relative.removesuffix("%"))
        absolute_ms = float(absolute.removesuffix("ms"))
        return RunNoise(value / 100 if relative.endswith("%") else value, absolute_ms)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {usage}") from None


def _add_comparison_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold",
        type=_threshold,
        default=0.05,
        metavar="FRACTION",
        help="practical threshold: a smaller significant change is no regression "
        "(default 0.05, that is 5%%)",
    )
    parser.add_argument(
        "--whole",
        action="store_true",
        help="use the whole runs, ramps included, instead of their steady states",
    )
    parser.add_argument(
        "--run-noise",
        type=_run_noise,
        default=None,
        metavar="REL,MS",
        help="how much runs of one build differ as a whole, added to every latency "
        "test: a proportional part and a part in ms (default: measured on the "
        "sample service, see `perflab noise`; 0,0 for none)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perflab",
        description="Analyse HTTP load tests: run, ingest, analyze, report.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only warnings and errors"
    )
    parser.add_argument(
        "--store",
        type=Path,
        default=DEFAULT_STORE,
        help=f"the run store folder (default {DEFAULT_STORE})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="start the sample service")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)"
    )
    _add_service_options(serve)
    serve.set_defaults(func=cmd_serve)

    seed = commands.add_parser("seed", help="fill the sample service with test data")
    seed.add_argument("--count", type=int, default=100_000, help="subscribers")
    seed.add_argument("--db-path", type=Path, help="SQLite database file")
    seed.add_argument("--database-url", help="PostgreSQL DSN instead of SQLite")
    seed.set_defaults(func=cmd_seed)

    run = commands.add_parser("run", help="run a headless Locust load test")
    run.add_argument("--host", required=True, help="base URL of the service")
    run.add_argument(
        "--scenario",
        default="plan",
        help="newsletter, alerts, publications, analytics, plan, or a locustfile",
    )
    run.add_argument(
        "--shape",
        "--stages",
        dest="shape",
        type=_shape,
        default=DEFAULT_STAGES,
        metavar="SPEC",
        help="the load shape: stages DURATION:USERS,... as in k6, or a step load "
        "steps:START:STEP:COUNT:HOLD[:RAMP] such as steps:2:2:6:30s "
        f"(default {DEFAULT_STAGES})",
    )
    run.add_argument("--processes", type=int, default=1, help="Locust processes")
    run.add_argument(
        "--wait", type=_wait, default=(1.0, 2.0), help="think time MIN,MAX seconds"
    )
    run.add_argument(
        "--pace",
        type=_positive_seconds,
        metavar="SECONDS",
        help="instead of a think time, each user starts one task every SECONDS "
        "(an intended rate: the report then corrects for coordinated omission)",
    )
    _add_probe_options(run)
    run.add_argument("--env", default="local", help="environment label for reports")
    run.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a host that is not this machine (you need permission to load it)",
    )
    run.add_argument("--run-id", help="id of the new run (default: generated)")
    run.add_argument(
        "--analyze", action="store_true", help="analyze the run when it ends"
    )
    run.set_defaults(func=cmd_run)

    ingest = commands.add_parser(
        "ingest", help="turn Locust, k6, JMeter or Gatling exports into a run"
    )
    ingest.add_argument(
        "paths", nargs="+", type=Path, help="export files, a folder, or a run folder"
    )
    ingest.add_argument("--format", dest="fmt", help="skip detection: the format")
    ingest.add_argument("--encoding", help="text encoding (default: detected)")
    ingest.add_argument("--run-id", help="id of the new run (default: generated)")
    ingest.add_argument("--env", help="environment label for reports")
    ingest.add_argument(
        "--expected-interval-ms",
        type=_positive_ms,
        metavar="MS",
        help="the intended interval between one user's requests, when the test "
        "paced them (a constant-throughput timer): the report then corrects for "
        "coordinated omission",
    )
    ingest.set_defaults(func=cmd_ingest)

    analyze = commands.add_parser(
        "analyze", help="run the notebooks on a run and write its report"
    )
    analyze.add_argument("run", help="run id or run folder")
    analyze.add_argument(
        "--out", type=Path, help="report folder (default reports/<run_id>)"
    )
    analyze.add_argument(
        "--whole",
        action="store_true",
        help="analyse the whole run, ramps included, instead of its steady state",
    )
    analyze.set_defaults(func=cmd_analyze)

    check = commands.add_parser(
        "check",
        help="check a run against its targets (exit 1 when one fails)",
        description="Check a run against the targets (the plan's, or a file's) and, "
        "with --baseline, against an earlier run. Exits 1 when a target fails, "
        "a metric regressed, or no target could be evaluated, 0 otherwise; a "
        "target the run cannot judge is shown as not evaluable, with the reason.",
    )
    check.add_argument("run", help="run id or run folder")
    check.add_argument(
        "--targets",
        type=Path,
        metavar="FILE",
        help="a targets YAML file; it extends the plan's targets unless it says "
        "'extends: none' or --replace-default is given (default: the plan's)",
    )
    check.add_argument(
        "--replace-default",
        action="store_true",
        help="check only the targets of --targets FILE, not the plan's too (a "
        "file's own 'extends:' wins)",
    )
    check.add_argument(
        "--junit", type=Path, metavar="PATH", help="write JUnit XML for CI here"
    )
    check.add_argument(
        "--markdown", type=Path, metavar="PATH", help="write the tables as markdown"
    )
    check.add_argument(
        "--baseline",
        metavar="BASE",
        help="also compare with this run (id or folder); a regression fails the check",
    )
    _add_comparison_options(check)
    check.set_defaults(func=cmd_check)

    compare = commands.add_parser(
        "compare", help="compare a candidate run with a base run"
    )
    compare.add_argument("base", help="base run id or folder")
    compare.add_argument("candidate", help="candidate run id or folder")
    _add_comparison_options(compare)
    compare.add_argument(
        "--out",
        type=Path,
        help="output folder (default reports/compare-<base>-<candidate>)",
    )
    compare.add_argument(
        "--notebook",
        action="store_true",
        help="also execute the compare notebook: figures and compare.html",
    )
    compare.set_defaults(func=cmd_compare)

    noise = commands.add_parser(
        "noise",
        help="measure run-to-run noise from repeated runs of one build",
        description="Estimate how much runs of one build, under one load, differ "
        "as a whole (beyond the variation inside each run), from three or more "
        "such runs; prints the value to pass to compare and check as --run-noise.",
    )
    noise.add_argument("runs", nargs="+", help="run ids or folders (three or more)")
    noise.add_argument(
        "--whole",
        action="store_true",
        help="use the whole runs, ramps included, instead of their steady states",
    )
    noise.set_defaults(func=cmd_noise)

    runs = commands.add_parser("runs", help="list the runs in the store")
    runs.add_argument(
        "--trend",
        action="store_true",
        help="compare each run with the previous comparable one (slower)",
    )
    runs.set_defaults(func=cmd_runs)

    demo = commands.add_parser(
        "demo", help="serve, load, ingest and analyze on this machine"
    )
    demo.add_argument(
        "--duration",
        type=_duration,
        default=60.0,
        help="length of the load (default 60s)",
    )
    demo.add_argument("--users", type=int, default=20, help="peak users (default 20)")
    demo.add_argument("--seed-count", type=int, default=2_000, help="subscribers")
    demo.add_argument(
        "--out", type=Path, help="report folder (default reports/<run_id>)"
    )
    _add_service_options(demo)
    demo.set_defaults(func=cmd_demo)
    return parser


def cmd_serve(args) -> int:
    from perflab.service import serve

    serve(_service_settings(args), host=args.host, port=args.port)
    return 0


def cmd_seed(args) -> int:
    from perflab.service import ServiceSettings, seed_subscribers

    fields = {"db_path": args.db_path, "database_url": args.database_url}
    settings = ServiceSettings(**{k: v for k, v in fields.items() if v})
    seed_subscribers(settings.database, args.count)  # logs what it wrote
    return 0


def cmd_run(args) -> int:
    from perflab.launching import LocustOptions, run_locust

    options = LocustOptions(
        scenario=args.scenario,
        host=args.host,
        stages=args.shape,
        processes=args.processes,
        wait_s=args.wait,
        pace_s=args.pace,
        target_pid=args.target_pid,
        target_match=args.target_match,
        target_name=args.target_name,
        postgres_dsn=args.postgres,
        redis_url=args.redis,
        redis_lists=args.redis_list,
        prometheus_urls=args.prometheus,
        environment=args.env,
        allow_remote=args.allow_remote,
    )
    run = run_locust(options, store=args.store, run_id=args.run_id)
    print(f"run: {run.path}")
    if args.analyze:
        _analyze(run, None)
    return 0 if run.meta.get("status") == "completed" else 1


def cmd_ingest(args) -> int:
    from perflab.ingest import ingest

    meta = {"environment": args.env} if args.env else {}
    if args.expected_interval_ms is not None:
        meta["expected_interval_ms"] = args.expected_interval_ms
    run = ingest(
        args.paths,
        store=args.store,
        fmt=args.fmt,
        encoding=args.encoding,
        run_id=args.run_id,
        **meta,
    )
    tables = ", ".join(
        f"{name} ({info['rows']:,} rows, {info['provenance']})"
        for name, info in run.meta.get("tables", {}).items()
    )
    print(f"run: {run.path}\ntables: {tables}")
    return 0


def _analyze(run, out: Path | None, whole: bool = False):
    from perflab.notebooks import analyze

    result = analyze(run, out_dir=out or DEFAULT_REPORTS / run.id, whole=whole)
    print(f"report: {result.report_md}\nhtml:   {result.report_html}")
    return result


def cmd_analyze(args) -> int:
    from perflab.store import open_run

    _analyze(open_run(args.run, store=args.store), args.out, args.whole)
    return 0


def cmd_check(args) -> int:
    from perflab.checking import FAIL, INCONCLUSIVE, check_run
    from perflab.comparing import compare, junit_xml, regressions, render_comparison
    from perflab.store import open_run
    from perflab.targets import load_targets

    # the targets first: a bad file fails before any run is read
    if args.replace_default and args.targets is None:
        raise InputError(
            "--replace-default needs --targets FILE, the targets that replace the "
            "plan's."
        )
    targets = load_targets(args.targets, extend_default=not args.replace_default)
    if not len(targets):
        raise InputError(
            "The targets file sets no target, so a check would pass without "
            "checking anything; give endpoints or system limits.",
            args.targets,
        )
    run = open_run(args.run, store=args.store)
    base = open_run(args.baseline, store=args.store) if args.baseline else None

    result = check_run(run, targets, whole=args.whole)
    result.record(run)
    comparison = None
    if base is not None:  # before printing: a baseline it cannot use is an error
        comparison = compare(base, run, **_comparison_arguments(args))
    print(result.to_text(), end="")
    print(f"Targets: {', '.join(result.sources)}")
    counts = result.counts()
    judged = result.verdict() != INCONCLUSIVE
    if not judged:
        print(
            f"warning: none of the {len(result.rows)} targets could be evaluated on "
            f"run {run.id}, so this check says nothing about it.",
            file=sys.stderr,
        )
    junit = [result.to_junit_xml()]
    markdown = [f"# Check: {run.id}", "", result.to_markdown()]

    found = []
    if comparison is not None:
        found = regressions(comparison)
        print()
        print(_comparison_text(comparison), end="")
        junit.append(junit_xml(comparison))
        markdown += ["", render_comparison(comparison)]

    if args.junit is not None:
        text = junit[0] if len(junit) == 1 else _merge_junit(junit, run.id)
        print(f"junit: {_write(args.junit, text)}")
    if args.markdown is not None:
        text = "\n".join(markdown)
        print(f"markdown: {_write(args.markdown, text)}")

    failed = counts[FAIL]
    outcome = [f"{failed} target{'s' * (failed != 1)} failed"]
    if base is not None:
        outcome.append(
            f"{len(found)} regression{'s' * (len(found) != 1)} against {base.id}"
        )
    if failed or found:
        verdict = "fail"
    elif not judged and base is None:
        # a gate that judged nothing must not pass in CI
        verdict = INCONCLUSIVE
        outcome = ["no target could be evaluated"]
    else:
        verdict = "pass"
    print(f"Check {verdict}: {', '.join(outcome)}.")
    return 0 if verdict == "pass" else 1


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    log.debug("wrote %s", path)
    return path


def _merge_junit(documents: list[str], run_id: str) -> str:
    """One JUnit XML document holding every ``testsuite`` of several, with the
    ``testsuites`` counts summed."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name=f"perflab check {run_id}")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for document in documents:
        for suite in ET.fromstring(document).iter("testsuite"):
            root.append(suite)
            for key in totals:
                totals[key] += int(suite.get(key, "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", "0")
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def cmd_compare(args) -> int:
    from perflab.comparing import compare, comparison_dir, write_comparison
    from perflab.store import open_run

    base = open_run(args.base, store=args.store)
    candidate = open_run(args.candidate, store=args.store)
    comparison = compare(base, candidate, **_comparison_arguments(args))
    print(_comparison_text(comparison), end="")

    out_dir = args.out or comparison_dir(comparison, DEFAULT_REPORTS)
    print(f"comparison: {write_comparison(comparison, out_dir)}")
    if args.notebook:
        from perflab.notebooks import analyze_comparison

        result = analyze_comparison(
            base, candidate, out_dir, **_comparison_arguments(args)
        )
        print(f"html:       {result.comparison_html}")
    return 0


def _comparison_arguments(args) -> dict:
    """The keyword arguments of a comparison from the command line's options."""
    arguments = {"threshold": args.threshold, "whole": args.whole}
    if args.run_noise is not None:
        arguments["run_noise"] = args.run_noise
    return arguments


def cmd_noise(args) -> int:
    from perflab.comparing import estimate_run_noise
    from perflab.store import open_run

    if len(args.runs) < 3:
        raise InputError(
            f"perflab noise needs three or more runs of one build, not "
            f"{len(args.runs)}; make more runs with the same load and try again."
        )
    runs = [open_run(ref, store=args.store) for ref in args.runs]
    noise, table = estimate_run_noise(runs, whole=args.whole)
    rows = [
        [
            str(row.endpoint),
            str(row.metric),
            f"{row.level_ms:.3g}",
            str(row.runs),
            f"{100 * row.within_sd:.1f}%",
            f"{100 * row.between_sd:.1f}%",
            f"{100 * row.fitted_sd:.1f}%",
        ]
        for row in table.itertuples(index=False)
    ]
    header = ["ENDPOINT", "METRIC", "LEVEL MS", "RUNS", "WITHIN", "BETWEEN", "FITTED"]
    print(
        f"Run noise of {len(runs)} runs (standard deviations of each run's log "
        "percentile: within a run, as its bootstrap sees it; between runs, beyond "
        "that; and as the fit gives it):"
    )
    print(_table(header, rows, right={2, 3, 4, 5, 6}))
    print(f"Estimated run noise: {noise}")
    relative, absolute_ms = 100 * noise.relative, noise.absolute_ms
    print(f"Use it with: --run-noise {relative:.3g}%,{absolute_ms:.3g}ms")
    return 0


def _comparison_text(comparison) -> str:
    """The comparison for the terminal: what differs between the loads, the verdict
    of each endpoint, and the regressions."""
    from perflab.comparing import regressions

    c = comparison
    lines = [
        f"Comparison: {c.candidate_id} against base {c.base_id} "
        f"(threshold {c.threshold:.0%}, {c.confidence:.0%} confidence, "
        f"run noise {c.run_noise})",
        "",
        "Differences between the runs:",
    ]
    differences = c.differences or [
        "None found: same tool, scenario, users, stages and endpoints."
    ]
    lines += [f"  - {sentence}" for sentence in differences]
    lines += ["Windows:", *[f"  - {note}" for note in c.notes[:2]], ""]

    rows = [
        [
            str(row.endpoint),
            str(row.verdict),
            f"{row.base_requests:,} / {row.candidate_requests:,}",
            _change(row.p50_relative),
            _change(row.p95_relative),
            _p_value(row.p_adjusted),
        ]
        for row in c.endpoints.itertuples(index=False)
    ]
    header = ["ENDPOINT", "VERDICT", "REQUESTS BASE / CAND", "P50", "P95", "ADJ. P"]
    lines.append(_table(header, rows, right={2, 3, 4, 5}))

    found = regressions(c)
    if found:
        lines.append(
            f"{len(found)} regression{'s' * (len(found) != 1)} beyond the "
            f"{c.threshold:.0%} threshold:"
        )
        lines += [f"  - {regression}" for regression in found]
    else:
        lines.append(
            f"No significant regression beyond the {c.threshold:.0%} threshold."
        )
    if c.warnings:
        lines += ["", "Caveats:"]
        lines += [f"  - {warning}" for warning in c.warnings]
    return "\n".join(lines) + "\n"


def _change(relative: float) -> str:
    if relative is None or relative != relative:
        return "n/a"
    return f"{100 * relative:+.1f}%"


def _p_value(p: float) -> str:
    if p is None or p != p:
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _table(header: list[str], rows: list[list[str]], right=frozenset()) -> str:
    """A plain-text table: columns as wide as their widest cell, two spaces apart;
    the columns numbered in ``right`` aligned right."""
    widths = [
        max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))
    ]
    lines = []
    for cells in [header, *rows]:
        padded = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines) + "\n"


def cmd_runs(args) -> int:
    from perflab.catalog import catalog

    runs = catalog(args.store)
    if runs.empty:
        print(f"no runs in {args.store}")
        return 0
    if args.trend:
        from perflab.catalog import trend

        trends = trend(args.store).set_index("id")
        runs["trend"] = [_trend_cell(trends, run_id) for run_id in runs["id"].tolist()]

    header = ["RUN ID", "DATE (UTC)", "TOOL", "SCENARIO", "ENVIRONMENT"]
    header += ["REQUESTS", "P95 MS", "STATUS", "VERDICT"]
    if args.trend:
        header.append("TREND")
    rows = []
    for run in runs.to_dict("records"):
        cells = [
            str(run["id"]),
            "-" if _missing(run["date"]) else f"{run['date']:%Y-%m-%d %H:%M}",
            _cell(run["tool"]),
            _cell(None if _missing(run["scenario"]) else Path(run["scenario"]).stem),
            _cell(run["environment"]),
            "-" if _missing(run["requests"]) else f"{int(run['requests']):,}",
            "-" if _missing(run["p95"]) else f"{run['p95']:,.1f}",
            _cell(run["status"]),
            _cell(run["check"]),
        ]
        if args.trend:
            cells.append(_cell(run["trend"], 40))
        rows.append(cells)
    print(_table(header, rows, right={5, 6}), end="")

    print(f"{len(runs)} run{'s' * (len(runs) != 1)} in {args.store}", end="")
    print(
        "; requests and p95: the whole run, ramps included; verdict: the latest "
        "check against the targets (perflab check or analyze)"
    )
    if args.trend:
        print(
            "trend: against the previous completed run with the same scenario, "
            "environment and users"
        )
    return 0


def _trend_cell(trends, run_id: str) -> str | None:
    if run_id not in trends.index or _missing(trends.loc[run_id, "previous"]):
        return None
    row = trends.loc[run_id]
    count = int(row["regressions"])
    if count:
        return f"{row['verdict']} ({count} regression{'s' * (count != 1)})"
    return str(row["verdict"])


def _missing(value) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def _cell(value, width: int = 24) -> str:
    if _missing(value) or value == "":
        return "-"
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_demo(args) -> int:
    from perflab.demo import run_demo

    if args.db_path is None and args.database_url is None:
        # The demo's data lives beside its run store, not in the shared default file.
        args.db_path = args.store.parent / "demo-service.sqlite3"
    result = run_demo(
        duration_s=args.duration,
        users=args.users,
        seed_count=args.seed_count,
        settings=_service_settings(args),
        store=args.store,
        reports=args.out,
    )
    print(f"report: {result.report_md}\nhtml:   {result.report_html}")
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, PerflabWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        log.debug("%s:%s: %s: %s", filename, lineno, category.__name__, message)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (2, message printed), --help, --version
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
    )
    warnings.showwarning = _show_warning
    try:
        return args.func(args)
    except PerflabError as exc:
        print(f"perflab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("perflab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
