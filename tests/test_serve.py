"""The project's server (``config.serve``): the synchronous text sender it offers each websocket
application (``frames.TEXT_SENDER``), and the game consumer sending through it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from config.serve import DirectSendServer
from negotiation import frames
from tests.test_consumers import WAIT, Client, communicator, table

pytestmark = [pytest.mark.timeout(30)]


class FakeProtocol:
    """What the sender uses of autobahn's websocket protocol: its state and ``sendMessage``."""

    STATE_CONNECTING = 1
    STATE_OPEN = 3
    STATE_CLOSING = 2
    STATE_CLOSED = 0

    def __init__(self, state: int) -> None:
        self.state = state
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
    assert protocol.sent == [("caf\u00e9".encode(), False)]

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
# The consumer


def offering(socket: WebsocketCommunicator, accept: bool) -> list[str]:
    """Offer ``socket``'s application a text sender that delivers to the test's side of the
    socket at once (as the server would write to it), or refuses every frame; returns the
    texts it took."""
    taken: list[str] = []

    def send_text(text: str) -> bool:
        if not accept:
            return False
        taken.append(text)
        socket.output_queue.put_nowait({"type": "websocket.send", "text": text})
        return True

    socket.scope.setdefault("extensions", {})[frames.TEXT_SENDER] = {"send": send_text}
    return taken


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
        connected, _ = await socket.connect(timeout=WAIT)
        assert connected
        client = Client(socket)
        await client.send({"type": "hello", "last_seq": None})
        await client.until("snapshot")
        clients.append(client)
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
