"""Run the sample service: in the foreground (:func:`serve`) or as a child process.

:func:`start_service` is what the demo and the tests use: it launches
``python -m perflab.service`` with the settings in ``PERFLAB_SERVICE_*`` variables,
on a free loopback port, waits until ``/health`` answers, and returns a
:class:`RunningService` whose ``pid`` a resource monitor can watch.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import perflab
from perflab.errors import LaunchError
from perflab.service.settings import ServiceSettings

log = logging.getLogger(__name__)

#: Lines of the service's output quoted in a :class:`LaunchError`.
TAIL_LINES = 30


def serve(
    settings: ServiceSettings | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    log_level: str = "info",
) -> None:
    """Run the sample service in this process until it is interrupted.

    Parameters
    ----------
    settings
        How to configure it; the defaults of :class:`ServiceSettings` when omitted.
    host
        Address to bind; loopback by default. Bind another address only on purpose:
        the service has one fixed test user.
    port
        TCP port to listen on.
    log_level
        uvicorn's log level: ``"critical"``, ``"error"``, ``"warning"``, ``"info"``
        or ``"debug"``.

    Raises
    ------
    LaunchError
        When the service cannot start (the port is taken, the database cannot be
        opened...); the reason is in uvicorn's log just above.
    """
    import uvicorn

    from perflab.service.app import create_app

    settings = ServiceSettings() if settings is None else settings
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        access_log=settings.access_log,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    log.info("Serving the sample service on http://%s:%d", host, port)

    # uvicorn ends the process with sys.exit when startup fails; a library must not.
    try:
        server.run()
    except SystemExit as exc:
        raise LaunchError(
            f"The sample service could not start on {host}:{port} (uvicorn exit "
            f"code {exc.code}); see the error logged above."
        ) from None
    if not server.started:
        raise LaunchError(
            f"The sample service could not start on {host}:{port}; see the error "
            "logged above."
        )


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago.

    Parameters
    ----------
    host
        The loopback address the port is for.

    Returns
    -------
    int
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _require_loopback(host: str) -> None:
    """Refuse any address but a loopback one."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise LaunchError(
            f"start_service binds loopback addresses only, not {host!r}; use "
            "127.0.0.1, or run serve() yourself to expose the service."
        )


class RunningService:
    """A sample service running in a child process; stop it with :meth:`stop`.

    Also a context manager that stops the service on exit.

    Attributes
    ----------
    url
        Base URL, such as ``http://127.0.0.1:54321``.
    host, port
        Where it listens.
    pid
        The child process's id.
    settings
        The settings it was started with.
    log_path
        File holding the service's stdout and stderr.
    """

    def __init__(
        self,
        process: subprocess.Popen,
        host: str,
        port: int,
        settings: ServiceSettings,
        log_path: Path,
        *,
        delete_log: bool,
    ) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.settings = settings
        self.log_path = log_path
        self._delete_log = delete_log
        url_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{url_host}:{port}"

    @property
    def pid(self) -> int:
        """The child process's id."""
        return self.process.pid

    @property
    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.process.poll() is None

    def output_tail(self, lines: int = TAIL_LINES) -> str:
        """The last ``lines`` lines the service wrote to stdout and stderr."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """Ask the service to shut down, kill it after ``timeout_s``, and wait for it.

        Parameters
        ----------
        timeout_s
            Seconds to wait for a graceful shutdown before killing the process.

        Returns
        -------
        int or None
            The process's exit code. After a graceful shutdown it is ``-15``:
            uvicorn finishes its requests, then ends itself with the SIGTERM it
            received.
        """
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning(
                    "The sample service (pid %d) ignored SIGTERM for %g s; killing it",
                    self.pid,
                    timeout_s,
                )
                self.process.kill()
                self.process.wait()
            log.info("Stopped the sample service at %s (pid %d)", self.url, self.pid)
        if self._delete_log:
            self.log_path.unlink(missing_ok=True)
            self._delete_log = False
        return self.process.returncode

    def __enter__(self) -> RunningService:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningService(url={self.url!r}, pid={self.pid})"


def start_service(
    settings: ServiceSettings | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    *,
    timeout_s: float = 20.0,
    log_path: str | Path | None = None,
) -> RunningService:
    """Start the sample service in a child process and wait until it is ready.

    Parameters
    ----------
    settings
        How to configure it; the defaults of :class:`ServiceSettings` when omitted.
    host
        A loopback address to bind.
    port
        TCP port; a free one is picked when omitted (and picked again, up to three
        times, if another process takes it first).
    timeout_s
        Seconds to wait for ``GET /health`` to answer 200.
    log_path
        File for the service's stdout and stderr, kept after ``stop()``; when
        omitted, a temporary file that ``stop()`` deletes.

    Returns
    -------
    RunningService
        Use it as a context manager, or call its ``stop()``.

    Raises
    ------
    LaunchError
        When ``host`` is not loopback, or the service exits or does not answer within
        ``timeout_s``; the message ends with the tail of the service's output.
    """
    settings = ServiceSettings() if settings is None else settings
    _require_loopback(host)
    attempts = 3 if port is None else 1
    for attempt in range(1, attempts + 1):
        try:
            return _start_once(settings, host, port, timeout_s, log_path)
        except _PortTaken:
            if attempt == attempts:
                raise LaunchError(
                    f"The sample service found its port taken {attempts} times on "
                    f"{host}; try again, or give a port."
                ) from None
            log.info("The picked port was taken; trying another one")
    raise AssertionError("unreachable")


class _PortTaken(Exception):
    """The child process could not bind the picked port."""


def _start_once(
    settings: ServiceSettings,
    host: str,
    port: int | None,
    timeout_s: float,
    log_path: str | Path | None,
) -> RunningService:
    """One launch attempt of :func:`start_service`."""
    picked = port is None
    port = free_port(host) if port is None else port
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="perflab-service-", suffix=".log")
        os.close(handle)
        log_file, delete_log = Path(name), True
    else:
        log_file, delete_log = Path(log_path), False
        log_file.parent.mkdir(parents=True, exist_ok=True)

    # The child imports this very copy of perflab, installed or not.
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    package_root = str(Path(perflab.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p
    )
    command = [
        sys.executable,
        "-m",
        "perflab.service",
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "info",
    ]
    with open(log_file, "wb") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    service = RunningService(
        process, host, port, settings, log_file, delete_log=delete_log
    )
    log.info(
        "Starting the sample service at %s (pid %d), output in %s",
        service.url,
        service.pid,
        log_file,
    )

    try:
        _wait_until_ready(service, timeout_s, picked)
    except BaseException:
        service.stop()  # an interrupted or failed start leaves no process behind
        raise
    log.info("The sample service answers at %s", service.url)
    return service


def _wait_until_ready(service: RunningService, timeout_s: float, picked: bool):
    """Poll ``/health`` until it answers, the process exits, or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not _healthy(service.url):
        if service.process.poll() is not None:
            tail = service.output_tail()
            if picked and "address already in use" in tail.lower():
                raise _PortTaken
            raise LaunchError(
                f"The sample service exited with code {service.process.returncode} "
                f"before answering on {service.url}. Its output ended with:\n{tail}"
            )
        if time.monotonic() > deadline:
            raise LaunchError(
                f"The sample service did not answer {service.url}/health within "
                f"{timeout_s:g} s. Its output ended with:\n{service.output_tail()}"
            )
        time.sleep(0.05)


#: Talks to the service directly, whatever proxy the environment names.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _healthy(url: str) -> bool:
    """Whether ``GET {url}/health`` answers 200 right now."""
    try:
        with _DIRECT.open(url + "/health", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False
