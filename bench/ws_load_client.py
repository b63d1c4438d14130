"""The simulated players of ``bench/ws_load.py``: client processes, their sockets, their games.

A parent process starts several ``worker_main`` processes and talks to each over a pipe:
``connect`` (open every seat's websocket, say hello, wait for the snapshots), then ``step``
(play every active game at a rate for a while, wait for the answers, report) as often as it
likes, then ``close``. A game's eight seats live in one process, so one clock
(``time.monotonic``) stamps the command's departure and each seat's arrival.

Latency. The server numbers a game's events 1, 2, 3... and answers a command with ``ack`` and
the seq of the last event it caused; a command's events are consecutive and come before its
ack. So the command that caused event ``seq`` is the one whose ack seq is the smallest at or
above ``seq``. Every (event, seat) arrival is matched that way to its command's departure once
the ack is in. Events no command of ours caused (the server's clock, bots: none in a run) are
counted as unattributed.

Loss. Each seat must receive every seq once and in order (an event it may not see arrives as a
placeholder, which counts as delivered): a seq that skips ahead counts the skipped seqs as lost
(gaps), one at or below the last counts as a duplicate, and at the end of a step every seat
still short of the last seq its game acknowledged counts the rest as undelivered.

What players do. In a Ratify game a per-game director keeps a copy of the full game state
(folded from the log ``ws_load_setup.py start`` printed) and picks each action from a lively
class's mix, asking the engine (``rules.apply``) whether the rules accept it and what it leads
to: chat at the table and in caucus, statements, proposals, accepts, straw polls and their
answers, and, every so often, an agreement followed by the constituents' ballots in Level II.
Only one command that changes what the rules accept next is in flight per game at a time (chat
commutes with everything), so the copy stays exact. In a baseline room every action is a chat
line of the same size.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import itertools
import json
import random
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvloop
import ws_wire

from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.rules import RuleViolation, apply, fold
from negotiation.engine.state import LEVEL1, LEVEL2, GameState

#: The server refuses more than 20 frames in 2 s from one socket; stay under it.
SEAT_FRAMES_PER_WINDOW = 16
SEAT_WINDOW_SECONDS = 2.0
OPEN_TIMEOUT = 180.0
#: Chat lines are this long, so every system carries frames of the same size.
CHAT_TEXT_LENGTH = 48
FILLER = "Let us meet halfway on both cuts and move on now. " * 4

#: Weights of the actions in Level I and Level II (a lively class: mostly talk).
LEVEL1_MIX = {
    "chat_table": 15,
    "chat_caucus": 30,
    "statement": 5,
    "propose": 12,
    "accept": 8,
    "open_straw_poll": 6,
    "answer_straw_poll": 16,
}
LEVEL2_MIX = {"chat_table": 15, "chat_caucus": 35, "statement": 5, "cast_ballot": 45}
#: Each mix as the names and cumulative weights ``random.choices`` takes (summed once here,
#: not at every action: the clients share the server's cores).
MIX_CHOICES = {
    level: (list(mix), list(itertools.accumulate(mix.values())))
    for level, mix in ((LEVEL1, LEVEL1_MIX), (LEVEL2, LEVEL2_MIX))
}
#: Level I actions of the rules (not chat) before the chiefs agree and Level II opens.
AGREE_AFTER = (12, 30)


@dataclass(frozen=True)
class SeatSpec:
    key: str
    role: str
    country: str
    url: str
    headers: dict[str, str]


@dataclass(frozen=True)
class GameSpec:
    """One game (or baseline room) and its seats; ``log`` (event dicts) only for Ratify."""

    name: str
    seats: tuple[SeatSpec, ...]
    log: tuple[dict[str, Any], ...] | None = None


@dataclass
class StepReport:
    """What one client process saw during one step (latencies in milliseconds)."""

    latencies: list[float] = field(default_factory=list)
    ack_latencies: list[float] = field(default_factory=list)
    commands: int = 0
    acks: int = 0
    deliveries: int = 0
    visible: int = 0
    unattributed: int = 0
    stale: int = 0
    gaps: int = 0
    duplicates: int = 0
    undelivered: int = 0
    unanswered: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    late_sends: int = 0
    max_send_lag_ms: float = 0.0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    drained: bool = True


class Seat:
    """One player's websocket."""

    def __init__(self, game: Game, spec: SeatSpec) -> None:
        self.game = game
        self.spec = spec
        self.socket: ws_wire.Connection | None = None
        self.last_seq: int | None = None
        self.snapshot = asyncio.Event()
        self.sent_at: deque[float] = deque()
        self.closed_unexpectedly = False

    async def open(self, limit: asyncio.Semaphore) -> None:
        async with limit:
            socket = await ws_wire.connect(
                self.spec.url,
                self._received,
                self._ended,
                headers=self.spec.headers,
                open_timeout=OPEN_TIMEOUT,
                max_size=2**23,
            )
            socket.send(json.dumps({"type": "hello", "last_seq": None}))
            self.socket = socket
            await asyncio.wait_for(self.snapshot.wait(), OPEN_TIMEOUT)

    def room(self, now: float) -> bool:
        """Whether this seat may send a frame at ``now`` without tripping the server's rate
        limit."""
        sent_at = self.sent_at
        while sent_at and now - sent_at[0] >= SEAT_WINDOW_SECONDS:
            sent_at.popleft()
        return len(sent_at) < SEAT_FRAMES_PER_WINDOW

    def send(self, text: str) -> None:
        assert self.socket is not None
        self.sent_at.append(time.monotonic())
        self.socket.send(text)

    def _received(self, raw: str | bytes, arrived: float) -> None:
        game = self.game
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "event":
            seq = int(frame["seq"])
            last = self.last_seq
            if last is None:
                return
            if seq == last + 1:
                self.last_seq = seq
            elif seq > last + 1:
                game.gaps += seq - last - 1
                self.last_seq = seq
            else:
                game.duplicates += 1
                return
            game.arrivals.append((seq, arrived))
            if frame.get("event") is not None:
                game.visible += 1
        elif kind == "ack":
            game.on_ack(str(frame["id"]), int(frame["seq"]), arrived)
        elif kind == "error":
            game.on_error(frame.get("id"), str(frame.get("code")))
        elif kind == "snapshot":
            self.last_seq = int(frame["seq"])
            game.top_seq = max(game.top_seq, self.last_seq)
            self.snapshot.set()

    def _ended(self, code: int | None, failure: Exception | None) -> None:
        game = self.game
        if game.closing:
            return
        self.closed_unexpectedly = True
        # As a reader of ``websockets`` saw it: a normal closure ends the messages, anything
        # else is an error.
        ordinary = failure is None and code in ws_wire.NORMAL_CLOSURE
        game.errors["connection_closed" if ordinary else "connection_lost"] += 1


@dataclass
class Pending:
    sent: float
    step: int
    sensitive: bool
    after: GameState | None


class Game:
    """One game's seats and the director that plays it."""

    def __init__(self, spec: GameSpec, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        self.seats = {s.key: Seat(self, s) for s in spec.seats}
        self.chiefs = [s.key for s in spec.seats if s.role == "chief"]
        self.mirror: GameState | None = None
        if spec.log is not None:
            self.mirror = fold(e.event_from_dict(dict(payload)) for payload in spec.log)
        self.pending: dict[str, Pending] = {}
        self.sensitive: str | None = None
        self.counter = 0
        # Acks of the game so far (seq, departure, step), sorted by seq when resolved.
        self.acks: list[tuple[int, float, int]] = []
        self.arrivals: list[tuple[int, float]] = []
        self.top_seq = 0
        self.visible = 0
        self.gaps = 0
        self.duplicates = 0
        self.errors: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()
        self.ack_latencies: dict[int, list[float]] = {}
        self.commands: Counter[int] = Counter()
        self.acked: Counter[int] = Counter()
        self.rules_moves = 0
        self.agree_after = rng.randint(*AGREE_AFTER)
        self.closing = False

    # ----------------------------------------------------------------------------------------
    # Answers

    def on_ack(self, command_id: str, seq: int, arrived: float) -> None:
        pending = self.pending.pop(command_id, None)
        if pending is None:
            self.errors["unknown_ack"] += 1
            return
        self.acks.append((seq, pending.sent, pending.step))
        self.top_seq = max(self.top_seq, seq)
        self.acked[pending.step] += 1
        self.ack_latencies.setdefault(pending.step, []).append((arrived - pending.sent) * 1000)
        if pending.sensitive:
            self.sensitive = None
            if pending.after is not None:
                self.mirror = pending.after
                self.rules_moves += 1

    def on_error(self, command_id: object, code: str) -> None:
        self.errors[code] += 1
        if isinstance(command_id, str):
            pending = self.pending.pop(command_id, None)
            if pending is not None and pending.sensitive:
                self.sensitive = None

    # ----------------------------------------------------------------------------------------
    # The director

    @property
    def usable(self) -> bool:
        """Every seat connected (a game with a seat that failed to connect is not played)."""
        return all(
            s.socket is not None and s.last_seq is not None and not s.closed_unexpectedly
            for s in self.seats.values()
        )

    async def drive(self, rate: float, until: float, step: int, report: StepReport) -> None:
        if not self.usable:
            return
        interval = 1.0 / rate
        due = time.monotonic() + self.rng.uniform(0, interval)
        while due < until:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                lag = -delay * 1000
                if lag > 5:
                    report.late_sends += 1
                report.max_send_lag_ms = max(report.max_send_lag_ms, lag)
            self.act(step)
            due += interval

    def act(self, step: int) -> None:
        choice = self._choose()
        if choice is None:
            self.actions["skipped"] += 1
            return
        seat, name, args, after = choice
        self.counter += 1
        command_id = f"{self.spec.name}.{self.counter}"
        if "text" in args:
            args["text"] = (command_id + " " + FILLER)[:CHAT_TEXT_LENGTH]
        sensitive = after is not None
        self.pending[command_id] = Pending(time.monotonic(), step, sensitive, after)
        if sensitive:
            self.sensitive = command_id
        self.commands[step] += 1
        self.actions[name] += 1
        frame = {"type": "command", "id": command_id, "name": name, "args": args}
        self.pending[command_id].sent = time.monotonic()
        self.seats[seat].send(json.dumps(frame, separators=(",", ":")))

    def _free(self, keys: list[str]) -> list[str]:
        now = time.monotonic()
        return [k for k in keys if self.seats[k].room(now)]

    def _choose(self) -> tuple[str, str, dict[str, Any], GameState | None] | None:
        """The next action: (seat, command name, args, the state it leads to when it is a move
        of the rules rather than chat), or None when every seat is at the rate limit."""
        state = self.mirror
        if state is None:
            return self._chat(room=True)
        if state.phase not in MIX_CHOICES:
            return None
        names, cumulative = MIX_CHOICES[state.phase]
        name = self.rng.choices(names, cum_weights=cumulative)[0]
        if name == "statement":
            chiefs = self._free(self.chiefs)
            if not chiefs:
                return self._chat(room=False)
            return self.rng.choice(chiefs), "statement", {"text": ""}, None
        if name.startswith("chat") or self.sensitive is not None:
            return self._chat(room=False, table=name == "chat_table")
        move = self._move(state, name)
        if move is None:
            return self._chat(room=False)
        return move

    def _chat(
        self, *, room: bool, table: bool = False
    ) -> tuple[str, str, dict[str, Any], GameState | None] | None:
        if table:
            chiefs = self._free(self.chiefs)
            if chiefs:
                return self.rng.choice(chiefs), "chat", {"channel": "table", "text": ""}, None
        members = self._free(list(self.seats))
        if not members:
            return None
        seat = self.seats[self.rng.choice(members)].spec
        channel = "room" if room else f"caucus:{seat.country}"
        return seat.key, "chat", {"channel": channel, "text": ""}, None

    def _move(
        self, state: GameState, name: str
    ) -> tuple[str, str, dict[str, Any], GameState | None] | None:
        """A move of the rules the engine accepts now, with the state it leads to."""
        rng = self.rng
        issues = state.scenario.issues
        candidates: list[tuple[c.Command, dict[str, Any]]] = []

        def point() -> list[int | float]:
            values: list[int | float] = []
            for issue in issues:
                value = issue.min + issue.step * rng.randrange(issue.levels)
                values.append(int(value) if value == int(value) else float(value))
            return values

        now = time.monotonic()
        chiefs = self._free(self.chiefs)
        agreeing = state.phase == LEVEL1 and self.rules_moves >= self.agree_after
        if agreeing:
            # The chiefs agree: one tables the text the other last accepted.
            for chief in chiefs:
                other = next(k for k in self.chiefs if k != chief)
                accepted = state.acceptances.get(other)
                proposal = state.proposals.get(accepted) if accepted is not None else None
                if proposal is not None:
                    values = [int(v) if v == int(v) else float(v) for v in proposal.values]
                    candidates.append((c.Propose(chief, tuple(values)), {"values": values}))
            move = self._first_accepted(state, candidates, agreement=True)
            if move is not None:
                self.rules_moves = 0
                self.agree_after = rng.randint(*AGREE_AFTER)
                return move
            # Nobody has a text on the table yet: an ordinary move first.
            candidates = []
        if name == "propose" and chiefs:
            chief = rng.choice(chiefs)
            values = point()
            candidates.append((c.Propose(chief, tuple(values)), {"values": values}))
        elif name == "accept" and chiefs:
            for chief in chiefs:
                for proposal in state.proposals.values():
                    if proposal.by != chief:
                        candidates.append(
                            (
                                c.Accept(chief, proposal.proposal_id),
                                {"proposal_id": proposal.proposal_id},
                            )
                        )
        elif name == "open_straw_poll" and chiefs:
            chief = rng.choice(chiefs)
            values = point()
            candidates.append((c.OpenStrawPoll(chief, tuple(values)), {"values": values}))
        elif name == "answer_straw_poll":
            for poll in state.polls.values():
                if poll.closed:
                    continue
                country = state.scenario.country(poll.country)
                for member in country.constituents:
                    if member.key not in poll.answers and self.seats[member.key].room(now):
                        yes = rng.random() < 0.6
                        candidates.append(
                            (
                                c.AnswerStrawPoll(member.key, poll.poll_id, yes),
                                {"poll_id": poll.poll_id, "yes": yes},
                            )
                        )
        elif name == "cast_ballot":
            for member in state.scenario.members:
                if (
                    member.role == "constituent"
                    and member.key not in state.ballots
                    and self.seats[member.key].room(now)
                ):
                    yes = rng.random() < 0.7
                    candidates.append((c.CastBallot(member.key, yes), {"yes": yes}))
        return self._first_accepted(state, candidates, agreement=False)

    def _first_accepted(
        self,
        state: GameState,
        candidates: list[tuple[c.Command, dict[str, Any]]],
        *,
        agreement: bool,
    ) -> tuple[str, str, dict[str, Any], GameState | None] | None:
        """The first candidate (in random order) the rules accept and that reaches a tentative
        agreement exactly when ``agreement`` asks for one."""
        self.rng.shuffle(candidates)
        for command, args in candidates:
            try:
                after, events = apply(state, command, time.time())
            except RuleViolation:
                continue
            agreed = any(isinstance(ev, e.TentativeAgreement) for ev in events)
            if agreed == agreement:
                return command.actor, command.NAME, args, after
        return None

    # ----------------------------------------------------------------------------------------
    # Accounting

    def settled(self) -> bool:
        """Every command answered and every seat holding the last seq acknowledged."""
        if self.pending:
            return False
        if not self.usable:
            return True
        return all(
            s.last_seq is not None and s.last_seq >= self.top_seq for s in self.seats.values()
        )

    def behind(self) -> int:
        """Deliveries missing now: for each seat, acknowledged seqs it has not received."""
        return sum(
            self.top_seq - s.last_seq
            for s in self.seats.values()
            if s.last_seq is not None and s.last_seq < self.top_seq
        )

    def resolve(self, reports: dict[int, StepReport], final: bool) -> None:
        """Match arrivals to their commands; what is not acknowledged yet waits, unless
        ``final``."""
        self.acks.sort()
        ack_seqs = [seq for seq, _, _ in self.acks]
        waiting: list[tuple[int, float]] = []
        current = reports[max(reports)]
        for seq, arrived in self.arrivals:
            index = bisect.bisect_left(ack_seqs, seq)
            if index == len(ack_seqs):
                if final:
                    current.unattributed += 1
                else:
                    waiting.append((seq, arrived))
                continue
            _, sent, step = self.acks[index]
            report = reports.get(step)
            if report is None:
                # Caused by a command of an earlier step, answered late: not this step's.
                current.stale += 1
                continue
            report.latencies.append((arrived - sent) * 1000)
            report.deliveries += 1
        self.arrivals = waiting
        # Acks below every seat's last seq are no longer needed for matching.
        floor = min((s.last_seq or 0) for s in self.seats.values())
        keep = bisect.bisect_left(ack_seqs, floor)
        if keep > 1:
            del self.acks[: keep - 1]


class Worker:
    def __init__(self, conn: Connection, specs: list[GameSpec], seed: int) -> None:
        self.conn = conn
        rng = random.Random(seed)
        self.games = [Game(spec, random.Random(rng.random())) for spec in specs]

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message: dict[str, Any] = await loop.run_in_executor(None, self.conn.recv)
            action = message["action"]
            if action == "connect":
                self.conn.send(await self.connect(int(message["concurrency"])))
                # What is connected lives until the end: out of the collector's sight, so a
                # collection (one every few thousand arrivals with the default thresholds)
                # no longer walks every game's state and socket.
                gc.collect()
                gc.freeze()
            elif action == "step":
                self.conn.send(await self.step(message))
            elif action == "settle":
                self.conn.send(await self.settle(float(message["seconds"])))
            elif action == "close":
                await self.close()
                self.conn.send({"closed": True})
                return

    async def connect(self, concurrency: int) -> dict[str, Any]:
        limit = asyncio.Semaphore(concurrency)
        start = time.monotonic()
        seats = [seat for game in self.games for seat in game.seats.values()]
        results = await asyncio.gather(*(s.open(limit) for s in seats), return_exceptions=True)
        failures = [repr(r) for r in results if isinstance(r, BaseException)]
        errors: Counter[str] = Counter()
        for game in self.games:
            errors.update(game.errors)
            game.errors.clear()
        return {
            "errors": dict(errors),
            "seats": len(seats),
            "failed": len(failures),
            "failures": failures[:5],
            "seconds": time.monotonic() - start,
        }

    async def step(self, message: dict[str, Any]) -> dict[str, Any]:
        """Play the first ``games`` games at ``rate`` commands per game per second for
        ``seconds``, then wait up to ``drain`` seconds for every answer and event."""
        step = int(message["step"])
        rate = float(message["rate"])
        active = self.games[: int(message["games"])]
        report = StepReport()
        reports = {step: report}
        cpu = time.process_time()
        start = time.monotonic()
        until = start + float(message["seconds"])
        behind_before = sum(g.behind() for g in self.games)
        for game in self.games:
            game.errors.clear()
            game.gaps = game.duplicates = game.visible = 0
        await asyncio.gather(*(g.drive(rate, until, step, report) for g in active))
        drain_until = time.monotonic() + float(message["drain"])
        while time.monotonic() < drain_until and not all(g.settled() for g in self.games):
            await asyncio.sleep(0.05)
        report.drained = all(g.settled() for g in self.games)
        await asyncio.sleep(0.1)
        report.wall_seconds = time.monotonic() - start
        report.cpu_seconds = time.process_time() - cpu
        for game in self.games:
            game.resolve(reports, final=False)
            report.commands += game.commands.pop(step, 0)
            report.acks += game.acked.pop(step, 0)
            report.ack_latencies += game.ack_latencies.pop(step, [])
            report.gaps += game.gaps
            report.duplicates += game.duplicates
            report.visible += game.visible
            report.errors.update(game.errors)
            report.actions.update(game.actions)
            game.actions.clear()
            report.unanswered += sum(1 for p in game.pending.values() if p.step == step)
        behind_after = sum(g.behind() for g in self.games)
        # Events still missing at the end of the step, less those already missing at its start.
        report.undelivered = max(0, behind_after - behind_before)
        return {
            "latencies": report.latencies,
            "ack_latencies": report.ack_latencies,
            "commands": report.commands,
            "acks": report.acks,
            "deliveries": report.deliveries,
            "visible": report.visible,
            "gaps": report.gaps,
            "duplicates": report.duplicates,
            "undelivered": report.undelivered,
            "undelivered_total": behind_after,
            "unanswered": report.unanswered,
            "stale": report.stale,
            "errors": dict(report.errors),
            "actions": dict(report.actions),
            "late_sends": report.late_sends,
            "max_send_lag_ms": report.max_send_lag_ms,
            "cpu_seconds": report.cpu_seconds,
            "wall_seconds": report.wall_seconds,
            "drained": report.drained,
        }

    async def settle(self, seconds: float) -> dict[str, Any]:
        """Wait up to ``seconds`` for the answers to every command sent so far."""
        start = time.monotonic()
        # Every command answered means the server's backlog is gone; deliveries still missing
        # then are counted, not waited for (the server resends a missed seq only when the
        # game's next event shows the gap).
        while time.monotonic() - start < seconds and any(g.pending for g in self.games):
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        for game in self.games:
            game.ack_latencies.clear()
            game.commands.clear()
            game.acked.clear()
        return {
            "settled": all(g.settled() for g in self.games),
            "seconds": time.monotonic() - start,
            "pending": sum(len(g.pending) for g in self.games),
        }

    async def close(self) -> None:
        for game in self.games:
            game.closing = True
        sockets = [s.socket for g in self.games for s in g.seats.values() if s.socket is not None]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                asyncio.gather(*(s.close() for s in sockets), return_exceptions=True), 20
            )


def worker_main(conn: Connection, specs: list[GameSpec], seed: int) -> None:
    """Entry point of a client process."""
    # uvloop's loop reads a socket for about half the CPU time of asyncio's own: the clients
    # share the machine with the server they measure, so the less they take, the less they
    # slow it down (bench/README.md).
    # Arrivals are kept as tuples until a step ends: with the default threshold the youngest
    # generation was collected every 700 of them (8% of a client's CPU in a profile).
    gc.set_threshold(50_000, 20, 20)
    uvloop.run(Worker(conn, specs, seed).serve())
