"""Load benchmark over real websockets: Ratify on Daphne against three baselines, same run.

Run with ``make bench-load`` (see ``bench/README.md``). Starts every server itself on loopback
(Daphne with the project's settings, a fresh database made with migrate + load_scenarios),
creates games, binds 8 simulated players per game to their seats through the session mechanism
(the first games through the real seat links over HTTP), and plays them over one websocket per
seat with ``bench/ws_load_client.py``. It measures, for every event and every seat, the time
from the command leaving its sender to the event (or its placeholder) arriving; loss and
duplicates by seq; server CPU and memory from ``/proc``. Then the same clients drive three
baselines: a raw ``websockets`` broadcast server, a bare ASGI room app on Daphne and a plain
Channels ``group_send`` consumer. Prints a table (``--json`` for machines); exits 1 when a
target is missed (targets are not judged with ``--quick``), 2 when the harness fails.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.cookies
import json
import math
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import ws_load_client as client  # noqa: E402

from tests.live import REDIS_URL, free_port, postgres_database, server_env  # noqa: E402

PYTHON = sys.executable
PY_SPY = str(Path(sys.executable).with_name("py-spy"))
SCENARIO = "gatt"
SEATS_PER_GAME = 8
#: Saturation: p99 at or under this, nothing lost, no error.
SATURATION_P99_MS = 100.0
#: Saturation ladder: rates per game up to this cap (the server admits at most 10 frames per
#: second from one socket; the clients keep each seat under 8); a higher load is spread over
#: more of the connected games.
MAX_RATE = 64.0
#: The window of the server's per-socket rate limit (``negotiation.consumers``:
#: ``RATE_LIMIT_SECONDS``); a failed step is followed by this pause.
SERVER_RATE_WINDOW_SECONDS = 2.0
MIN_RATE = 1 / 32
CLIENT_TIMEOUT_MARGIN = 120.0

TARGET_FIXED_P99_MS = 50.0
TARGET_TWO_PROCESS_P99_MS = 100.0
TARGET_VS_CHANNELS = 3.0
TARGET_VS_ASGI = 0.5
TARGET_TWO_PROCESS_SCALING = 1.6
TARGET_KIB_PER_SEAT = 64.0

SYSTEM_LABELS = {
    "ratify": "Ratify (GameConsumer)",
    "ratify1": "Ratify, one process",
    "raw": "raw websockets broadcast",
    "asgi": "bare ASGI room app on Daphne",
    "channels": "plain Channels group_send",
    "channels_layer": "Channels on Ratify's layer",
}


# --------------------------------------------------------------------------------------------
# Processes and /proc


class Proc:
    """A server process of this run, ended by its PID."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.pid = self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def wait_for_port(proc: Proc, port: int, seconds: float = 60) -> None:
    """Raises ``RuntimeError`` (with the log) when nothing listens on ``port`` in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start:\n{proc.log.read_text(errors='replace')}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from ``/proc``."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: Processes of the services a Ratify deployment talks to (PostgreSQL, Redis): not started by
#: the benchmark, but on the same cores as the servers and the clients it measures.
SERVICE_COMMANDS = frozenset({"postgres", "redis-server"})


def service_cpu_seconds() -> dict[int, float]:
    """CPU seconds so far of every PostgreSQL and Redis process on the machine, by PID."""
    seconds: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() in SERVICE_COMMANDS:
                seconds[int(entry.name)] = cpu_seconds(int(entry.name))
        except (OSError, ValueError):
            continue  # the process ended while being read
    return seconds


def machine_idle_seconds() -> float:
    """Idle (and I/O-wait) seconds of all the machine's cores so far, from ``/proc/stat``."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu "):
            fields = line.split()
            return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")
    raise RuntimeError("/proc/stat has no cpu line")


@dataclass
class MachineSample:
    """The CPU counters a step's figures are differences of, read as the step starts."""

    servers: list[float]
    services: dict[int, float]
    idle: float

    @classmethod
    def take(cls, servers: list[int]) -> MachineSample:
        return cls(
            [cpu_seconds(pid) for pid in servers], service_cpu_seconds(), machine_idle_seconds()
        )

    def cores_until(self, later: MachineSample, wall: float) -> dict[str, float]:
        """Cores used by the servers and the services, and cores idle, from this sample to
        ``later`` (a service process started in between counts from its start; one that ended
        in between is not counted)."""
        services = sum(
            seconds - self.services.get(pid, 0.0) for pid, seconds in later.services.items()
        )
        return {
            "server_cpu_cores": round((sum(later.servers) - sum(self.servers)) / wall, 2),
            "services_cpu_cores": round(services / wall, 2),
            "idle_cores": round((later.idle - self.idle) / wall, 2),
        }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py``; raises ``RuntimeError`` with its output on failure."""
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def setup_script(env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run ``ws_load_setup.py``; raises ``RuntimeError`` with its output on failure."""
    result = subprocess.run(
        [PYTHON, str(BENCH / "ws_load_setup.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(f"ws_load_setup.py {args[0]}:\n{result.stderr[-4000:]}")
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def http_take_seat(port: int, code: str, seat: str, name: str, cookie_name: str) -> str:
    """Take ``seat`` through its seat link, as a browser does; returns the session key.

    Raises ``RuntimeError`` when the server does not seat the player at the table.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        link = f"/g/{code}/seat/{seat}/"
        connection.request("GET", link)
        response = connection.getresponse()
        response.read()
        cookies = http.cookies.SimpleCookie()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookies.load(header)
        token = cookies["csrftoken"].value
        body = urllib.parse.urlencode({"name": name, "seat": seat, "csrfmiddlewaretoken": token})
        connection.request(
            "POST",
            f"/g/{code}/seat/",
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={token}",
                "Referer": f"http://127.0.0.1:{port}{link}",
            },
        )
        response = connection.getresponse()
        response.read()
        location = response.getheader("Location") or ""
        for header in response.headers.get_all("Set-Cookie") or []:
            cookies.load(header)
        if response.status != 302 or not location.endswith(f"/g/{code}/play/"):
            raise RuntimeError(f"{code} {seat}: seat link answered {response.status} {location}")
        return cookies[cookie_name].value
    finally:
        connection.close()


# --------------------------------------------------------------------------------------------
# The systems under test


@dataclass
class Options:
    games: int
    rate: float
    duration: float
    processes: int
    layer: str
    db: str
    saturate: bool
    saturation_games: int
    step_seconds: float
    warmup: float
    drain: float
    settle: float
    saturation_start: float
    ladder_steps: int
    bisect_steps: int
    clients: int
    connect_concurrency: int
    systems: list[str]
    http_games: int
    spread: str
    profile: Path | None
    quick: bool
    as_json: bool


def serving_process(spread: str, game: int, seat: int, processes: int) -> int:
    """Which of ``processes`` a seat connects to: its game's seats in turn (``seats``, as a
    load balancer that ignores the path spreads them), or all of a game's seats on one
    process, games in turn (``games``, as a proxy that routes by the game's path)."""
    if spread == "games":
        return game % processes
    return (game * SEATS_PER_GAME + seat) % processes


@dataclass
class Deployment:
    """Running servers of one system and the games their clients play."""

    name: str
    servers: list[Proc]
    specs: list[client.GameSpec]
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Database:
    url: str
    kind: str


class Run:
    """Everything one invocation starts, stopped in reverse order at the end."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.stack = contextlib.ExitStack()
        self.tmp = Path(tempfile.mkdtemp(prefix="ratify-ws-load-"))
        self.stack.callback(shutil.rmtree, self.tmp, True)
        self.prefix = f"ratify-bench-{uuid.uuid4().hex[:8]}"
        self.database: Database | None = None

    def close(self) -> None:
        self.stack.close()

    def base_env(self) -> dict[str, str]:
        assert self.database is not None
        env = server_env(
            DATABASE_URL=self.database.url,
            # As in production: no query log, no debug pages.
            DJANGO_DEBUG="false",
            DJANGO_SECRET_KEY="bench-" + uuid.uuid4().hex,
            # Plain HTTP on loopback: no redirect to HTTPS, cookies sent without TLS.
            DJANGO_SECURE_SSL_REDIRECT="false",
            DJANGO_SECURE_COOKIES="false",
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        )
        if self.options.layer == "redis":
            env.update(REDIS_URL=REDIS_URL, RATIFY_CHANNEL_PREFIX=self.prefix)
        return env

    def make_database(self) -> None:
        if self.options.db == "postgres":
            url = self.stack.enter_context(postgres_database())
            self.database = Database(url, "postgres")
        else:
            self.database = Database(f"sqlite:///{self.tmp / 'bench.sqlite3'}", "sqlite")
        env = self.base_env()
        manage(env, "migrate", "--noinput")
        manage(env, "load_scenarios")

    def start(self, argv: list[str], env: dict[str, str], name: str, port: int) -> Proc:
        proc = Proc(argv, env, self.tmp / f"{name}-{port}.log")
        self.stack.callback(proc.stop)
        wait_for_port(proc, port)
        return proc

    def daphne(self, app: str, env: dict[str, str], name: str) -> tuple[Proc, int]:
        port = free_port()
        # Every system runs under the same server command as the project.
        argv = [sys.executable, "-m", "config.serve", "-b", "127.0.0.1", "-p", str(port), app]
        return self.start(argv, env, name, port), port

    # ----------------------------------------------------------------------------------------

    def deploy_ratify(self, name: str = "ratify") -> Deployment:
        """Ratify's servers: ``--processes`` of them, or one for ``ratify1`` (the one-process
        baseline of a two-process run)."""
        options = self.options
        env = self.base_env()
        processes = 1 if name == "ratify1" else options.processes
        servers: list[tuple[Proc, int]] = [
            self.daphne("config.asgi:application", env, f"{name}-{n}") for n in range(processes)
        ]
        setup_env = {k: v for k, v in env.items() if k != "REDIS_URL"}
        started = time.monotonic()
        made = setup_script(
            setup_env,
            "create",
            "--games",
            str(options.games),
            "--scenario",
            SCENARIO,
            "--script-from",
            str(options.http_games),
        )
        cookie_name = str(made["session_cookie"])
        games: list[dict[str, Any]] = made["games"]
        http_seats = 0
        for index, game in enumerate(games[: options.http_games]):
            for order, seat in enumerate(game["seats"]):
                _, port = servers[serving_process(options.spread, index, order, len(servers))]
                seat["session"] = http_take_seat(
                    port, game["code"], seat["key"], f"Player {index}-{order}", cookie_name
                )
                http_seats += 1
        ids = ",".join(str(game["id"]) for game in games)
        logs: dict[str, list[dict[str, Any]]] = setup_script(setup_env, "start", "--ids", ids)[
            "logs"
        ]
        specs: list[client.GameSpec] = []
        per_process = [0] * len(servers)
        split = 0
        for index, game in enumerate(games):
            seats = []
            serving = set()
            for order, seat in enumerate(game["seats"]):
                process = serving_process(options.spread, index, order, len(servers))
                per_process[process] += 1
                serving.add(process)
                _, port = servers[process]
                seats.append(
                    client.SeatSpec(
                        key=seat["key"],
                        role=seat["role"],
                        country=seat["country"],
                        url=f"ws://127.0.0.1:{port}/ws/games/{game['code']}/",
                        headers={
                            "Cookie": f"{cookie_name}={seat['session']}",
                            "Origin": f"http://127.0.0.1:{port}",
                        },
                    )
                )
            specs.append(client.GameSpec(game["code"], tuple(seats), tuple(logs[str(game["id"])])))
            split += len(serving) > 1
        notes = {
            "setup_seconds": round(time.monotonic() - started, 1),
            "seats_through_http_links": http_seats,
            "sockets_per_process": per_process,
            "games_across_processes": split,
        }
        return Deployment(name, [proc for proc, _ in servers], specs, notes)

    def deploy_baseline(self, name: str) -> Deployment:
        env = self.base_env()
        baselines = str(BENCH / "baselines")
        if name == "raw":
            port = free_port()
            argv = [PYTHON, str(BENCH / "baselines" / "raw_ws.py"), str(port)]
            proc = self.start(argv, env, name, port)
        elif name == "asgi":
            env["PYTHONPATH"] = baselines
            proc, port = self.daphne("asgi_room:application", env, name)
        else:
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT), baselines])
            if name == "channels_layer":
                env["RATIFY_BENCH_CHANNEL_LAYER"] = "project"
            proc, port = self.daphne("channels_room:application", env, name)
        keys = [
            ("A-chief", "chief", "A"),
            ("A1", "constituent", "A"),
            ("A2", "constituent", "A"),
            ("A3", "constituent", "A"),
            ("B-chief", "chief", "B"),
            ("B1", "constituent", "B"),
            ("B2", "constituent", "B"),
            ("B3", "constituent", "B"),
        ]
        specs = [
            client.GameSpec(
                f"r{index}",
                tuple(
                    client.SeatSpec(
                        key,
                        role,
                        country,
                        f"ws://127.0.0.1:{port}/room/r{index}/?seat={key}",
                        {"Origin": f"http://127.0.0.1:{port}"},
                    )
                    for key, role, country in keys
                ),
            )
            for index in range(self.options.games)
        ]
        return Deployment(name, [proc], specs)


# --------------------------------------------------------------------------------------------
# Clients


class Clients:
    """The client processes of one system."""

    def __init__(self, specs: list[client.GameSpec], count: int, seed: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.count = max(1, min(count, len(specs)))
        self.assigned = [specs[w :: self.count] for w in range(self.count)]
        self.pipes: list[Connection] = []
        self.processes: list[BaseProcess] = []
        for index, chunk in enumerate(self.assigned):
            parent, child = context.Pipe()
            process = context.Process(
                target=client.worker_main, args=(child, chunk, seed + index), daemon=True
            )
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    def ask(self, messages: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        """Send each worker its message and gather the answers; raises ``TimeoutError``."""
        for pipe, message in zip(self.pipes, messages, strict=True):
            pipe.send(message)
        deadline = time.monotonic() + timeout
        answers: list[dict[str, Any]] = []
        for pipe in self.pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError("a client process did not answer in time")
            answers.append(pipe.recv())
        return answers

    def connect(self, concurrency: int) -> dict[str, Any]:
        """Open every socket, at most ``concurrency`` handshakes at once in all."""
        each = max(1, concurrency // self.count)
        answers = self.ask(
            [{"action": "connect", "concurrency": each}] * self.count, client.OPEN_TIMEOUT * 4
        )
        errors: Counter[str] = Counter()
        for answer in answers:
            errors.update(answer["errors"])
        return {
            "seats": sum(a["seats"] for a in answers),
            "failed": sum(a["failed"] for a in answers),
            "failures": [f for a in answers for f in a["failures"]][:5],
            "seconds": round(max(a["seconds"] for a in answers), 1),
            "errors": dict(errors),
        }

    def step(self, step: int, games: int, rate: float, seconds: float, drain: float) -> list[Any]:
        messages = []
        for worker in range(self.count):
            active = max(0, math.ceil((games - worker) / self.count))
            messages.append(
                {
                    "action": "step",
                    "step": step,
                    "games": active,
                    "rate": rate,
                    "seconds": seconds,
                    "drain": drain,
                }
            )
        return self.ask(messages, seconds + drain + CLIENT_TIMEOUT_MARGIN)

    def settle(self, seconds: float) -> dict[str, Any]:
        """Wait (bounded) until every command sent so far is answered and delivered."""
        answers = self.ask(
            [{"action": "settle", "seconds": seconds}] * self.count,
            seconds + CLIENT_TIMEOUT_MARGIN,
        )
        return {
            "settled": all(a["settled"] for a in answers),
            "seconds": round(max(a["seconds"] for a in answers), 1),
            "pending": sum(a["pending"] for a in answers),
        }

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ask([{"action": "close"}] * self.count, 60)
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGKILL)
                process.join(timeout=10)


# --------------------------------------------------------------------------------------------
# Measuring


def percentile(values: np.ndarray[Any, Any], q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def summarise(
    answers: list[dict[str, Any]],
    cores: dict[str, float],
    wall: float,
    games: int,
    sockets: int,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    latencies = np.array([v for a in answers for v in a["latencies"]], dtype=np.float64)
    acks = np.array([v for a in answers for v in a["ack_latencies"]], dtype=np.float64)
    errors: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    for answer in answers:
        errors.update(answer["errors"])
        actions.update(answer["actions"])
    deliveries = sum(a["deliveries"] for a in answers)
    commands = sum(a["commands"] for a in answers)
    gaps = sum(a["gaps"] for a in answers)
    undelivered = sum(a["undelivered"] for a in answers)
    undelivered_total = sum(a.get("undelivered_total", 0) for a in answers)
    duplicates = sum(a["duplicates"] for a in answers)
    unanswered = sum(a["unanswered"] for a in answers)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    row: dict[str, Any] = {
        "games": games,
        "sockets": sockets,
        "rate": rate,
        "seconds": seconds,
        "commands": commands,
        "commands_per_s": round(commands / seconds, 1),
        "deliveries": deliveries,
        "deliveries_per_s": round(deliveries / seconds, 1),
        "visible_deliveries": sum(a["visible"] for a in answers),
        "p50_ms": ms(percentile(latencies, 50)),
        "p95_ms": ms(percentile(latencies, 95)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(float(latencies.max()) if latencies.size else None),
        "ack_p50_ms": ms(percentile(acks, 50)),
        "ack_p99_ms": ms(percentile(acks, 99)),
        "lost": gaps + undelivered,
        "gaps": gaps,
        "undelivered": undelivered,
        "undelivered_total": undelivered_total,
        "duplicates": duplicates,
        "errors": sum(errors.values()) + unanswered,
        "error_codes": dict(errors),
        "unanswered": unanswered,
        "stale_deliveries": sum(a["stale"] for a in answers),
        "drained": all(a["drained"] for a in answers),
        **cores,
        "client_cpu_cores": round(sum(a["cpu_seconds"] for a in answers) / wall, 2),
        "late_sends": sum(a["late_sends"] for a in answers),
        "max_send_lag_ms": round(max(a["max_send_lag_ms"] for a in answers), 1),
        "actions": dict(actions),
    }
    row["passed"] = bool(
        row["p99_ms"] is not None
        and row["p99_ms"] <= SATURATION_P99_MS
        and row["lost"] == 0
        and duplicates == 0
        and row["errors"] == 0
        and row["drained"]
    )
    return row


class Profiler:
    """py-spy recording a server process for a while (raw collapsed stacks)."""

    def __init__(self, pid: int, seconds: float, out: Path) -> None:
        self.out = out
        self.process = subprocess.Popen(
            [
                PY_SPY,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, int(seconds))),
                "--rate",
                "100",
                "--format",
                "raw",
                "--nonblocking",
                "-o",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    def finish(self) -> None:
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        if self.out.exists():
            (self.out.with_suffix(".summary.txt")).write_text(profile_summary(self.out))


def profile_summary(path: Path, top: int = 40) -> str:
    """Inclusive and own share of samples per function, from py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    lines = [f"{total} samples", "", "inclusive %  function"]
    lines += [f"{100 * n / total:10.1f}  {name}" for name, n in inclusive.most_common(top)]
    lines += ["", "own %  function"]
    lines += [f"{100 * n / total:6.1f}  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines) + "\n"


def measure(run: Run, deployment: Deployment, log: Any) -> dict[str, Any]:
    """Connect every seat, then the fixed load and (with --saturate) the saturation ladder."""
    options = run.options
    pids = [p.pid for p in deployment.servers]
    idle_rss = sum(rss_kib(pid) for pid in pids)
    sockets = sum(len(spec.seats) for spec in deployment.specs)
    clients = Clients(deployment.specs, options.clients, seed=7)
    result: dict[str, Any] = {
        "label": SYSTEM_LABELS[deployment.name],
        "server_pids": pids,
        "notes": deployment.notes,
    }
    try:
        log(f"{deployment.name}: connecting {sockets} sockets")
        result["connect"] = clients.connect(options.connect_concurrency)
        if result["connect"]["failed"]:
            log(f"{deployment.name}: sockets failed to connect: {result['connect']}")
        connected_rss = sum(rss_kib(pid) for pid in pids)
        step = 0
        if options.warmup > 0:
            # Gently when a ladder follows: a warm-up that overloads would spoil its first step.
            warm_rate = (
                min(options.rate, options.saturation_start) if options.saturate else options.rate
            )
            answers = clients.step(step, options.games, warm_rate, options.warmup, options.drain)
            step += 1
            if not all(a["drained"] for a in answers):
                clients.settle(options.settle)

        def run_step(games: int, rate: float, seconds: float, profile: bool = False) -> Any:
            nonlocal step
            profilers = []
            if profile and options.profile is not None:
                options.profile.mkdir(parents=True, exist_ok=True)
                profilers = [
                    Profiler(pid, seconds, options.profile / f"{deployment.name}-{pid}.txt")
                    for pid in pids
                ]
            before = MachineSample.take(pids)
            started = time.monotonic()
            answers = clients.step(step, games, rate, seconds, options.drain)
            wall = time.monotonic() - started
            cores = before.cores_until(MachineSample.take(pids), wall)
            step += 1
            for profiler in profilers:
                profiler.finish()
            settled = None
            if not all(a["drained"] for a in answers):
                # A backlog in the server would spoil the next step: let it clear (bounded).
                settled = clients.settle(options.settle)
                log(f"{deployment.name}: settling after an overloaded step: {settled}")
            row = summarise(
                answers,
                cores,
                wall,
                games,
                sockets,
                rate,
                seconds,
            )
            row["settle_after"] = settled
            if not row["passed"]:
                # An overloaded server reads a backlog of commands late, in a burst: the next
                # step's first commands, sent within the clients' own limit, would land in the
                # same window of the server's rate limit and be refused (``rate_limited``).
                time.sleep(SERVER_RATE_WINDOW_SECONDS)
            log(
                f"{deployment.name}: {games} games x {rate:g}/s: "
                f"{row['deliveries_per_s']:.0f} deliveries/s, p99 {row['p99_ms']} ms, "
                f"lost {row['lost']}, errors {row['errors']}"
            )
            return row

        if options.saturate:
            # The ladder first: the fixed load may overload the server, and the backlog it
            # leaves would spoil every later step.
            result["saturation"] = saturate(run_step, options)
        log(f"{deployment.name}: fixed load")
        result["fixed"] = run_step(options.games, options.rate, options.duration, profile=True)
        loaded_rss = sum(rss_kib(pid) for pid in pids)
        result["memory"] = {
            "idle_rss_kib": idle_rss,
            "connected_rss_kib": connected_rss,
            "loaded_rss_kib": loaded_rss,
            "kib_per_seat": round((max(connected_rss, loaded_rss) - idle_rss) / sockets, 1),
        }
    finally:
        clients.close()
    return result


def spread_load(load: float, options: Options) -> tuple[int, float]:
    """The games and the rate per game that offer ``load`` commands per second: the ladder's
    games (``--saturation-games``) while each stays within ``MAX_RATE``, then more of the
    connected games at ``MAX_RATE`` each, up to all of them (where the ladder is capped)."""
    games = min(options.saturation_games, options.games)
    if load / games > MAX_RATE:
        games = min(options.games, math.ceil(load / MAX_RATE))
    return games, round(min(load / games, MAX_RATE), 3)


def saturate(run_step: Any, options: Options) -> dict[str, Any]:
    """Find the highest passing load (commands per second offered): double from the start rate
    until a step fails (or halve until one passes), then bisect between the two; the best
    passing step's figures. A load fails only when its step fails twice in a row: one latency
    spike (a collection pause, the machine's other work) does not end the ladder below what the
    system sustains. Past ``MAX_RATE`` per game the load is spread over more of the connected
    games (``spread_load``), so a fast system is not capped by the clients' rate per seat."""
    steps: list[dict[str, Any]] = []
    first_games = min(options.saturation_games, options.games)
    best: dict[str, Any] | None = None
    low: float | None = None
    high: float | None = None
    failed: dict[str, Any] | None = None  # the last step at ``high``
    load = options.saturation_start * first_games
    top_load = options.games * MAX_RATE

    def attempt(at: float) -> dict[str, Any]:
        games, rate = spread_load(at, options)
        row: dict[str, Any] = {}
        for _ in range(2):
            row = run_step(games, rate, options.step_seconds)
            steps.append(row)
            if row["passed"]:
                break
        return row

    for _ in range(options.ladder_steps):
        row = attempt(load)
        if row["passed"]:
            low = load
            if best is None or row["deliveries_per_s"] > best["deliveries_per_s"]:
                best = row
            if high is not None or load * 2 > top_load:
                break
            load *= 2
        else:
            high, failed = load, row
            if low is not None or load / 2 < MIN_RATE * first_games:
                break
            load /= 2
    if low is not None and high is not None:
        for _ in range(options.bisect_steps):
            middle = math.sqrt(low * high)
            row = attempt(middle)
            if row["passed"]:
                low = middle
                if best is None or row["deliveries_per_s"] > best["deliveries_per_s"]:
                    best = row
            else:
                high, failed = middle, row
    return {
        "games": first_games,
        "steps": steps,
        "best": best,
        "deliveries_per_s": best["deliveries_per_s"] if best else 0.0,
        # What the lowest failing load delivered: the saturation lies between the two.
        "failed_at": failed["deliveries_per_s"] if failed is not None and best else None,
        "capped": high is None,
    }


# --------------------------------------------------------------------------------------------
# Report


def ratios(systems: dict[str, Any]) -> dict[str, Any]:
    ours = systems.get("ratify", {})
    out: dict[str, Any] = {}
    ours_sat = ours.get("saturation", {}).get("deliveries_per_s")
    ours_p99 = ours.get("fixed", {}).get("p99_ms")
    for name in ("raw", "asgi", "channels", "channels_layer"):
        other = systems.get(name)
        if other is None:
            continue
        other_sat = other.get("saturation", {}).get("deliveries_per_s")
        if ours_sat is not None and other_sat:
            out[f"saturation_vs_{name}"] = round(ours_sat / other_sat, 3)
        other_p99 = other.get("fixed", {}).get("p99_ms")
        if ours_p99 is not None and other_p99:
            out[f"fixed_p99_vs_{name}"] = round(ours_p99 / other_p99, 2)
    one = systems.get("ratify1", {}).get("saturation", {}).get("deliveries_per_s")
    if ours_sat is not None and one:
        out["saturation_vs_one_process"] = round(ours_sat / one, 3)
    return out


def ratio_range(ours: dict[str, Any], other: dict[str, Any]) -> str | None:
    """Where the saturation ratio of ``ours`` to ``other`` lies given the ladder's steps: each
    saturation is between its best passing step and the lowest failing one."""
    ours_sat, other_sat = ours.get("saturation", {}), other.get("saturation", {})
    if not (ours_sat.get("failed_at") and other_sat.get("failed_at")):
        return None
    # A collapsing server may deliver less at the failing load than at the passing one.
    ours_top = max(ours_sat["failed_at"], ours_sat["deliveries_per_s"])
    other_top = max(other_sat["failed_at"], other_sat["deliveries_per_s"])
    low = ours_sat["deliveries_per_s"] / other_top
    high = ours_top / other_sat["deliveries_per_s"]
    return f"between {low:.3f} and {high:.3f} within the ladder's steps"


def targets(options: Options, systems: dict[str, Any], ratio: dict[str, Any]) -> list[Any]:
    """The issue's targets that this run's options can judge."""
    ours = systems.get("ratify")
    if ours is None or options.quick:
        return []
    fixed = ours["fixed"]
    judged: list[dict[str, Any]] = []

    def judge(name: str, value: Any, limit: str, met: bool, note: str | None = None) -> None:
        judged.append({"name": name, "value": value, "limit": limit, "met": met, "note": note})

    one_process = options.processes == 1
    if one_process:
        judge(
            f"{fixed['games']} games x {fixed['rate']:g}/s, one process ({options.layer}): p99",
            fixed["p99_ms"],
            f"<= {TARGET_FIXED_P99_MS:g} ms, 0 lost",
            fixed["p99_ms"] is not None
            and fixed["p99_ms"] <= TARGET_FIXED_P99_MS
            and fixed["lost"] == 0
            and fixed["duplicates"] == 0,
        )
    else:
        judge(
            f"{fixed['games']} games x {fixed['rate']:g}/s, two processes: p99",
            fixed["p99_ms"],
            f"<= {TARGET_TWO_PROCESS_P99_MS:g} ms, 0 lost",
            fixed["p99_ms"] is not None
            and fixed["p99_ms"] <= TARGET_TWO_PROCESS_P99_MS
            and fixed["lost"] == 0,
        )
    if one_process and "saturation_vs_channels" in ratio:
        judge(
            "saturation vs plain Channels consumer",
            ratio["saturation_vs_channels"],
            f">= {TARGET_VS_CHANNELS:g}x",
            ratio["saturation_vs_channels"] >= TARGET_VS_CHANNELS,
            ratio_range(ours, systems.get("channels", {})),
        )
    if not one_process and "saturation_vs_one_process" in ratio:
        judge(
            "saturation of two processes vs one",
            ratio["saturation_vs_one_process"],
            f">= {TARGET_TWO_PROCESS_SCALING:g}x",
            ratio["saturation_vs_one_process"] >= TARGET_TWO_PROCESS_SCALING,
            scaling_ceiling(systems.get("ratify1", {}), os.cpu_count()),
        )
    if one_process and "saturation_vs_asgi" in ratio:
        judge(
            "saturation vs bare ASGI app on Daphne",
            ratio["saturation_vs_asgi"],
            f">= {TARGET_VS_ASGI:g}x",
            ratio["saturation_vs_asgi"] >= TARGET_VS_ASGI,
            ratio_range(ours, systems.get("asgi", {})),
        )
    judge(
        "server memory per connected seat (KiB)",
        ours["memory"]["kib_per_seat"],
        f"<= {TARGET_KIB_PER_SEAT:g}",
        ours["memory"]["kib_per_seat"] <= TARGET_KIB_PER_SEAT,
    )
    return judged


def scaling_ceiling(one_process: dict[str, Any], cpus: int | None) -> str | None:
    """What the machine leaves for a second process at one process's best saturation step.

    Two processes that each spent what one spends per delivery (server, clients, services)
    would fill the machine at ``cpus / busy`` times one process's deliveries: an upper bound
    of the ratio on this machine, since a second process only adds cost per delivery."""
    best = (one_process.get("saturation") or {}).get("best")
    if not best or not cpus or best.get("idle_cores") is None:
        return None
    busy = max(cpus - best["idle_cores"], 0.01)
    return (
        f"at most {cpus / busy:.2f}x on this machine: one process's best step kept {busy:.2f} "
        f"of {cpus} cores busy (server {best['server_cpu_cores']}, clients "
        f"{best['client_cpu_cores']}, PostgreSQL and Redis {best['services_cpu_cores']})"
    )


COLUMNS = [
    ("system", 30, "label"),
    ("games", 5, "games"),
    ("rate", 5, "rate"),
    ("cmd/s", 7, "commands_per_s"),
    ("deliv/s", 8, "deliveries_per_s"),
    ("p50", 7, "p50_ms"),
    ("p95", 7, "p95_ms"),
    ("p99", 7, "p99_ms"),
    ("max", 7, "max_ms"),
    ("ack99", 7, "ack_p99_ms"),
    ("lost", 5, "lost"),
    ("dup", 4, "duplicates"),
    ("err", 4, "errors"),
    ("srvCPU", 6, "server_cpu_cores"),
    ("cliCPU", 6, "client_cpu_cores"),
    ("svcCPU", 6, "services_cpu_cores"),
    ("idle", 5, "idle_cores"),
    ("ok", 3, "passed"),
]


def format_row(label: str, row: dict[str, Any]) -> str:
    cells = []
    for _, width, key in COLUMNS:
        value = label if key == "label" else row.get(key)
        if key == "rate":
            text = f"{value:g}"
        elif isinstance(value, bool):
            text = "yes" if value else "NO"
        elif isinstance(value, float):
            text = f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"
        elif value is None:
            text = "-"
        else:
            text = str(value)
        cells.append(text.ljust(width) if key == "label" else text.rjust(width))
    return " ".join(cells)


def table(report: dict[str, Any]) -> str:
    header = " ".join(
        name.ljust(width) if key == "label" else name.rjust(width) for name, width, key in COLUMNS
    )
    out = [
        f"Ratify websocket load benchmark ({report['config']['summary']})",
        f"machine: {report['machine']['cpus']} CPUs, load average before "
        f"{report['machine']['loadavg_before']}, after {report['machine']['loadavg_after']}",
        "latencies in ms, from the command leaving its sender to the event at each seat;",
        "deliv/s = event frames (placeholders included) received by all seats per second;",
        "srvCPU/cliCPU/svcCPU = cores used by the server processes / the client processes /",
        "PostgreSQL and Redis; idle = cores of the machine left idle.",
        "",
        "Fixed load",
        header,
    ]
    systems = report["systems"]
    for name, result in systems.items():
        out.append(format_row(SYSTEM_LABELS[name], result["fixed"]))
    if any("saturation" in r for r in systems.values()):
        out += ["", "Saturation ladder (p99 <= 100 ms, 0 lost, 0 errors)", header]
        for name, result in systems.items():
            for row in result.get("saturation", {}).get("steps", []):
                out.append(format_row(SYSTEM_LABELS[name], row))
        out += ["", "Saturation: highest passing deliveries/s"]
        for name, result in systems.items():
            sat = result.get("saturation")
            if sat is not None:
                if sat["capped"]:
                    bracket = " (capped: the ladder's top load, every game at its top rate, passed)"
                elif sat.get("failed_at"):
                    bracket = f" (the next load failed at {sat['failed_at']:.0f})"
                else:
                    bracket = ""
                out.append(f"  {SYSTEM_LABELS[name]:<30} {sat['deliveries_per_s']:>9.0f}{bracket}")
    out += ["", "Memory (server RSS)"]
    for name, result in systems.items():
        memory = result["memory"]
        out.append(
            f"  {SYSTEM_LABELS[name]:<30} idle {memory['idle_rss_kib'] / 1024:.0f} MiB, "
            f"loaded {memory['loaded_rss_kib'] / 1024:.0f} MiB, "
            f"{memory['kib_per_seat']:.1f} KiB per seat"
        )
    out += ["", "Connect"]
    for name, result in systems.items():
        connect = result["connect"]
        out.append(
            f"  {SYSTEM_LABELS[name]:<30} {connect['seats']} sockets in {connect['seconds']} s, "
            f"{connect['failed']} failed"
        )
    if report["ratios"]:
        out += ["", "Ratify as a ratio of each baseline (same run)"]
        out += [f"  {key}: {value}" for key, value in report["ratios"].items()]
    if report["targets"]:
        out += ["", "Targets"]
        for target in report["targets"]:
            mark = "met" if target["met"] else "MISSED"
            out.append(
                f"  {mark:<6} {target['name']}: {target['value']} (target {target['limit']})"
            )
            if target.get("note"):
                out.append(f"         {target['note']}")
    return "\n".join(out)


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", type=int, default=200, help="games (8 sockets each)")
    parser.add_argument(
        "--rate", type=float, default=1.0, help="commands per game per second (fixed load)"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of fixed load")
    parser.add_argument("--processes", type=int, choices=(1, 2), default=1)
    parser.add_argument(
        "--spread",
        choices=("seats", "games"),
        default="games",
        help="with two processes: each game is served by one process, games in turn (games, as "
        "docs/deploy.md routes them), or a game's seats alternate between them (seats)",
    )
    parser.add_argument("--layer", choices=("memory", "redis"), default="memory")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--saturate", action="store_true", help="also step the rate up until p99 > 100 ms"
    )
    parser.add_argument(
        "--saturation-games", type=int, default=100, help="games played in the saturation steps"
    )
    parser.add_argument(
        "--saturation-start", type=float, default=0.125, help="first rate of the ladder"
    )
    parser.add_argument("--step-seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument(
        "--connect-concurrency",
        type=int,
        default=32,
        help="websocket handshakes in flight at once (Daphne drops one not accepted in 5 s)",
    )
    parser.add_argument(
        "--systems",
        default="ratify,raw,asgi,channels,channels_layer",
        help="comma-separated: ratify, raw, asgi, channels, channels_layer (and ratify1: one "
        "Ratify process, added to --processes 2 --saturate)",
    )
    parser.add_argument(
        "--http-games",
        type=int,
        default=1,
        help="games whose seats are taken through the seat links over HTTP",
    )
    parser.add_argument(
        "--profile", type=Path, help="record each Ratify server with py-spy into this folder"
    )
    parser.add_argument("--quick", action="store_true", help="a short run for smoke tests")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEM_LABELS]
    if unknown:
        parser.error(f"unknown systems: {', '.join(unknown)}")
    if args.processes == 2 and args.layer != "redis":
        parser.error("--processes 2 needs --layer redis (the in-memory layer is per process)")
    if "ratify1" in systems and args.processes != 2:
        parser.error("ratify1 is the one-process baseline of a run with --processes 2")
    if args.processes == 2 and args.saturate and "ratify" in systems and "ratify1" not in systems:
        # Two processes' saturation is judged against one process's, measured in the same run.
        systems.insert(systems.index("ratify"), "ratify1")
    options = Options(
        games=args.games,
        rate=args.rate,
        duration=args.duration,
        processes=args.processes,
        layer=args.layer,
        db=args.db,
        saturate=args.saturate,
        saturation_games=args.saturation_games,
        step_seconds=args.step_seconds,
        warmup=3.0,
        drain=5.0,
        settle=20.0,
        saturation_start=args.saturation_start,
        ladder_steps=12,
        bisect_steps=3,
        clients=args.clients,
        connect_concurrency=args.connect_concurrency,
        systems=systems,
        http_games=args.http_games,
        spread=args.spread,
        profile=args.profile,
        quick=args.quick,
        as_json=args.json,
    )
    if args.quick:
        options.games = min(args.games, 2)
        options.rate = 2.0 if args.rate == 1.0 else args.rate
        options.duration = min(args.duration, 3.0)
        options.step_seconds = 2.0
        options.warmup = 1.0
        options.drain = 5.0
        options.saturation_games = options.games
        options.saturate = True
        options.saturation_start = options.rate
        options.ladder_steps = 2
        options.bisect_steps = 0
        options.settle = 10.0
        options.http_games = min(args.http_games, options.games)
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    run = Run(options)
    loadavg_before = [round(v, 2) for v in os.getloadavg()]
    systems: dict[str, Any] = {}
    try:
        if {"ratify", "ratify1", "channels", "channels_layer"} & set(options.systems):
            log(f"database: {options.db}, migrate + load_scenarios")
            run.make_database()
        else:
            run.database = Database(f"sqlite:///{run.tmp / 'unused.sqlite3'}", "sqlite")
        for name in options.systems:
            log(f"{name}: starting")
            deployment = (
                run.deploy_ratify(name)
                if name in ("ratify", "ratify1")
                else run.deploy_baseline(name)
            )
            try:
                systems[name] = measure(run, deployment, log)
            finally:
                for server in deployment.servers:
                    server.stop()
    except Exception as failure:
        log(f"harness failure: {failure!r}")
        run.close()
        raise
    run.close()
    ratio = ratios(systems)
    report: dict[str, Any] = {
        "config": {
            "summary": (
                f"{options.games} games x 8 seats, {options.rate:g} cmd/game/s for "
                f"{options.duration:g} s, {options.processes} process(es)"
                + (f" (spread by {options.spread})" if options.processes > 1 else "")
                + ", "
                f"{options.layer} layer, {options.db}" + (", quick" if options.quick else "")
            ),
            "games": options.games,
            "rate": options.rate,
            "duration": options.duration,
            "processes": options.processes,
            "spread": options.spread,
            "layer": options.layer,
            "db": options.db,
            "saturate": options.saturate,
            "saturation_games": options.saturation_games,
            "step_seconds": options.step_seconds,
            "clients": options.clients,
            "scenario": SCENARIO,
            "quick": options.quick,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": loadavg_before,
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        },
        "systems": systems,
        "ratios": ratio,
        "targets": targets(options, systems, ratio),
    }
    if options.as_json:
        print(json.dumps(report, indent=1))
    else:
        print(table(report))
    return 0 if all(t["met"] for t in report["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
