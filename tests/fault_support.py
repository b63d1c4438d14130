"""Support for the reliability tests: a websocket client that behaves as the game page does
(reconnects and resyncs by itself), a Redis server of the test's own, databases of both kinds,
reads of a live server's log, and scripts that run inside a server's environment.

Scripts (``script_*``) run in a separate process through ``run_script`` (``manage.py shell``)
against the live database; each prints one JSON object on its last line.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.exceptions import WebSocketException

from tests.live import ROOT, Browser, Server, free_port, manage, postgres_database, reachable

Frame = dict[str, Any]

#: The database kinds the fault tests run against.
DATABASE_KINDS = ("sqlite", "postgresql")
#: The server's rate limit (docs/protocol.md): a client stays a little under it.
RATE_LIMIT_FRAMES = 20
RATE_LIMIT_SECONDS = 2.0
#: Seconds a dropped client waits before it tries to connect again.
RECONNECT_PAUSE = 0.2


# --------------------------------------------------------------------------------------------
# What the documentation promises


def documented_error_codes() -> frozenset[str]:
    """Every error code docs/protocol.md and docs/rules.md document."""
    pattern = re.compile(r"^\| `([a-z_]+)` \|", re.MULTILINE)
    protocol = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    errors = protocol.split("**Errors never close the connection.**", 1)[1].split("\n## ", 1)[0]
    rules = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8").split("## Refusals", 1)[1]
    codes = frozenset(pattern.findall(errors)) | frozenset(pattern.findall(rules))
    assert {"bad_frame", "rate_limited", "wrong_phase"} <= codes, "the error tables moved"
    return codes


# --------------------------------------------------------------------------------------------
# Databases and their logs


@contextlib.contextmanager
def live_database(kind: str, directory: Path) -> Iterator[str]:
    """A new, empty database of ``kind`` ("sqlite" or "postgresql"); yields its URL."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'ratify.sqlite3'}"
    elif kind == "postgresql":
        with postgres_database() as url:
            yield url
    else:
        raise ValueError(kind)


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` (placeholders written ``%s``) on the database at ``url``."""
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as connection:
            return list(connection.execute(sql.replace("%s", "?"), params).fetchall())
    import psycopg

    with psycopg.connect(url) as connection:
        return list(connection.execute(sql, params).fetchall())


def _json(value: Any) -> Any:
    # SQLite hands JSON columns back as text, PostgreSQL as parsed values.
    return json.loads(value) if isinstance(value, str) else value


def stored_log(url: str, code: str) -> list[tuple[int, dict[str, Any]]]:
    """``(seq, payload)`` of every stored event of the game ``code``, in seq order."""
    rows = query(
        url,
        "SELECT ev.seq, ev.payload FROM negotiation_gameevent ev "
        "JOIN negotiation_game g ON g.id = ev.game_id WHERE g.code = %s ORDER BY ev.seq",
        (code,),
    )
    return [(int(seq), _json(payload)) for seq, payload in rows]


@dataclass(frozen=True)
class CommandRecord:
    issuer: str
    client_id: str
    name: str
    accepted: bool
    last_seq: int | None
    code: str


def command_records(url: str, code: str) -> list[CommandRecord]:
    """What the server recorded of every command id of the game ``code``."""
    rows = query(
        url,
        "SELECT c.issuer, c.client_id, c.name, c.accepted, c.last_seq, c.code "
        "FROM negotiation_gamecommand c JOIN negotiation_game g ON g.id = c.game_id "
        "WHERE g.code = %s ORDER BY c.id",
        (code,),
    )
    return [
        CommandRecord(str(i), str(cid), str(n), bool(a), None if s is None else int(s), str(c))
        for i, cid, n, a, s, c in rows
    ]


# --------------------------------------------------------------------------------------------
# Processes


def kill(server: Server) -> None:
    """End the server at once with SIGKILL (no clean-up of any kind), by its PID."""
    if server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)


@dataclass
class RedisServer:
    """A redis-server process of the test's own on a loopback port (never the shared one)."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """End the process by its PID: SIGTERM, SIGKILL if it lingers."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_redis(directory: Path, port: int | None = None) -> RedisServer:
    """Start redis-server on ``port`` (a free loopback port by default), without persistence,
    and wait until it accepts connections. Fails the test when it cannot."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail("redis-server is not installed; the Redis fault test runs its own.")
    port = free_port() if port is None else port
    log = directory / f"redis-{port}.log"
    process = subprocess.Popen(
        [
            executable,
            *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", str(directory), "--logfile", str(log)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    server = RedisServer(port, process, log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and process.poll() is None:
        if reachable("127.0.0.1", port):
            return server
        time.sleep(0.05)
    server.stop()
    text = log.read_text(errors="replace") if log.exists() else ""
    pytest.fail(f"redis-server did not start on port {port}:\n{text}")


# --------------------------------------------------------------------------------------------
# Scripts run inside a server's environment


def run_script(env: Mapping[str, str], call: str) -> dict[str, Any]:
    """Run ``tests.fault_support.<call>`` with the server's settings; its JSON answer."""
    out = manage(env, "shell", "-c", f"from tests import fault_support; fault_support.{call}")
    answer: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return answer


def script_new_game(slug: str, settings: str) -> None:
    """(script) Create a game of ``slug`` with ``settings`` (JSON of the game settings)."""
    from negotiation import services
    from negotiation.engine.scenario import game_settings_from_dict
    from negotiation.models import Scenario

    row = Scenario.objects.get(slug=slug)
    game = services.create_game(
        scenario=row, settings=game_settings_from_dict(json.loads(settings))
    )
    print(json.dumps({"code": game.code, "host_token": game.host_token}))


def new_game(env: Mapping[str, str], slug: str, **settings: Any) -> dict[str, Any]:
    """A new game of ``slug`` with these settings, made with the server's settings."""
    return run_script(env, f"script_new_game({slug!r}, {json.dumps(settings)!r})")


def host_cookie(base: str, code: str, host_token: str) -> str:
    """The cookie of a browser that opened the game's secret host link."""
    browser = Browser(base)
    browser.get(f"/g/{code}/host/{host_token}/")
    return browser.cookie_header()


def seat_cookie(base: str, code: str, seat: str) -> str:
    """The cookie of a browser that took ``seat`` through its seat link."""
    browser = Browser(base)
    browser.take_seat(code, seat, f"Player {seat}")
    return browser.cookie_header()


# --------------------------------------------------------------------------------------------
# A client that behaves as the game page does


class ResyncingClient:
    """One browser tab's websocket, written as the game page behaves.

    It says ``hello`` with the last seq it holds on every (re)connection, keeps every event by
    seq, asks for the missing ones with ``hello`` when it sees a gap, and sends again, with
    their ids, the commands that have not been answered when the socket dropped. It reconnects
    by itself, and stays under the server's rate limit. Whatever breaks the protocol's promises
    (a seq twice or backwards, an answer twice, an answer to nothing) goes to ``violations``.
    """

    def __init__(self, name: str, server: Server, path: str, cookie: str, viewer: str) -> None:
        self.name = name
        self.server = server
        self.path = path
        self.cookie = cookie
        self.viewer = viewer
        #: The last seq held; None until the first snapshot.
        self.seq: int | None = None
        self.first_seq: int | None = None
        self.events: dict[int, Frame | None] = {}
        self.frames: list[Frame] = []
        self.answers: dict[str, Frame] = {}
        #: Unanswered commands, id -> frame text, in the order they were made.
        self.pending: dict[str, str] = {}
        self.violations: list[str] = []
        self.connections = 0
        self.gaps = 0
        self._sent_on: dict[str, int] = {}
        self._counter = 0
        self._socket: Any = None
        self._stopped = False
        self._changed = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._window: collections.deque[float] = collections.deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._resync_from: int | None = None

    @property
    def connected(self) -> bool:
        return self._socket is not None

    # Connection ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until ``stop``: connect, hello, resend, read; again when it drops."""
        while not self._stopped:
            try:
                async with websockets.connect(
                    self.server.ws_base + self.path,
                    additional_headers={"Cookie": self.cookie, "Origin": self.server.base},
                    open_timeout=5,
                    close_timeout=1,
                    ping_interval=None,
                    max_size=None,
                ) as socket:
                    self.connections += 1
                    self._window.clear()
                    self._resync_from = None
                    async with self._send_lock:
                        await self._throttle()
                        await socket.send(json.dumps({"type": "hello", "last_seq": self.seq}))
                        self._socket = socket
                    for command_id in list(self.pending):
                        await self._transmit(command_id)
                    async for message in socket:
                        self._receive(json.loads(message))
            except (OSError, TimeoutError, WebSocketException):
                pass
            finally:
                self._socket = None
            if not self._stopped:
                await asyncio.sleep(RECONNECT_PAUSE)

    async def stop(self) -> None:
        self._stopped = True
        socket = self._socket
        if socket is not None:
            with contextlib.suppress(Exception):
                await socket.close()
        for task in list(self._tasks):
            task.cancel()

    # Sending ---------------------------------------------------------------------------------

    def next_id(self) -> str:
        self._counter += 1
        return f"{self.name}-{self._counter}"

    def submit(self, name: str, args: Mapping[str, Any], command_id: str | None = None) -> str:
        """Queue a command (sent now when connected, else after the next reconnect). Returns
        its id."""
        command_id = command_id or self.next_id()
        frame = {"type": "command", "id": command_id, "name": name, "args": dict(args)}
        self.pending[command_id] = json.dumps(frame)
        self._spawn(self._transmit(command_id))
        return command_id

    async def call(self, name: str, timeout: float = 30, **args: Any) -> Frame:
        """Send a command and wait for its answer (an ``ack`` or ``error`` frame)."""
        return await self.answer(self.submit(name, args), timeout)

    async def answer(self, command_id: str, timeout: float = 30) -> Frame:
        """The answer to the command ``command_id``, received or still to come."""
        await self.wait_until(
            lambda: command_id in self.answers, timeout, f"an answer to {command_id}"
        )
        return self.answers[command_id]

    async def _transmit(self, command_id: str) -> None:
        async with self._send_lock:
            socket = self._socket
            if socket is None or command_id not in self.pending:
                return
            if self._sent_on.get(command_id) == self.connections:
                return
            self._sent_on[command_id] = self.connections
            await self._throttle()
            with contextlib.suppress(WebSocketException, OSError):
                # A send on a dying socket is sent again after the reconnect.
                await socket.send(self.pending[command_id])

    async def _resync(self, last_seq: int) -> None:
        async with self._send_lock:
            socket = self._socket
            if socket is None:
                return
            await self._throttle()
            with contextlib.suppress(WebSocketException, OSError):
                await socket.send(json.dumps({"type": "hello", "last_seq": last_seq}))

    async def _throttle(self) -> None:
        """Wait, if needed, to stay under the server's limit of frames per window."""
        while True:
            now = time.monotonic()
            while self._window and now - self._window[0] >= RATE_LIMIT_SECONDS:
                self._window.popleft()
            if len(self._window) < RATE_LIMIT_FRAMES - 2:
                self._window.append(now)
                return
            await asyncio.sleep(RATE_LIMIT_SECONDS - (now - self._window[0]) + 0.01)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Receiving -------------------------------------------------------------------------------

    def _receive(self, frame: Frame) -> None:
        self.frames.append(frame)
        kind = frame.get("type")
        if kind == "snapshot":
            seq = int(frame["seq"])
            if self.seq is not None and seq < self.seq:
                self.violations.append(f"{self.name}: snapshot at {seq} after holding {self.seq}")
            if self.seq is not None and seq > self.seq:
                self.violations.append(f"{self.name}: snapshot skipped {self.seq + 1}..{seq}")
            self.seq = seq
            if self.first_seq is None:
                self.first_seq = seq
        elif kind == "event":
            self._event(int(frame["seq"]), frame["event"])
        elif kind in ("ack", "error"):
            self._answer(frame)
        self._changed.set()

    def _event(self, seq: int, event: Frame | None) -> None:
        if self.seq is None:
            self.violations.append(f"{self.name}: event {seq} before any snapshot")
        elif seq <= self.seq:
            self.violations.append(f"{self.name}: event {seq} again, after {self.seq}")
        elif seq > self.seq + 1:
            # A gap: ask for what is missing, once, and drop what comes before the fill.
            self.gaps += 1
            if self._resync_from != self.seq:
                self._resync_from = self.seq
                self._spawn(self._resync(self.seq))
        else:
            self.events[seq] = event
            self.seq = seq

    def _answer(self, frame: Frame) -> None:
        command_id = frame.get("id")
        if command_id is None:
            self.violations.append(f"{self.name}: an error for no command: {frame}")
        elif command_id in self.answers:
            self.violations.append(f"{self.name}: {command_id} answered twice: {frame}")
        elif command_id not in self.pending:
            self.violations.append(f"{self.name}: an answer to nothing sent: {frame}")
        else:
            self.answers[command_id] = frame
            del self.pending[command_id]

    # Waiting ---------------------------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``predicate()`` holds. Raises ``AssertionError`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            self._changed.clear()
            if predicate():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.name}: waited {timeout} s in vain for {what}; "
                    f"held seq {self.seq}, last frames {self.frames[-3:]}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def synced(self, timeout: float = 30) -> None:
        """Wait until the client holds a snapshot."""
        await self.wait_until(lambda: self.seq is not None, timeout, "a snapshot")

    async def answered(self, timeout: float = 30, *, reconnected: bool = False) -> None:
        """Wait until every command made has been answered (``reconnected``: and the client
        has connected again since it first did)."""
        await self.wait_until(
            lambda: not self.pending and (not reconnected or self.connections >= 2),
            timeout,
            "a reconnect and an answer to every command" if reconnected else "every answer",
        )

    def find_event(self, event_type: str, **fields: Any) -> Frame | None:
        """The first event held of ``event_type`` whose fields match, or None."""
        for seq in sorted(self.events):
            event = self.events[seq]
            if (
                event is not None
                and event["type"] == event_type
                and all(event.get(k) == v for k, v in fields.items())
            ):
                return event
        return None

    async def event(self, event_type: str, timeout: float = 30, **fields: Any) -> Frame:
        """The first event of ``event_type`` with ``fields``, held or still to come."""
        await self.wait_until(
            lambda: self.find_event(event_type, **fields) is not None,
            timeout,
            f"a {event_type} event {fields or ''}",
        )
        found = self.find_event(event_type, **fields)
        assert found is not None
        return found


async def stop_all(clients: Mapping[str, ResyncingClient], tasks: list[asyncio.Task[None]]) -> None:
    """Stop every client and wait for their tasks to end."""
    for client in clients.values():
        await client.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def sequence_problems(client: ResyncingClient, last_seq: int) -> list[str]:
    """What is wrong with the events ``client`` holds: every seq after its first snapshot up
    to ``last_seq``, exactly once (out-of-order or repeated seqs are in its violations)."""
    problems = list(client.violations)
    if client.first_seq is None:
        return [*problems, f"{client.name}: never synced"]
    expected = list(range(client.first_seq + 1, last_seq + 1))
    if sorted(client.events) != expected:
        missing = sorted(set(expected) - set(client.events))
        extra = sorted(set(client.events) - set(expected))
        problems.append(f"{client.name}: missing seqs {missing[:10]}, unexpected {extra[:10]}")
    return problems


# --------------------------------------------------------------------------------------------
# In process: Channels' WebsocketCommunicator on the real ASGI application

#: The origin the in-process clients send (an allowed host).
ORIGIN = b"http://testserver"


def new_session(**values: Any) -> str:
    """A stored session holding ``values``; returns its key (the ``sessionid`` cookie)."""
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    for key, value in values.items():
        store[key] = value
    store.create()
    assert store.session_key is not None
    return store.session_key


class InProcessClient:
    """A connection to the ASGI application in this process that keeps every frame it is sent.

    A reader task takes the frames off the communicator as they come (so no receive ever times
    out, which would cancel the application); ``closed`` holds the close code once the server
    closes the connection.
    """

    def __init__(self, name: str, socket: Any) -> None:
        self.name = name
        self.socket = socket
        self.frames: list[Frame] = []
        self.closed: int | None = None
        self._changed = asyncio.Event()
        self._counter = 0
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, code: str, session: str | None, name: str, *, host: bool = False
    ) -> InProcessClient:
        """Connect to the game ``code`` with the session cookie ``session`` (none: a stranger).
        Fails the test when the handshake is refused."""
        from channels.testing import WebsocketCommunicator

        from config.asgi import application

        headers = [(b"origin", ORIGIN)]
        if session is not None:
            headers.append((b"cookie", f"sessionid={session}".encode()))
        path = f"/ws/games/{code}/" + ("?role=host" if host else "")
        socket = WebsocketCommunicator(application, path, headers=headers)
        connected, close_code = await socket.connect(timeout=10)
        assert connected, f"{name}: the connection was refused ({close_code})"
        client = cls(name, socket)
        client._reader = asyncio.ensure_future(client._read())
        return client

    async def _read(self) -> None:
        while True:
            output = await self.socket.output_queue.get()
            if output["type"] == "websocket.close":
                self.closed = int(output.get("code", 1000))
                self._changed.set()
                return
            self.frames.append(json.loads(output["text"]))
            self._changed.set()

    async def send(self, frame: Mapping[str, Any] | str | bytes) -> None:
        """Send a frame: a mapping as JSON, text or bytes as they are."""
        if isinstance(frame, bytes):
            await self.socket.send_input({"type": "websocket.receive", "bytes": frame})
        else:
            text = frame if isinstance(frame, str) else json.dumps(frame)
            await self.socket.send_input({"type": "websocket.receive", "text": text})

    async def hello(self, last_seq: int | None = None) -> Frame:
        """Say hello; returns the presence frame that ends the server's answer."""
        start = len(self.frames)
        await self.send({"type": "hello", "last_seq": last_seq})
        return await self.wait_for(lambda f: f["type"] == "presence", start=start)

    async def command(self, name: str, command_id: str | None = None, **args: Any) -> Frame:
        """Send a command; returns its answer (``ack`` or ``error``)."""
        self._counter += 1
        command_id = command_id or f"{self.name}-{self._counter}"
        start = len(self.frames)
        await self.send({"type": "command", "id": command_id, "name": name, "args": args})
        return await self.wait_for(
            lambda f: f["type"] in ("ack", "error") and f.get("id") == command_id, start=start
        )

    async def ping(self, t: float) -> Frame:
        start = len(self.frames)
        await self.send({"type": "ping", "t": t})
        return await self.wait_for(lambda f: f["type"] == "pong" and f["t"] == t, start=start)

    async def wait_for(
        self, predicate: Callable[[Frame], bool], *, start: int = 0, timeout: float = 10
    ) -> Frame:
        """The first frame from index ``start`` on that matches. Raises ``AssertionError``
        after ``timeout`` s, when the server closed the connection, or with the exception of a
        server that failed."""
        deadline = time.monotonic() + timeout
        index = start
        while True:
            self._changed.clear()
            while index < len(self.frames):
                frame = self.frames[index]
                index += 1
                if predicate(frame):
                    return frame
            if self.socket.future.done():
                self.socket.future.result()  # the server's exception, if it failed
            assert self.closed is None, f"{self.name}: the server closed ({self.closed})"
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{self.name}: waited in vain; last frames {self.frames[-3:]}"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def quiet(self, seconds: float = 0.2) -> None:
        """Wait until no frame has come for ``seconds``."""
        while True:
            count = len(self.frames)
            await asyncio.sleep(seconds)
            if len(self.frames) == count:
                return

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if not self.socket.future.done():
            await self.socket.disconnect()
