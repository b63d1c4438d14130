"""Support for tests against real services and real server processes on loopback.

PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are used for real; when one is not
reachable the test fails with a sentence saying so (``.ci/ensure-services`` starts them), it
never skips. Server processes are Daphne on a free loopback port, ended by their PID.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
#: The project's server command (Daphne with a close code for oversize frames).
SERVE = [sys.executable, "-m", "config.serve"]
POSTGRES_ADMIN_URL = os.environ.get(
    "RATIFY_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("RATIFY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def require(host: str, port: int, what: str) -> None:
    """Fail the test, with how to fix it, when a service it uses for real is down."""
    if not reachable(host, port):
        pytest.fail(
            f"{what} is not reachable on {host}:{port}; these tests use it for real. "
            "Start it with .ci/ensure-services (make test does).",
            pytrace=False,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards. Yields its URL."""
    import psycopg

    require("127.0.0.1", 5432, "PostgreSQL")
    name = f"ratify_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(POSTGRES_ADMIN_URL)
    url = urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    try:
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        RATIFY_BOT_DELAY="0",
        PYTHONUNBUFFERED="1",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    env.update(extra)
    return env


def manage(env: Mapping[str, str], *args: str, timeout: float = 120) -> str:
    """Run ``manage.py`` with ``args``; fails the test on a non-zero exit. Returns stdout."""
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@dataclass
class Server:
    """A Daphne process serving the project on a loopback port."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_server(
    env: Mapping[str, str], log_dir: Path, name: str = "daphne", port: int | None = None
) -> Server:
    """Start Daphne on ``port`` (a free loopback port by default) and wait until it answers.
    Fails the test with the server's log when it does not start within 30 s."""
    port = free_port() if port is None else port
    log = log_dir / f"{name}-{port}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*SERVE, "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(port, process, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(OSError):
            urllib.request.urlopen(server.base + "/", timeout=2).read()
            return server
        time.sleep(0.2)
    server.stop()
    pytest.fail(f"Daphne did not start on port {port}:\n{log.read_text(errors='replace')}")


@dataclass
class Browser:
    """An HTTP client with its own cookies, like one person's browser."""

    base: str
    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)

    def __post_init__(self) -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=15) as response:
            body: bytes = response.read()
            return body.decode()

    def post(self, path: str, data: Mapping[str, str], referer: str) -> str:
        """POST a form with this browser's CSRF token. Returns the final URL."""
        token = self.cookie("csrftoken")
        payload = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(
            self.base + path, data=payload, headers={"Referer": self.base + referer}
        )
        with self.opener.open(request, timeout=15) as response:
            url: str = response.geturl()
            return url

    def cookie(self, name: str) -> str:
        for cookie in self.jar:
            if cookie.name == name:
                return cookie.value or ""
        raise KeyError(name)

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)

    def take_seat(self, code: str, seat: str, name: str) -> None:
        """Open the seat's link and take it under ``name``; fails unless it lands at the table."""
        path = f"/g/{code}/seat/{seat}/"
        self.get(path)
        landed = self.post(f"/g/{code}/seat/", {"name": name, "seat": seat}, referer=path)
        assert landed.endswith(f"/g/{code}/play/"), f"{seat} was not seated: {landed}"

    def open_host_link(self, host_url: str) -> None:
        self.get(urllib.parse.urlsplit(host_url).path)


def create_game(env: Mapping[str, str], scenario: str, *, bots: str = "") -> dict[str, Any]:
    args = ["create_game", scenario, "--json"]
    if bots:
        args += ["--bots", bots]
    report: dict[str, Any] = json.loads(manage(env, *args))
    return report


@contextlib.contextmanager
def two_servers_on_redis(
    tmp_path: Path, **extra_env: str
) -> Iterator[tuple[dict[str, str], Server, Server]]:
    """Two server processes sharing a fresh PostgreSQL database and Redis (their own channel
    prefix), migrated and loaded; both stopped on the way out."""
    require("127.0.0.1", 6379, "Redis")
    with postgres_database() as url:
        env = server_env(
            DATABASE_URL=url,
            REDIS_URL=REDIS_URL,
            RATIFY_CHANNEL_PREFIX=f"ratify-test-{uuid.uuid4().hex[:8]}",
            **extra_env,
        )
        manage(env, "migrate", "--noinput")
        manage(env, "load_scenarios")
        first = start_server(env, tmp_path, "first")
        try:
            second = start_server(env, tmp_path, "second")
            try:
                yield env, first, second
            finally:
                second.stop()
        finally:
            first.stop()
