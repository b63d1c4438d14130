"""The project's server (``config.serve``): the synchronous text sender it offers each websocket
application (``frames.TEXT_SENDER``), and the game consumer sending through it."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from collections.abc import Sequence
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from config import serve
from config.serve import DirectSendServer, text_frame
from negotiation import frames
from tests.test_consumers import WAIT, Client, communicator, start_unpublished, table

pytestmark = [pytest.mark.timeout(30)]


class FakeTransport:
    """What the sender uses of Twisted's TCP connection."""

    def __init__(self, *, tls: bool = False, takes: int | None = None, lost: bool = False) -> None:
        self.TLS = tls
        self.connected = True
        self.disconnecting = False
        self._tempDataBuffer: list[bytes] = []
        self.dataBuffer = b""
        self.offset = 0
        #: Bytes the socket takes per call (None: all of them).
        self.takes = takes
        self.lost = lost
        self.on_the_wire: list[bytes] = []
        self.buffered: list[bytes] = []

    def writeSomeData(self, data: bytes) -> int | Exception:  # Twisted's name
        if self.lost:
            return ConnectionError("lost")
        taken = len(data) if self.takes is None else min(self.takes, len(data))
        self.on_the_wire.append(bytes(data[:taken]))
        return taken

    def write(self, data: bytes) -> None:
        self.buffered.append(bytes(data))


class FakeProtocol:
    """What the sender uses of autobahn's websocket protocol: its state and ``sendMessage``."""

    STATE_CONNECTING = 1
    STATE_OPEN = 3
    STATE_CLOSING = 2
    STATE_CLOSED = 0
    SEND_STATE_GROUND = 0

    def __init__(self, state: int, transport: FakeTransport | None = None) -> None:
        self.state = state
        self.send_state = self.SEND_STATE_GROUND
        self._perMessageCompress: object | None = None
        self.transport = transport if transport is not None else FakeTransport(tls=True)
        self.sent: list[tuple[bytes, bool]] = []

    def sendMessage(self, payload: bytes, binary: bool) -> None:  # autobahn's name
        self.sent.append((payload, binary))


def server_with(protocol: FakeProtocol, **connection: Any) -> DirectSendServer:
    scopes: list[dict[str, Any]] = []

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes.append(scope)

    # An endpoint it never listens on: the server is not run, only asked for applications.
    server = DirectSendServer(application=application, endpoints=["tcp:port=0"])
    server.connections = {protocol: dict(connection)}
    server.scopes = scopes
    return server


async def test_a_websocket_scope_carries_the_text_sender_and_an_http_scope_does_not() -> None:
    protocol = FakeProtocol(FakeProtocol.STATE_OPEN)
    server = server_with(protocol)
    server.create_application(protocol, {"type": "websocket", "path": "/ws/"})
    await asyncio.sleep(0)
    [scope] = server.scopes
    offered = scope["extensions"][frames.TEXT_SENDER]
    assert offered["send"]("caf\u00e9") is True
    assert offered["send_all"](["a", "b"]) is True
    assert protocol.sent == [("caf\u00e9".encode(), False), (b"a", False), (b"b", False)]

    other = FakeProtocol(FakeProtocol.STATE_OPEN)
    server.connections[other] = {}
    server.create_application(other, {"type": "http", "path": "/"})
    await asyncio.sleep(0)
    assert frames.TEXT_SENDER not in server.scopes[1].get("extensions", {})


def sender_for(protocol: FakeProtocol, **connection: Any) -> Any:
    server = server_with(protocol, **connection)
    return server._text_sender(protocol)


def test_before_the_handshake_the_sender_refuses_so_that_asgi_send_is_used() -> None:
    protocol = FakeProtocol(FakeProtocol.STATE_CONNECTING)
    assert sender_for(protocol)("x") is False
    assert protocol.sent == []


@pytest.mark.parametrize("state", [FakeProtocol.STATE_CLOSING, FakeProtocol.STATE_CLOSED])
def test_on_a_closing_or_closed_socket_the_frame_is_dropped(state: int) -> None:
    protocol = FakeProtocol(state)
    assert sender_for(protocol)("x") is True
    assert protocol.sent == []


def test_a_connection_daphne_marked_disconnected_gets_nothing() -> None:
    protocol = FakeProtocol(FakeProtocol.STATE_OPEN)
    assert sender_for(protocol, disconnected=123.0)("x") is True
    assert protocol.sent == []


def test_a_connection_daphne_forgot_gets_nothing() -> None:
    protocol = FakeProtocol(FakeProtocol.STATE_OPEN)
    server = server_with(protocol)
    send_text = server._text_sender(protocol)
    server.connections = {}
    assert send_text("x") is True
    assert protocol.sent == []


# --------------------------------------------------------------------------------------------
# Straight to the socket


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (5, b"\x81\x05"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (70_000, b"\x81\x7f" + (70_000).to_bytes(8, "big")),
    ],
)
def test_a_text_frame_is_a_whole_unmasked_frame_with_the_payloads_length(
    size: int, header: bytes
) -> None:
    payload = b"x" * size
    assert text_frame(payload) == header + payload


def test_at_rest_a_frame_goes_to_the_socket_at_once() -> None:
    transport = FakeTransport()
    protocol = FakeProtocol(FakeProtocol.STATE_OPEN, transport)
    assert sender_for(protocol)("caf\u00e9") is True
    assert transport.on_the_wire == [text_frame("caf\u00e9".encode())]
    assert transport.buffered == [] and protocol.sent == []


def test_what_the_socket_does_not_take_is_left_to_twisted() -> None:
    transport = FakeTransport(takes=3)
    protocol = FakeProtocol(FakeProtocol.STATE_OPEN, transport)
    sender_for(protocol)("hello")
    frame = text_frame(b"hello")
    assert transport.on_the_wire == [frame[:3]]
    assert transport.buffered == [frame[3:]]


def test_on_a_lost_connection_the_frame_is_left_to_twisted() -> None:
    transport = FakeTransport(lost=True)
    protocol = FakeProtocol(FakeProtocol.STATE_OPEN, transport)
    sender_for(protocol)("hello")
    assert transport.buffered == [text_frame(b"hello")]


@pytest.mark.parametrize("busy", ["tls", "waiting", "pending", "in_a_message", "compressing"])
def test_unless_the_connection_is_plain_tcp_at_rest_autobahn_sends_the_frame(busy: str) -> None:
    transport = FakeTransport(tls=busy == "tls")
    protocol = FakeProtocol(FakeProtocol.STATE_OPEN, transport)
    if busy == "waiting":
        transport._tempDataBuffer.append(b"earlier")
    elif busy == "pending":
        transport.dataBuffer, transport.offset = b"earlier", 3
    elif busy == "in_a_message":
        protocol.send_state = 1
    elif busy == "compressing":
        protocol._perMessageCompress = object()
    sender_for(protocol)("later")
    # Behind what waits, in order: autobahn writes it through Twisted's buffer.
    assert protocol.sent == [(b"later", False)]
    assert transport.on_the_wire == []


def texts_sender_for(protocol: FakeProtocol, **connection: Any) -> Any:
    server = server_with(protocol, **connection)
    return server._texts_sender(protocol)


def test_several_frames_go_to_the_socket_in_one_write() -> None:
    transport = FakeTransport()
    protocol = FakeProtocol(FakeProtocol.STATE_OPEN, transport)
    assert texts_sender_for(protocol)(["caf\u00e9", "ack"]) is True
    assert transport.on_the_wire == [text_frame("caf\u00e9".encode()) + text_frame(b"ack")]
    assert transport.buffered == [] and protocol.sent == []


def test_several_frames_on_a_busy_connection_go_through_autobahn_in_turn() -> None:
    transport = FakeTransport()
    transport._tempDataBuffer.append(b"earlier")
    protocol = FakeProtocol(FakeProtocol.STATE_OPEN, transport)
    assert texts_sender_for(protocol)(["one", "two"]) is True
    assert protocol.sent == [(b"one", False), (b"two", False)]
    assert transport.on_the_wire == []


@pytest.mark.parametrize(
    ("state", "connection", "answer"),
    [
        (FakeProtocol.STATE_CONNECTING, {}, False),
        (FakeProtocol.STATE_CLOSING, {}, True),
        (FakeProtocol.STATE_OPEN, {"disconnected": 1.0}, True),
    ],
)
def test_several_frames_are_refused_before_the_handshake_and_dropped_once_closed(
    state: int, connection: dict[str, Any], answer: bool
) -> None:
    transport = FakeTransport()
    protocol = FakeProtocol(state, transport)
    assert texts_sender_for(protocol, **connection)(["one", "two"]) is answer
    assert protocol.sent == [] and transport.on_the_wire == []


# --------------------------------------------------------------------------------------------
# The consumer


def offering(
    socket: WebsocketCommunicator, accept: bool, writes: list[list[str]] | None = None
) -> list[str]:
    """Offer ``socket``'s application a text sender that delivers to the test's side of the
    socket at once (as the server would write to it), or refuses every frame; returns the
    texts it took. With ``writes``, ``send_all`` is offered too, and ``writes`` gets the texts
    of each call of either (one call, one write)."""
    taken: list[str] = []

    def send_all(texts: Sequence[str]) -> bool:
        if not accept:
            return False
        if writes is not None:
            writes.append(list(texts))
        for text in texts:
            taken.append(text)
            socket.output_queue.put_nowait({"type": "websocket.send", "text": text})
        return True

    def send_text(text: str) -> bool:
        return send_all([text])

    offered: dict[str, Any] = {"send": send_text}
    if writes is not None:
        offered["send_all"] = send_all
    socket.scope.setdefault("extensions", {})[frames.TEXT_SENDER] = offered
    return taken


async def synced(socket: WebsocketCommunicator) -> Client:
    """``socket`` connected, having said hello and got its snapshot."""
    connected, _ = await socket.connect(timeout=WAIT)
    assert connected
    client = Client(socket)
    await client.send({"type": "hello", "last_seq": None})
    await client.until("snapshot")
    return client


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_server")
@pytest.mark.parametrize("accept", [True, False])
async def test_the_consumer_sends_through_the_servers_sender_when_offered(accept: bool) -> None:
    t = await table()
    host_socket = communicator(t.code, t.sessions["host"], host=True)
    player_socket = communicator(t.code, t.sessions["A-chief"])
    taken_by_host = offering(host_socket, accept)
    taken_by_player = offering(player_socket, accept)
    clients = []
    for socket in (host_socket, player_socket):
        clients.append(await synced(socket))
    host, player = clients
    try:
        ack = await host.command("start_game")
        assert ack["type"] == "ack", ack
        # Every seq once and in order (``Client.receive`` checks), the events before the ack.
        await player.until("event", seq=ack["seq"])
        assert any(
            f["type"] == "event" and (f["event"] or {}).get("type") == "phase_changed"
            for f in player.seen
        )
        host_texts = [f for f in host.seen if f["type"] in ("event", "ack")]
        assert host_texts[-1] == ack
        if accept:
            assert len(taken_by_host) >= len(host_texts)
            assert any('"type":"ack"' in text for text in taken_by_host)
            assert any('"phase_changed"' in text for text in taken_by_player)
        else:
            assert taken_by_host == [] and taken_by_player == []
    finally:
        for client in clients:
            await client.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_server")
async def test_a_commands_events_and_acknowledgement_reach_its_sender_in_one_write() -> None:
    t = await table()
    sockets = {
        "host": communicator(t.code, t.sessions["host"], host=True),
        "A-chief": communicator(t.code, t.sessions["A-chief"]),
    }
    writes: dict[str, list[list[str]]] = {name: [] for name in sockets}
    for name, socket in sockets.items():
        offering(socket, True, writes[name])
    clients = {}
    for name, socket in sockets.items():
        clients[name] = await synced(socket)
    host, player = clients["host"], clients["A-chief"]
    try:
        for name in ("host", "A-chief"):
            writes[name].clear()
            ack = await (
                host.command("start_game")
                if name == "host"
                else player.command("chat", channel="table", text="Shall we begin?")
            )
            assert ack["type"] == "ack", ack
            # The command's events, then its ack, in one call of ``send_all``.
            [write] = [w for w in writes[name] if any('"type":"ack"' in text for text in w)]
            *events, last = [json.loads(text) for text in write]
            assert last == ack
            assert events and all(f["type"] == "event" for f in events)
            assert [f["seq"] for f in events] == list(
                range(ack["seq"] - len(events) + 1, ack["seq"] + 1)
            )
        # The other connection got the chat as a write of its own.
        assert any('"chat_posted"' in text for write in writes["host"] for text in write)
    finally:
        for client in clients.values():
            await client.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_server")
async def test_a_senders_events_fetched_from_the_log_still_come_in_order_before_its_ack(
    monkeypatch: Any,
) -> None:
    t = await table()
    socket = communicator(t.code, t.sessions["host"], host=True)
    writes: list[list[str]] = []
    offering(socket, True, writes)
    host = await synced(socket)
    try:
        # A gap the host's connection fetches from the log while its command's events are held.
        await start_unpublished(t.game.pk, monkeypatch)
        writes.clear()
        ack = await host.command("extend_deadline", seconds=30)
        assert ack["type"] == "ack", ack
        # ``Client`` checks every seq once and in order; the ack comes after them all.
        sent = [json.loads(text) for write in writes for text in write]
        kinds = [f["event"]["type"] for f in sent if f["type"] == "event"]
        assert kinds == ["phase_changed", "deadline_extended"]
        assert sent[-1] == ack
    finally:
        await host.close()


def test_a_server_process_switches_threads_often_and_collects_garbage_rarely() -> None:
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    try:
        serve.tune_runtime()
        assert sys.getswitchinterval() == pytest.approx(serve.SWITCH_INTERVAL)
        assert gc.get_threshold() == serve.GC_THRESHOLDS
        assert serve.GC_THRESHOLDS[0] > thresholds[0]
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
