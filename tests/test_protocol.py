"""Wire schemas: every client frame, every command's arguments, every server frame, the doc."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from negotiation import protocol
from negotiation.engine import commands as c

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def frame(**fields: Any) -> str:
    return json.dumps(fields)


# --------------------------------------------------------------------------------------------
# Client frames


def test_hello_with_and_without_a_seq() -> None:
    assert protocol.parse_client_frame(frame(type="hello", last_seq=None)) == protocol.Hello(
        type="hello", last_seq=None
    )
    assert protocol.parse_client_frame(frame(type="hello", last_seq=7)).last_seq == 7  # type: ignore[union-attr]
    assert protocol.parse_client_frame(frame(type="hello")).last_seq is None  # type: ignore[union-attr]


def test_ping_carries_its_t() -> None:
    parsed = protocol.parse_client_frame(frame(type="ping", t=12.5))
    assert parsed == protocol.Ping(type="ping", t=12.5)


def test_command_frame() -> None:
    parsed = protocol.parse_client_frame(
        frame(type="command", id="c1", name="propose", args={"values": [5, 5]})
    )
    assert isinstance(parsed, protocol.CommandFrame)
    assert (parsed.id, parsed.name, parsed.args) == ("c1", "propose", {"values": [5, 5]})


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        ('"hello"', "bad_frame"),
        ("{}", "unknown_frame"),
        (frame(type="subscribe"), "unknown_frame"),
        (frame(type=None), "unknown_frame"),
        (frame(type="hello", last_seq="7"), "bad_frame"),
        (frame(type="hello", last_seq=-1), "bad_frame"),
        (frame(type="hello", last_seq=1.5), "bad_frame"),
        (frame(type="hello", last_seq=True), "bad_frame"),
        (frame(type="hello", extra=1), "bad_frame"),
        (frame(type="ping", t="now"), "bad_frame"),
        (frame(type="command", name="propose", args={}), "bad_frame"),
        (frame(type="command", id="", name="propose"), "bad_frame"),
        (frame(type="command", id="x" * 65, name="propose"), "bad_frame"),
        (frame(type="command", id="has space", name="propose"), "bad_frame"),
        (frame(type="command", id="c1", name="propose", args=[1]), "bad_frame"),
        (frame(type="command", id="c1"), "bad_frame"),
        ('{"type": "ping", "t": NaN}', "bad_frame"),
    ],
)
def test_malformed_client_frames_are_refused_with_a_code(text: str, code: str) -> None:
    with pytest.raises(protocol.FrameError) as refused:
        protocol.parse_client_frame(text)
    assert refused.value.code == code
    assert refused.value.message.endswith(".")


def test_a_malformed_command_frame_keeps_its_id_for_the_error() -> None:
    with pytest.raises(protocol.FrameError) as refused:
        protocol.parse_client_frame(frame(type="command", id="c9", name=7))
    assert refused.value.command_id == "c9"


def test_frames_over_the_size_limit_are_refused_unread() -> None:
    text = frame(type="ping", t=1) + " " * protocol.MAX_FRAME_BYTES
    with pytest.raises(protocol.FrameError) as refused:
        protocol.parse_client_frame(text)
    assert refused.value.code == "frame_too_large"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_any_text_is_a_frame_or_a_frame_error(text: str | bytes) -> None:
    try:
        protocol.parse_client_frame(text)
    except protocol.FrameError:
        pass


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([*sorted(protocol.ALL_COMMANDS), "nope"]),
    st.dictionaries(st.text(max_size=12), JSONISH, max_size=4),
)
def test_any_args_build_a_command_or_a_frame_error(name: str, args: dict[str, Any]) -> None:
    command_frame = protocol.CommandFrame(type="command", id="c1", name=name, args=args)
    try:
        command = protocol.command_for(command_frame, "A-chief")
    except protocol.FrameError as refused:
        assert refused.code in {"unknown_command", "bad_command"}
        assert refused.command_id == "c1"
    else:
        assert isinstance(command, c.Command)
        assert command.actor == "A-chief"


# --------------------------------------------------------------------------------------------
# Commands: each name builds its engine command; bad arguments are refused


def build(name: str, **args: Any) -> c.Command:
    return protocol.command_for(
        protocol.CommandFrame(type="command", id="c1", name=name, args=args), "ACTOR"
    )


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("propose", {"values": [5, 5.5]}, c.Propose("ACTOR", (5.0, 5.5), None)),
        ("propose", {"values": [1], "replies_to": 3}, c.Propose("ACTOR", (1.0,), 3)),
        ("withdraw", {"proposal_id": 2}, c.Withdraw("ACTOR", 2)),
        ("accept", {"proposal_id": 2}, c.Accept("ACTOR", 2)),
        ("chat", {"channel": "table", "text": "hi"}, c.Chat("ACTOR", "table", "hi")),
        ("statement", {"text": "We stand firm."}, c.MakeStatement("ACTOR", "We stand firm.")),
        ("open_straw_poll", {"values": [4, 6]}, c.OpenStrawPoll("ACTOR", (4.0, 6.0))),
        ("answer_straw_poll", {"poll_id": 1, "yes": False}, c.AnswerStrawPoll("ACTOR", 1, False)),
        ("close_straw_poll", {"poll_id": 1}, c.CloseStrawPoll("ACTOR", 1)),
        ("offer_side_payment", {"to": "A1", "amount": 3}, c.OfferSidePayment("ACTOR", "A1", 3)),
        ("cast_ballot", {"yes": True}, c.CastBallot("ACTOR", True)),
        ("choose_compliance", {"comply": False}, c.ChooseCompliance("ACTOR", False)),
        ("start_game", {}, c.StartGame("ACTOR")),
        ("advance_phase", {}, c.AdvancePhase("ACTOR")),
        ("pause", {}, c.PauseGame("ACTOR")),
        ("resume", {}, c.ResumeGame("ACTOR")),
        ("extend_deadline", {"seconds": 60}, c.ExtendDeadline("ACTOR", 60)),
        ("end_game", {}, c.EndGame("ACTOR")),
        ("release_seat", {"seat": "A1"}, c.ReleaseSeat("ACTOR", "A1")),
    ],
)
def test_each_command_builds_its_engine_command(
    name: str, args: dict[str, Any], expected: c.Command
) -> None:
    assert build(name, **args) == expected


def test_seat_bot_seats_a_bot() -> None:
    command = build("seat_bot", seat="A1")
    assert isinstance(command, c.TakeSeat)
    assert (command.actor, command.seat, command.bot) == ("ACTOR", "A1", True)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("propose", {}),
        ("propose", {"values": []}),
        ("propose", {"values": [1, 2, 3, 4, 5, 6, 7]}),
        ("propose", {"values": ["5"]}),
        ("propose", {"values": [True]}),
        ("propose", {"values": [1], "replies_to": 0}),
        ("propose", {"values": [1], "actor": "B-chief"}),
        ("withdraw", {"proposal_id": "1"}),
        ("accept", {"proposal_id": 1.0}),
        ("accept", {"proposal_id": -1}),
        ("chat", {"channel": "table"}),
        ("chat", {"channel": "table", "text": "x" * 4001}),
        ("statement", {"text": 5}),
        ("answer_straw_poll", {"poll_id": 1, "yes": "yes"}),
        ("answer_straw_poll", {"poll_id": 1, "yes": 1}),
        ("offer_side_payment", {"to": "A1", "amount": 1.5}),
        ("offer_side_payment", {"to": "A1", "amount": -1}),
        ("offer_side_payment", {"to": "", "amount": 1}),
        ("cast_ballot", {}),
        ("cast_ballot", {"yes": "true"}),
        ("choose_compliance", {"comply": None}),
        ("extend_deadline", {"seconds": 0}),
        ("extend_deadline", {"seconds": 86_401}),
        ("start_game", {"now": 1}),
        ("seat_bot", {}),
    ],
)
def test_bad_arguments_are_refused(name: str, args: dict[str, Any]) -> None:
    with pytest.raises(protocol.FrameError) as refused:
        build(name, **args)
    assert refused.value.code == "bad_command"
    assert refused.value.command_id == "c1"


def test_an_unknown_command_is_refused() -> None:
    with pytest.raises(protocol.FrameError) as refused:
        build("fire_deadline", deadline=1.0)
    assert refused.value.code == "unknown_command"


def test_server_only_commands_cannot_be_sent() -> None:
    for name in (c.FireDeadline.NAME, c.TakeSeat.NAME):
        assert name not in protocol.ALL_COMMANDS


def test_player_and_instructor_commands_do_not_overlap() -> None:
    assert not set(protocol.PLAYER_COMMANDS) & set(protocol.INSTRUCTOR_COMMANDS)


# --------------------------------------------------------------------------------------------
# Server frames: every builder's output matches its schema


SERVER_FRAMES: dict[str, dict[str, Any]] = {
    "snapshot": protocol.snapshot(3, {"phase": "lobby"}, 1_795_000_000.5),
    "event": protocol.event(4, {"type": "chat_posted", "channel": "table", "by": "A", "text": "x"}),
    "ack": protocol.ack("c1", 4),
    "error": protocol.error("c1", "wrong_phase", "Not now."),
    "presence": protocol.presence(["A-chief"], True, 2),
    "pong": protocol.pong(1.5, 1_795_000_000.5),
}


@pytest.mark.parametrize("kind", protocol.SERVER_FRAME_TYPES)
def test_every_server_frame_matches_its_schema(kind: str) -> None:
    built = SERVER_FRAMES[kind]
    parsed = protocol.server_frame.validate_python(built)
    assert parsed.type == kind
    assert parsed.model_dump() == built


def test_placeholder_and_id_less_error_frames_are_valid() -> None:
    protocol.server_frame.validate_python(protocol.event(5, None))
    protocol.server_frame.validate_python(protocol.error(None, "bad_frame", "A frame must be..."))


def test_server_frames_refuse_a_wrong_shape() -> None:
    with pytest.raises(ValueError):
        protocol.server_frame.validate_python({"type": "ack", "id": "c1"})
    with pytest.raises(ValueError):
        protocol.server_frame.validate_python({"type": "gossip"})


# --------------------------------------------------------------------------------------------
# The document and the code agree


def doc_table_rows(heading: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    rows: list[str] = []
    for line in section.splitlines()[2:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        first = line.split("|")[1].strip()
        if first and not set(first) <= {"-"}:
            rows.append(first)
    return rows


def names_in(cells: list[str]) -> set[str]:
    return {name for cell in cells for name in re.findall(r"`([a-z_]+)`", cell)}


def test_the_document_lists_every_client_frame() -> None:
    assert names_in(doc_table_rows("## Client frames")) - {"type"} == set(
        protocol.CLIENT_FRAME_TYPES
    )


def test_the_document_lists_every_command() -> None:
    assert names_in(doc_table_rows("### Commands")) == set(protocol.ALL_COMMANDS)


def test_the_document_lists_every_server_frame() -> None:
    assert names_in(doc_table_rows("## Server frames")) == set(protocol.SERVER_FRAME_TYPES)
