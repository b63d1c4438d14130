"""Bad input: more than 10,000 generated frames per run through the real ASGI application.

Hypothesis makes the frames: malformed JSON, binary frames, wrong types, unknown commands,
values off the grid, NaN, infinities, 1e308, integers of thousands of digits, very long
strings, odd unicode, ids of other games, proposals and seats, frames far too large, and
floods beyond the rate limit. They go, in process (Channels' ``WebsocketCommunicator``), to
connections bound to seats, the host and a spectator of a started game.

Every frame must get the documented answer (docs/protocol.md) and nothing else: never a
traceback, an undocumented code or a closed connection. The game changes only through the
commands that were acked: after every example the new part of the log is split at the acks'
seqs and each part must be exactly what the engine decides for that command.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import operator
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import websockets
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st

from accounts.models import Player
from config.asgi import application
from negotiation import consumers, protocol, services
from negotiation.engine import events as e
from negotiation.engine.commands import INSTRUCTOR, StartGame
from negotiation.engine.rules import decide, fold
from negotiation.engine.scenario import Deadlines, GameDefaults
from negotiation.engine.state import ENDED, GameState
from negotiation.engine.visibility import SPECTATOR
from negotiation.models import Game, GameEvent, Scenario
from negotiation.runtime import runtime
from negotiation.selectors import HOST_SESSION_KEY
from tests.fault_support import (
    DATABASE_KINDS,
    Frame,
    documented_error_codes,
    host_cookie,
    live_database,
    new_game,
    new_session,
    seat_cookie,
)
from tests.live import Server, manage, server_env, start_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

#: Frames each run must send, at least, and how they are batched into examples.
FRAMES_PER_RUN = 10_000
EXAMPLES = 240
FRAMES_PER_EXAMPLE = (42, 56)

SEATS = ("A-chief", "A1", "A2", "A3", "B-chief", "B1", "B2", "B3")
#: The connections the frames go to: both chiefs, a constituent of each side, host, spectator.
WIRES = ("A-chief", "B-chief", "A1", "B2", "host", "spectator")
#: Seats of another scenario (Bonn 1978): no seat of this game.
FOREIGN_SEATS = ("de-chief", "us-chief", "de-spd", "us-producers")
#: The server's own limit, kept for the floods (the other frames go without one).
CONFIGURED_RATE_LIMIT = consumers.RATE_LIMIT_FRAMES
#: What docs/protocol.md promises.
MAX_FRAME_BYTES = 16_384
RATE_LIMIT_FRAMES = 20
RATE_LIMIT_SECONDS = 2.0
REPLAY_LIMIT = 500
#: Codes given before the game sees a command (so nothing about it is recorded).
FRAME_CODES = frozenset(
    {
        "bad_frame",
        "unknown_frame",
        "frame_too_large",
        "unknown_command",
        "forbidden",
        "rate_limited",
    }
)
#: Pings the test sends after each fuzzed frame carry t below this; fuzzed pings never do.
SENTINEL = -(10**15)
WAIT = 10.0
DOCUMENTED = documented_error_codes()
TRACEBACK = "Traceback (most recent call last)"
#: How the engine words a command it could not read (an exception it caught): counted.
UNREADABLE = "The command could not be read"


# --------------------------------------------------------------------------------------------
# Strategies

#: Rare kinds of frames: drawn one time in ten.
rarely = st.sampled_from([False] * 9 + [True])

odd_numbers = st.one_of(
    st.integers(),
    st.floats(),
    st.sampled_from(
        [-1, 11, 0.5, 5.000000001, 1e308, -1e308, 5e-324, -0.0, 2**53 + 1, 10**30, -(10**30)]
    ),
)
scalars = st.one_of(st.none(), st.booleans(), st.text(max_size=8), odd_numbers)
grid_values = st.integers(0, 10)
values = st.one_of(
    st.lists(grid_values, min_size=2, max_size=2),
    st.lists(grid_values, min_size=2, max_size=2),
    st.lists(st.one_of(grid_values, odd_numbers, scalars), max_size=8),
    st.dictionaries(st.sampled_from(["a_cut", "b_cut"]), grid_values),
    scalars,
)
small_ids = st.one_of(st.integers(1, 12), st.integers(1, 12), st.integers(), odd_numbers, scalars)
seat_keys = st.one_of(
    st.sampled_from(
        (
            *SEATS,
            *FOREIGN_SEATS,
            "",
            "instructor",
            "spectator",
            "system",
            "bot",
            "A-CHIEF",
            "a" * 41,
        )
    ),
    st.text(max_size=45),
    scalars,
)
#: The host may not seat bots or free seats of this game: bots would play commands nobody
#: acked to the test, and an emptied seat would end a connection's part in the run.
not_our_seats = seat_keys.filter(lambda key: key not in SEATS)
channels = st.one_of(
    st.sampled_from(
        ["table", "caucus:A", "caucus:B", "caucus:DE", "caucus:", "public", "Table", "caucus:A "]
    ),
    st.text(max_size=70),
    scalars,
)
ODD_TEXTS = (
    "",
    "   ",
    "\u0000",
    "\ud800",
    "a\udfff",
    "\u202eevil",
    "\ufeff",
    "\u200b",
    "e\u0301",
    "\U0001f3f3\ufe0f\u200d\U0001f308",
    "\x1b[31mred",
    "\r\n",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%s%n{}",
    "\\u0000",
)
long_texts = st.builds(
    operator.mul,
    st.sampled_from(["x", "\u00e9", "\u20ac", "\U0001f600", " "]),
    st.sampled_from([1999, 2000, 2001, 4000, 4001, 5000]),
)
texts = st.one_of(st.text(max_size=40), st.sampled_from(ODD_TEXTS), long_texts, scalars)
flags: st.SearchStrategy[Any] = st.one_of(
    st.booleans(), st.booleans(), st.sampled_from([0, 1, "true", None, [], {}])
)
amounts = st.one_of(st.integers(0, 12), st.integers(), odd_numbers, scalars)


def _args(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(fields)


COMMAND_ARGS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "propose": st.fixed_dictionaries({"values": values}, optional={"replies_to": small_ids}),
    "withdraw": _args(proposal_id=small_ids),
    "accept": _args(proposal_id=small_ids),
    "chat": _args(channel=channels, text=texts),
    "statement": _args(text=texts),
    "open_straw_poll": _args(values=values),
    "answer_straw_poll": _args(poll_id=small_ids, yes=flags),
    "close_straw_poll": _args(poll_id=small_ids),
    "offer_side_payment": _args(to=seat_keys, amount=amounts),
    "cast_ballot": _args(yes=flags),
    "choose_compliance": _args(comply=flags),
    "start_game": st.just({}),
    "advance_phase": st.just({}),
    "pause": st.just({}),
    "resume": st.just({}),
    "extend_deadline": _args(seconds=amounts),
    "end_game": st.just({}),
    "seat_bot": _args(seat=not_our_seats),
    "release_seat": _args(seat=not_our_seats),
    "announce": _args(text=texts),
}
#: Commands the table above does not know yet get these (most commands take a text or none).
OTHER_ARGS = st.one_of(st.just({}), _args(text=texts))
junk_args = st.one_of(
    st.dictionaries(st.text(max_size=8), scalars, max_size=3),
    st.lists(scalars, max_size=3),
    scalars,
)
command_names = st.one_of(
    st.sampled_from(sorted(protocol.ALL_COMMANDS)),
    st.sampled_from(sorted(protocol.ALL_COMMANDS)),
    st.sampled_from(["take_seat", "fire_deadline", "Propose", "propose ", "", "__class__", "ack"]),
    st.text(max_size=12),
    scalars,
)
valid_ids = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=10),
    st.sampled_from(["c1", "c2", "retry"]),
)
invalid_ids = st.one_of(
    st.sampled_from(["", " ", "a b", "\u00e9", "x" * 65, "\x7f", "\t"]), scalars
)
command_ids = rarely.flatmap(lambda rare: invalid_ids if rare else valid_ids)
#: The id of a fitting command: the fuzzer makes it unique, as a client does.
FRESH_ID = "@fresh"
MUTATIONS = (None, None, None, None, "no id", "no args", "no name", "actor", "game", "seq")


@st.composite
def command_frames(draw: st.DrawFn) -> str:
    name = draw(command_names)
    arguments = COMMAND_ARGS.get(name, OTHER_ARGS) if isinstance(name, str) else junk_args
    args = draw(st.one_of(arguments, arguments, arguments, junk_args))
    frame: dict[str, Any] = {"type": "command", "id": draw(command_ids), "name": name, "args": args}
    mutation = draw(st.sampled_from(MUTATIONS))
    if mutation in ("no id", "no args", "no name"):
        del frame[mutation.split()[1]]
    elif mutation == "actor":
        # A frame naming another actor, another game or a seq is refused (extra fields).
        frame["actor"] = draw(seat_keys)
    elif mutation == "game":
        frame["game"] = draw(st.sampled_from(["OTHER1", "ABCDEF", 2]))
    elif mutation == "seq":
        frame["seq"] = draw(small_ids)
    return json.dumps(frame, ensure_ascii=draw(st.booleans()))


ping_times = st.one_of(st.none(), odd_numbers, scalars).filter(
    lambda t: not (isinstance(t, int | float) and t <= SENTINEL)
)
hello_frames = st.builds(
    lambda seq, extra: json.dumps({"type": "hello", "last_seq": seq, **extra}),
    st.one_of(st.none(), st.integers(-2, 700), st.integers(), odd_numbers, scalars),
    st.one_of(st.just({}), st.just({}), st.just({}), st.dictionaries(st.text(max_size=4), scalars)),
)
ping_frames = st.builds(
    lambda t, extra: json.dumps({"type": "ping", "t": t, **extra}),
    ping_times,
    st.one_of(st.just({}), st.just({}), st.dictionaries(st.text(max_size=4), scalars)),
)
NEAR_JSON = (
    "{",
    "}",
    '{"type"',
    '{"type":"hello"',
    '{"type":"hello",}',
    "{'type':'hello'}",
    '{"type":"ping","t":1}{"type":"ping","t":2}',
    '\ufeff{"type":"ping","t":1}',
    '{"type":"ping","t":1}  ',
    '{"type":"ping","type":"hello"}',
    '{"type":"command","type":"ping"}',
    "null",
    "[]",
    '""',
    "0",
    "true",
    "NaN",
    '{"__proto__":{"type":"ping"}}',
    '{"type":"ping","t":1e5000}',
)
HUGE_NUMBERS = (
    "1e308",
    "1e309",
    "-1e400",
    "1e-400",
    "NaN",
    "Infinity",
    "-Infinity",
    "1" + "0" * 308,
    "-" + "9" * 400,
    "9" * 4300,
    "9" * 4301,
    "1" + "0" * 100_000,
)
HUGE_TEMPLATES = (
    '{{"type":"ping","t":{n}}}',
    '{{"type":"hello","last_seq":{n}}}',
    '{{"type":"command","id":"big1","name":"propose","args":{{"values":[{n},5]}}}}',
    '{{"type":"command","id":"big2","name":"accept","args":{{"proposal_id":{n}}}}}',
    '{{"type":"command","id":"big3","name":"offer_side_payment","args":{{"to":"A1","amount":{n}}}}}',
    '{{"type":"command","id":"big4","name":"extend_deadline","args":{{"seconds":{n}}}}}',
    '{{"type":"command","id":"big5","name":"open_straw_poll","args":{{"values":[5,{n}]}}}}',
    '{{"type":"command","id":"big6","name":"cast_ballot","args":{{"yes":{n}}}}}',
)
huge_number_frames = st.builds(
    lambda template, number: template.format(n=number),
    st.sampled_from(HUGE_TEMPLATES),
    st.sampled_from(HUGE_NUMBERS),
)
deep_frames = st.builds(
    lambda depth, inside: (
        '{"type":"ping","t":' + "[" * depth + "]" * depth + "}"
        if inside
        else "[" * depth + "]" * depth
    ),
    st.sampled_from([10, 100, 1000, 3000, 8000, 20000]),
    st.booleans(),
)
oversize_frames = st.one_of(
    st.builds(
        lambda padding: '{"type":"ping","t":1}' + " " * padding,
        st.sampled_from([16_300, 16_363, 16_364, 16_400, 60_000]),
    ),
    st.builds(
        lambda char, count: json.dumps(
            {"type": "command", "id": "wide", "name": char * count, "args": {}},
            ensure_ascii=False,
        ),
        st.sampled_from(["x", "\u00e9", "\u20ac", "\U0001f600"]),
        st.sampled_from([4000, 6000, 17_000]),
    ),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
).map(json.dumps)
typed_frames = st.builds(
    lambda kind, extra: json.dumps({"type": kind, **extra}),
    st.one_of(
        st.sampled_from(
            ["hello", "ping", "command", "Hello", "snapshot", "ack", "event", " ping", ""]
        ),
        scalars,
    ),
    st.dictionaries(
        st.sampled_from(["id", "name", "args", "t", "last_seq", "seq"]), scalars, max_size=3
    ),
)
# --------------------------------------------------------------------------------------------
# Strategies

#: Rare kinds of frames: drawn one time in ten.
rarely = st.sampled_from([False] * 9 + [True])
text_payloads = st.one_of(
    command_frames(),
    command_frames(),
    command_frames(),
    hello_frames,
    ping_frames,
    typed_frames,
    json_values,
    st.text(max_size=60),
    st.sampled_from(NEAR_JSON),
    huge_number_frames,
    rarely.flatmap(lambda rare: deep_frames if rare else command_frames()),
    rarely.flatmap(lambda rare: oversize_frames if rare else ping_frames),
)
binary_payloads = st.one_of(
    st.binary(max_size=60),
    text_payloads.map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.builds(lambda n: b"[" + b" " * n + b"]", st.sampled_from([100, 16_383, 20_000])),
)
payloads = st.one_of(text_payloads, text_payloads, text_payloads, binary_payloads)
#: Flood frames are answered one each (no hello among them).
flood_payloads = st.one_of(command_frames(), ping_frames)


# Commands that fit: the game moves on (proposals, acceptances, votes, phases), so that the
# other frames meet it in every phase.
good_values = st.lists(grid_values, min_size=2, max_size=2)
good_texts = st.text(min_size=1, max_size=30)
CHIEF_COMMANDS = {
    "propose": _args(values=good_values),
    "accept": _args(proposal_id=st.integers(1, 80)),
    "withdraw": _args(proposal_id=st.integers(1, 80)),
    "chat": _args(channel=st.sampled_from(["table", "caucus:A", "caucus:B"]), text=good_texts),
    "statement": _args(text=good_texts),
    "open_straw_poll": _args(values=good_values),
    "close_straw_poll": _args(poll_id=st.integers(1, 20)),
    "offer_side_payment": _args(to=st.sampled_from(SEATS), amount=st.integers(0, 12)),
    "choose_compliance": _args(comply=st.booleans()),
}
CONSTITUENT_COMMANDS = {
    "cast_ballot": _args(yes=st.booleans()),
    "answer_straw_poll": _args(poll_id=st.integers(1, 20), yes=st.booleans()),
    "chat": _args(channel=st.sampled_from(["caucus:A", "caucus:B"]), text=good_texts),
}
HOST_COMMANDS = {
    "pause": st.just({}),
    "resume": st.just({}),
    "advance_phase": st.just({}),
    "extend_deadline": _args(seconds=st.integers(1, 100)),
    "announce": _args(text=good_texts),
}


def _good(
    wires: tuple[str, ...], commands: dict[str, Any], names: list[str] | None = None
) -> st.SearchStrategy[tuple[str, str]]:
    return st.builds(
        lambda wire, name_args: (
            wire,
            json.dumps(
                {"type": "command", "id": FRESH_ID, "name": name_args[0], "args": name_args[1]}
            ),
        ),
        st.sampled_from(wires),
        st.sampled_from(names or sorted(commands)).flatmap(
            lambda name: st.tuples(st.just(name), commands[name])
        ),
    )


good_actions = st.one_of(
    _good(("A-chief", "B-chief"), CHIEF_COMMANDS),
    _good(("A-chief", "B-chief"), CHIEF_COMMANDS),
    _good(("A1", "B2"), CONSTITUENT_COMMANDS),
    # A paused game refuses nearly everything: the host resumes more often than it pauses.
    _good(("host",), HOST_COMMANDS, [*HOST_COMMANDS, "resume", "resume", "announce"]),
)


@dataclass(frozen=True)
class Flood:
    """More frames than the rate limit allows, at once, on a new connection of ``wire``."""

    wire: str
    payloads: tuple[str, ...]


floods = st.builds(
    Flood,
    st.sampled_from(("A-chief", "B-chief", "A1", "B2", "host")),
    st.lists(flood_payloads, min_size=RATE_LIMIT_FRAMES + 1, max_size=RATE_LIMIT_FRAMES + 16).map(
        tuple
    ),
)
examples = st.tuples(
    st.lists(
        st.one_of(good_actions, st.tuples(st.sampled_from(WIRES), payloads)),
        min_size=FRAMES_PER_EXAMPLE[0],
        max_size=FRAMES_PER_EXAMPLE[1],
    ),
    st.one_of(st.none(), st.none(), st.none(), floods),
)


# --------------------------------------------------------------------------------------------
# What a frame should get


def _size(payload: str | bytes) -> int:
    return len(payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload)


def _decode(payload: str | bytes) -> tuple[bool, Any]:
    """(whether the payload is JSON, the value). Nesting too deep for the parser is not JSON
    a server can use either."""
    try:
        return True, json.loads(payload)
    except (ValueError, RecursionError):
        return False, None


def _number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _valid_id(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= 64
        and all("\x21" <= ch <= "\x7e" for ch in value)
    )


def _valid_hello(frame: dict[str, Any]) -> bool:
    seq = frame.get("last_seq")
    return set(frame) <= {"type", "last_seq"} and (
        seq is None or (isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0)
    )


def _valid_ping(frame: dict[str, Any]) -> bool:
    return set(frame) <= {"type", "t"} and (frame.get("t") is None or _number(frame["t"]))


def _valid_command(frame: dict[str, Any]) -> bool:
    return (
        set(frame) <= {"type", "id", "name", "args"}
        and _valid_id(frame.get("id"))
        and isinstance(frame.get("name"), str)
        and isinstance(frame.get("args", {}), dict)
    )


# --------------------------------------------------------------------------------------------
# The arena: a started game and its connections


@dataclass
class Wire:
    """One connection under fuzz and what the test knows of it."""

    name: str
    viewer: str
    actor: str | None
    session: str
    host: bool
    socket: WebsocketCommunicator
    #: The last event seq it was sent.
    held: int = 0


@dataclass
class Arena:
    """A started game with every seat taken, its wires, and the log verified so far."""

    game_id: int
    code: str
    sessions: dict[str, str]
    state: GameState
    wires: dict[str, Wire] = field(default_factory=dict)
    #: The last seq any ack named; every event up to it has been verified or is pending.
    last_seq: int = 0
    #: Acks of commands applied in this example: (seq, actor, frame).
    fresh: list[tuple[int, str, str | bytes]] = field(default_factory=list)
    #: The answer the game gave to each (session, id), as command ids are scoped to the
    #: session's seat or role: ("ack", seq) or ("error", code).
    answered: dict[tuple[str, str], tuple[str, Any]] = field(default_factory=dict)


@dataclass
class Tally:
    frames: int = 0
    floods: int = 0
    arenas: int = 0
    applied: int = 0
    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    unreadable: list[str] = field(default_factory=list)


def _fuzz_scenario() -> Scenario:
    """GATT with a side-payment budget, so that offers can be made."""
    made = Scenario.objects.filter(slug="gatt-fuzz").first()
    if made is not None:
        return made
    call_command("load_scenarios", verbosity=0)
    gatt = Scenario.objects.get(slug="gatt")
    definition = json.loads(json.dumps(gatt.definition))
    for country in definition["countries"]:
        country["side_payment_budget"] = 10
    scenario, _ = Scenario.objects.update_or_create(
        slug="gatt-fuzz", defaults={"title": "GATT (fuzz)", "definition": definition}
    )
    return scenario


def _new_arena_game() -> tuple[Game, dict[str, str]]:
    """A started game of GATT without deadlines or bots, every seat held by a person."""
    settings_ = GameDefaults(rounds=10, compliance=True, deadlines=Deadlines(None, None, None))
    game = services.create_game(scenario=_fuzz_scenario(), settings=settings_)
    sessions: dict[str, str] = {}
    for seat in SEATS:
        player = Player.objects.create(display_name=f"Player {seat}")
        assert services.take_seat(game=game, player=player, seat_key=seat).accepted
        sessions[seat] = new_session(**{Player.SESSION_KEY: str(player.pk)})
    sessions["host"] = new_session(**{HOST_SESSION_KEY: [game.code]})
    sessions["spectator"] = new_session()
    started = services.submit(game_id=game.pk, command=StartGame(INSTRUCTOR), issuer="test")
    assert started.accepted, started
    game.refresh_from_db()
    return game, sessions


class Fuzzer:
    """Sends the frames of each example and checks every answer against the protocol."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.tally = Tally()
        self.sentinels = 0
        self.fresh_ids = 0
        self.examples = 0
        self.failure: BaseException | None = None
        self.arena = self._build()

    # Arena -----------------------------------------------------------------------------------

    def _build(self) -> Arena:
        game, sessions = _new_arena_game()
        state = services.load_state(game.pk)
        arena = Arena(game.pk, game.code, sessions, state, last_seq=game.last_seq)
        for name in WIRES:
            wire = self.loop.run_until_complete(self._open(arena, name))
            arena.wires[name] = wire
        self.tally.arenas += 1
        return arena

    async def _open(self, arena: Arena, name: str) -> Wire:
        host = name == "host"
        socket = WebsocketCommunicator(
            application,
            f"/ws/games/{arena.code}/" + ("?role=host" if host else ""),
            headers=[
                (b"origin", b"http://testserver"),
                (b"cookie", f"sessionid={arena.sessions[name]}".encode()),
            ],
        )
        connected, _ = await socket.connect(timeout=WAIT)
        assert connected
        viewer = INSTRUCTOR if host else SPECTATOR if name == "spectator" else name
        actor = None if viewer == SPECTATOR else viewer
        wire = Wire(name, viewer, actor, arena.sessions[name], host, socket)
        await socket.send_to(text_data=json.dumps({"type": "hello", "last_seq": None}))
        while True:
            frame = await self._next(wire)
            if frame["type"] == "snapshot":
                assert frame["seq"] == arena.last_seq
                return wire

    def close(self) -> None:
        for wire in self.arena.wires.values():
            if not wire.socket.future.done():
                self.loop.run_until_complete(wire.socket.disconnect())

    # One example -----------------------------------------------------------------------------

    def run(self, frames: list[tuple[str, str | bytes]], flood: Flood | None) -> None:
        """Play one example. After a failure the arena is broken (a timed-out connection is
        cancelled): every later example fails with the first failure, which is the one to read.
        """
        if self.failure is not None:
            raise self.failure
        # Hypothesis seeds the global random alike for every example, and the in-memory
        # channel layer names channels with it: connections opened in two examples would share
        # a name, and one leaving its group would take the other out. A seed per example.
        self.examples += 1
        random.seed(f"fuzz-example-{self.examples}")
        try:
            self.loop.run_until_complete(self._play(frames, flood))
            self._verify_log()
        except BaseException as failure:
            self.failure = failure
            raise
        if self.arena.state.phase == ENDED:
            self.close()
            self.arena = self._build()

    async def _play(self, frames: list[tuple[str, str | bytes]], flood: Flood | None) -> None:
        for name, payload in frames:
            wire = self.arena.wires[name]
            if isinstance(payload, str) and FRESH_ID in payload:
                self.fresh_ids += 1
                payload = payload.replace(FRESH_ID, f"fresh-{self.fresh_ids}", 1)
            self.tally.frames += 1
            self._expect_hello(wire, payload)
            try:
                await self._push(wire, payload)
                replies = await self._until_sentinel(wire)
            except AssertionError:
                raise
            except Exception as error:
                # The consumer raised: Channels ends the connection (1011 behind Daphne).
                raise AssertionError(
                    f"{wire.name} sent {payload[:300]!r}: the server failed with "
                    f"{type(error).__name__}: {str(error)[:300]}"
                ) from error
            self._check(wire, payload, replies)
            await self._settle()
        if flood is not None:
            await self._flood(flood)
            await self._settle()

    async def _push(self, wire: Wire, payload: str | bytes) -> None:
        key = "text" if isinstance(payload, str) else "bytes"
        await wire.socket.send_input({"type": "websocket.receive", key: payload})

    async def _until_sentinel(self, wire: Wire) -> list[Frame]:
        """Every frame but events up to the pong of a ping sent after the fuzzed frame (the
        consumer answers frames in order, so these are the answers to it)."""
        self.sentinels += 1
        token = SENTINEL - self.sentinels
        await wire.socket.send_to(text_data=json.dumps({"type": "ping", "t": token}))
        replies: list[Frame] = []
        while True:
            frame = await self._next(wire)
            if frame["type"] == "pong" and frame["t"] == token:
                return replies
            if frame["type"] != "event":
                replies.append(frame)

    async def _next(self, wire: Wire) -> Frame:
        """The next frame sent to ``wire``, checked against the server frames' schemas."""
        output = await wire.socket.receive_output(timeout=WAIT)
        assert output["type"] != "websocket.close", f"{wire.name}: the server closed: {output}"
        assert output["type"] == "websocket.send", output
        text = output.get("text")
        assert isinstance(text, str), f"{wire.name}: a binary frame from the server"
        frame: Frame = json.loads(text)
        protocol.server_frame.validate_python(frame)
        if frame["type"] == "error":
            self.tally.codes[frame["code"]] += 1
            assert frame["code"] in DOCUMENTED, f"undocumented code: {frame}"
            assert frame["message"], frame
            assert TRACEBACK not in text, frame
            if frame["message"].startswith(UNREADABLE):
                self.tally.unreadable.append(frame["message"])
        elif frame["type"] == "event":
            assert frame["seq"] == wire.held + 1, (
                f"{wire.name}: seq {frame['seq']} after {wire.held}"
            )
            wire.held = frame["seq"]
        elif frame["type"] == "snapshot":
            wire.held = frame["seq"]
        return frame

    async def _settle(self) -> None:
        """Wait until every wire holds every event applied so far."""
        for wire in self.arena.wires.values():
            while wire.held < self.arena.last_seq:
                frame = await self._next(wire)
                assert frame["type"] in ("event", "presence"), f"{wire.name}: unasked {frame}"

    def _expect_hello(self, wire: Wire, payload: str | bytes) -> None:
        """A valid hello replays the events after its seq: the wire holds that seq again."""
        if _size(payload) > MAX_FRAME_BYTES:
            return
        ok, frame = _decode(payload)
        if ok and isinstance(frame, dict) and frame.get("type") == "hello" and _valid_hello(frame):
            seq = frame.get("last_seq")
            if (
                seq is not None
                and seq <= self.arena.last_seq
                and self.arena.last_seq - seq <= REPLAY_LIMIT
            ):
                wire.held = seq

    # The oracle ------------------------------------------------------------------------------

    def _check(self, wire: Wire, payload: str | bytes, replies: list[Frame]) -> None:
        """The answers to one frame are the documented ones."""
        answers = [r for r in replies if r["type"] != "presence"]
        context = f"{wire.name} sent {payload[:300]!r} and got {answers}"
        if _size(payload) > MAX_FRAME_BYTES:
            assert answers == [_error(None, "frame_too_large", answers)], context
            return
        assert not any(r.get("code") == "frame_too_large" for r in answers), context
        ok, frame = _decode(payload)
        if not ok or not isinstance(frame, dict):
            assert [r.get("code") for r in answers] == ["bad_frame"], context
            return
        kind = frame.get("type")
        if kind not in ("hello", "ping", "command"):
            assert [r.get("code") for r in answers] == ["unknown_frame"], context
        elif kind == "ping":
            if _valid_ping(frame):
                assert [(r["type"], r.get("t")) for r in answers] == [("pong", frame.get("t"))], (
                    context
                )
            else:
                assert [r.get("code") for r in answers] == ["bad_frame"], context
        elif kind == "hello":
            if _valid_hello(frame):
                self._check_hello(frame, replies, answers, context)
            else:
                assert [r.get("code") for r in answers] == ["bad_frame"], context
        elif not _valid_command(frame):
            assert [r.get("code") for r in answers] == ["bad_frame"], context
        else:
            assert len(answers) == 1 and answers[0]["type"] in ("ack", "error"), context
            self._check_command(wire, payload, frame, answers[0], context)

    def _check_hello(
        self, frame: dict[str, Any], replies: list[Frame], answers: list[Frame], context: str
    ) -> None:
        seq = frame.get("last_seq")
        current = self.arena.last_seq
        assert any(r["type"] == "presence" for r in replies), context
        if seq is None or seq > current or current - seq > REPLAY_LIMIT:
            assert [(r["type"], r.get("seq")) for r in answers] == [("snapshot", current)], context
        else:
            assert answers == [], context

    def _check_command(
        self, wire: Wire, payload: str | bytes, frame: dict[str, Any], answer: Frame, context: str
    ) -> None:
        assert answer["id"] == frame["id"], context
        name = frame["name"]
        if name not in protocol.ALL_COMMANDS:
            assert answer.get("code") == "unknown_command", context
            return
        allowed = protocol.INSTRUCTOR_COMMANDS if wire.host else protocol.PLAYER_COMMANDS
        if wire.actor is None or name not in allowed:
            assert answer.get("code") == "forbidden", context
            return
        assert answer["type"] == "ack" or answer["code"] not in FRAME_CODES, context
        self._record_answer(wire.session, wire.actor, payload, frame["id"], answer, context)

    def _record_answer(
        self,
        session: str,
        actor: str,
        payload: str | bytes,
        command_id: str,
        answer: Frame,
        context: str,
    ) -> None:
        """Commands are idempotent by id: a retried id gets the first answer again."""
        key = (session, command_id)
        given_ = ("ack", answer["seq"]) if answer["type"] == "ack" else ("error", answer["code"])
        first = self.arena.answered.get(key)
        if first is not None:
            assert given_ == first or given_ == ("error", "bad_command"), (first, context)
            return
        if answer["type"] == "ack":
            assert answer["seq"] > self.arena.last_seq, context
            self.arena.last_seq = answer["seq"]
            self.arena.fresh.append((answer["seq"], actor, payload))
            self.arena.answered[key] = given_
        elif answer["code"] != "bad_command":
            # bad_command may come from the schema (not recorded) or the game (recorded).
            self.arena.answered[key] = given_

    async def _flood(self, flood: Flood) -> None:
        """Frames beyond the limit are refused as rate_limited; the connection stays open."""
        self.tally.floods += 1
        template = self.arena.wires[flood.wire]
        socket = WebsocketCommunicator(
            application,
            f"/ws/games/{self.arena.code}/" + ("?role=host" if template.host else ""),
            headers=[
                (b"origin", b"http://testserver"),
                (b"cookie", f"sessionid={template.session}".encode()),
            ],
        )
        connected, _ = await socket.connect(timeout=WAIT)
        assert connected
        wire = Wire(
            f"{flood.wire} (flood)",
            template.viewer,
            template.actor,
            template.session,
            template.host,
            socket,
        )
        limit = consumers.RATE_LIMIT_FRAMES
        consumers.RATE_LIMIT_FRAMES = CONFIGURED_RATE_LIMIT
        try:
            began = time.monotonic()
            for payload in flood.payloads:
                await self._push(wire, payload)
            answers: list[Frame] = []
            while len(answers) < len(flood.payloads):
                frame = await self._next(wire)
                assert frame["type"] not in ("event", "snapshot"), f"no hello, yet {frame}"
                if frame["type"] != "presence":
                    answers.append(frame)
            quick = time.monotonic() - began < RATE_LIMIT_SECONDS
        finally:
            consumers.RATE_LIMIT_FRAMES = limit
        for index, (payload, answer) in enumerate(zip(flood.payloads, answers, strict=True)):
            self.tally.frames += 1
            if answer.get("code") == "rate_limited":
                # A refused command is named by its id, when the frame carries a readable one.
                assert answer == _error(_command_id(payload), "rate_limited", [answer]), answer
                assert index >= RATE_LIMIT_FRAMES, f"frame {index + 1} refused within the limit"
            else:
                assert index < RATE_LIMIT_FRAMES or not quick, f"frame {index + 1} answered"
                self._check(wire, payload, [answer])
        # Refused frames do not close the connection.
        assert await socket.receive_nothing(timeout=0.05)
        assert not socket.future.done()
        await socket.disconnect()

    # The log ---------------------------------------------------------------------------------

    def _verify_log(self) -> None:
        """The log grew by exactly the events of the acked commands, each part what the engine
        decides for its command, and nothing else."""
        arena = self.arena
        stored = services.events_between(arena.game_id, arena.state.seq)
        seqs = [seq for seq, _ in stored]
        assert seqs == list(range(arena.state.seq + 1, arena.state.seq + 1 + len(seqs)))
        state = arena.state
        by_seq = dict(stored)
        for seq, actor, payload in sorted(arena.fresh, key=operator.itemgetter(0)):
            assert seq > state.seq, f"two acks at seq {seq}"
            frame = protocol.parse_client_frame(payload)
            assert isinstance(frame, protocol.CommandFrame)
            command = protocol.command_for(frame, actor)
            logged = [by_seq[s] for s in range(state.seq + 1, seq + 1)]
            decided = decide(state, command, time.time())
            assert [e.event_to_dict(x) for x in logged] == [e.event_to_dict(x) for x in decided], (
                frame,
                logged,
            )
            state = fold(logged, state)
            self.tally.applied += 1
        assert state.seq == (seqs[-1] if seqs else arena.state.seq), (
            f"events without an acked command: {stored[state.seq - arena.state.seq :]}"
        )
        arena.state = state
        arena.fresh.clear()


def _error(command_id: str | None, code: str, answers: list[Frame]) -> Frame:
    """The error frame with ``code`` (its message whatever the answer says)."""
    message = answers[0].get("message", "") if answers else ""
    return {"type": "error", "id": command_id, "code": code, "message": message}


# --------------------------------------------------------------------------------------------
# The run


@pytest.fixture
def fuzz_loop(settings: Any) -> Iterator[asyncio.AbstractEventLoop]:
    """A loop of the test's own (hypothesis drives it from synchronous code), a fresh channel
    layer and runtime, and no rate limit except in floods (which use the documented one)."""
    settings.RATIFY_BOT_DELAY = 0
    channel_layers.backends.clear()
    services.state_cache.clear()
    runtime.reset()
    limit = consumers.RATE_LIMIT_FRAMES
    consumers.RATE_LIMIT_FRAMES = 10**9
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        consumers.RATE_LIMIT_FRAMES = limit
        # What the closed connections set off ends before the database is flushed.
        loop.run_until_complete(runtime.settle())
        runtime.reset()
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
        channel_layers.backends.clear()
        services.state_cache.clear()


def test_ten_thousand_fuzzed_frames_get_documented_answers_and_change_nothing_unacked(
    fuzz_loop: asyncio.AbstractEventLoop,
) -> None:
    other, _ = _new_arena_game()
    other_log = list(GameEvent.objects.filter(game=other).values_list("seq", "payload"))
    fuzzer = Fuzzer(fuzz_loop)

    # Shrinking would replay examples against a game that has moved on since: off.
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(example=examples)
    def fuzz(example: tuple[list[tuple[str, str | bytes]], Flood | None]) -> None:
        fuzzer.run(*example)

    try:
        fuzz()
    finally:
        fuzzer.close()
    tally = fuzzer.tally
    print(
        f"\n[fuzz] {tally.frames} frames in {EXAMPLES} examples, {tally.floods} floods, "
        f"{tally.applied} commands applied, {tally.arenas} games, "
        f"{len(tally.unreadable)} commands the engine could not read; codes {dict(tally.codes)}"
    )
    assert tally.frames >= FRAMES_PER_RUN
    # The run reached every refusal of the frame layer, and the game applied commands.
    assert set(tally.codes) >= FRAME_CODES, tally.codes
    assert tally.applied >= 50
    assert list(GameEvent.objects.filter(game=other).values_list("seq", "payload")) == other_log


# --------------------------------------------------------------------------------------------
# Odd text in the database itself: both databases, through a real server

#: Texts that JSON carries (as escapes) but a database may refuse to store.
STORED_ODDITIES = (
    "nul \u0000 inside",
    "lone \ud800 high surrogate",
    "lone \udfff low surrogate",
    "byte order mark \ufeff",
    "right-to-left \u202e override",
    "emoji \U0001f600",
    "combining e\u0301",
    "escape \x1b[31m red",
)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("database", DATABASE_KINDS)
async def test_odd_text_in_commands_gets_an_answer_on_every_database(
    database: str, tmp_path: Path
) -> None:
    """Chat lines, statements and announcements that hold NUL, lone surrogates and other odd
    characters are stored or refused with a documented code; the connection stays open."""
    problems: list[str] = []
    with live_database(database, tmp_path) as url:
        env = server_env(DATABASE_URL=url)
        manage(env, "migrate", "--noinput")
        manage(env, "load_scenarios")
        game = new_game(env, "gatt", deadlines={"level1": None, "level2": None, "compliance": None})
        server = start_server(env, tmp_path, "odd-text")
        try:
            chief = await sync_to_async(seat_cookie)(server.base, game["code"], "A-chief")
            host = await sync_to_async(host_cookie)(server.base, game["code"], game["host_token"])
            for cookie, path, commands in (
                (chief, "", (("chat", {"channel": "table"}), ("statement", {}))),
                (host, "?role=host", (("announce", {}),)),
            ):
                for index, text in enumerate(STORED_ODDITIES):
                    for name, args in commands:
                        frame = {
                            "type": "command",
                            "id": f"odd-{index}-{name}",
                            "name": name,
                            "args": {**args, "text": text},
                        }
                        problem = await _answer_over_a_real_socket(
                            server, f"/ws/games/{game['code']}/{path}", cookie, frame
                        )
                        if problem:
                            problems.append(f"{name} {text!r}: {problem}")
        finally:
            server.stop()
    assert not problems, "\n".join(problems)


async def _answer_over_a_real_socket(
    server: Server, path: str, cookie: str, frame: dict[str, Any]
) -> str:
    """Send ``frame`` on a new connection; what went wrong ("" when it was answered with an
    ack or a documented error and the connection stayed open)."""
    headers = {"Cookie": cookie, "Origin": server.base}
    async with websockets.connect(server.ws_base + path, additional_headers=headers) as socket:
        try:
            await socket.send(json.dumps(frame))
            while True:
                answer = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
                if answer.get("id") == frame["id"]:
                    break
            if answer["type"] == "error" and answer["code"] not in DOCUMENTED:
                return f"undocumented answer {answer}"
            await socket.send(json.dumps({"type": "ping", "t": 1}))
            while json.loads(await asyncio.wait_for(socket.recv(), WAIT))["type"] != "pong":
                pass
        except websockets.ConnectionClosed as closed:
            return f"the server closed the connection ({closed.rcvd})"
    return ""


def _command_id(payload: str | bytes) -> str | None:
    """The id a refusal of ``payload`` names: the command's id, if the frame has a readable one."""
    try:
        frame = protocol.parse_client_frame(payload)
    except protocol.FrameError as refusal:
        return refusal.command_id
    return frame.id if isinstance(frame, protocol.CommandFrame) else None
