"""The ``perflab`` command line.

Each subcommand is one step of the flow (see DESIGN.md): ``serve`` and ``seed`` the
sample service, ``run`` a load test, ``ingest`` exports, ``analyze`` a run into a
report, ``runs`` to list the store, and ``demo`` to do all of it on this machine.

Errors perflab raises on purpose are printed as one message and exit with status 2;
perflab's warnings (caveats about the numbers) are printed as ``warning:`` lines.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from perflab import __version__
from perflab.errors import PerflabError, PerflabWarning
from perflab.shapes import DEFAULT_STAGES
from perflab.store import DEFAULT_STORE

log = logging.getLogger("perflab")

DEFAULT_REPORTS = Path("reports")


def _stages(text: str):
    from perflab.shapes import parse_stages

    try:
        return parse_stages(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
        "--stages",
        type=_stages,
        default=DEFAULT_STAGES,
        help=f"DURATION:USERS,... as in k6 (default {DEFAULT_STAGES})",
    )
    run.add_argument("--processes", type=int, default=1, help="Locust processes")
    run.add_argument(
        "--wait", type=_wait, default=(1.0, 2.0), help="think time MIN,MAX seconds"
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
    ingest.set_defaults(func=cmd_ingest)

    analyze = commands.add_parser(
        "analyze", help="run the notebooks on a run and write its report"
    )
    analyze.add_argument("run", help="run id or run folder")
    analyze.add_argument(
        "--out", type=Path, help="report folder (default reports/<run_id>)"
    )
    analyze.set_defaults(func=cmd_analyze)

    runs = commands.add_parser("runs", help="list the runs in the store")
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
        stages=args.stages if isinstance(args.stages, list) else _stages(args.stages),
        processes=args.processes,
        wait_s=args.wait,
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


def _analyze(run, out: Path | None):
    from perflab.notebooks import analyze

    result = analyze(run, out_dir=out or DEFAULT_REPORTS / run.id)
    print(f"report: {result.report_md}\nhtml:   {result.report_html}")
    return result


def cmd_analyze(args) -> int:
    from perflab.store import open_run

    _analyze(open_run(args.run, store=args.store), args.out)
    return 0


def cmd_runs(args) -> int:
    from perflab.store import list_runs

    runs = list_runs(args.store)
    if not runs:
        print(f"no runs in {args.store}")
        return 0
    print(f"{'run id':44} {'tool':8} {'scenario':14} {'status':11} {'requests':>9}")
    for run in runs:
        requests = run.meta.get("tables", {}).get("requests", {}).get("rows")
        if requests is None:
            requests = run.meta.get("tables", {}).get("endpoints", {}) and "aggregate"
        scenario = Path(str(run.meta.get("scenario") or "-")).stem
        print(
            f"{run.id:44} {run.meta.get('tool', '-'):8} {scenario:14} "
            f"{run.meta.get('status', '-'):11} {requests or '-':>9}"
        )
    return 0


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
    args = parser.parse_args(argv)
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
