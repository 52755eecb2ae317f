"""``python -m perflab.service``: run the sample service in the foreground.

Settings come from ``PERFLAB_SERVICE_*`` environment variables, overridden by the
options (``--pool-size 4`` ...). This is how :func:`perflab.service.start_service`
launches its child process.
"""

from __future__ import annotations

import argparse
import logging
import sys

from perflab.errors import PerflabError
from perflab.service.process import serve
from perflab.service.settings import add_arguments, settings_from_arguments


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the service, return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m perflab.service",
        description="Run perflab's sample publishing service.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8080, help="TCP port")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
    )
    add_arguments(parser)
    arguments = parser.parse_args(argv)

    logging.basicConfig(
        level=arguments.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = settings_from_arguments(arguments)
        serve(settings, arguments.host, arguments.port, log_level=arguments.log_level)
    except PerflabError as exc:
        logging.getLogger("perflab.service").error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
