"""The load benchmark's lean websocket client (``bench/ws_wire.py``): its frame reader against
frames cut at every byte, its refusals, and a real exchange with the ``websockets`` server on
loopback (handshake, text both ways at every length class, fragments, pings, both closings)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.streams import StreamReader

from tests.live import ROOT


def load_wire() -> Any:
    spec = importlib.util.spec_from_file_location("bench_ws_wire", ROOT / "bench" / "ws_wire.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


wire = load_wire()


def server_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A frame as a server writes it (unmasked), built by ``websockets``."""
    return Frame(Opcode(opcode), payload, fin=fin).serialize(mask=False)


def parse_client_frame(data: bytes) -> Frame:
    """``data`` read back by ``websockets``' own parser, as a server reads a client's frame."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=True)
    with pytest.raises(StopIteration) as done:
        next(parser)
    frame: Frame = done.value.value
    return frame


# -- the frame reader --------------------------------------------------------------------------


@given(
    payloads=st.lists(
        st.one_of(
            st.binary(max_size=130),
            st.integers(min_value=65_530, max_value=70_000).map(lambda n: b"x" * n),
        ),
        min_size=1,
        max_size=6,
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=200_000), max_size=8),
)
def test_frames_cut_anywhere_come_out_whole_and_in_order(
    payloads: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(server_frame(0x2, p) for p in payloads)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    reader = wire.FrameReader(max_size=2**20)
    got: list[bytes] = []
    for start, stop in itertools.pairwise(points):
        got += [payload for _, _, payload in reader.feed(stream[start:stop])]
    assert got == payloads
    assert reader.rest == b""


def test_each_length_class_is_read_one_byte_at_a_time() -> None:
    for size in (0, 125, 126, 65_535, 65_536):
        frame = server_frame(0x1, b"a" * size)
        reader = wire.FrameReader(max_size=2**20)
        got = [f for byte in range(len(frame)) for f in reader.feed(frame[byte : byte + 1])]
        assert got == [(True, 0x1, b"a" * size)], size


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (Frame(Opcode.TEXT, b"hi").serialize(mask=True), "masked"),
        (bytes([0x80 | 0x40 | 0x1, 2]) + b"hi", "reserved"),
        (bytes([0x9, 1]) + b"p", "control"),
        (bytes([0x80 | 0x9, 126]) + struct.pack("!H", 126) + b"p" * 126, "control"),
        (bytes([0x80 | 0x2, 127]) + struct.pack("!Q", 2**21), "over the limit"),
    ],
)
def test_a_frame_a_server_may_not_send_is_refused(frame: bytes, reason: str) -> None:
    reader = wire.FrameReader(max_size=2**20)
    with pytest.raises(ValueError, match=reason):
        reader.feed(frame)


def test_a_client_frame_is_masked_and_reads_back_as_sent() -> None:
    for size in (3, 200, 70_000):
        payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
        data = wire.client_frame(0x1, payload, b"\x01\x02\x03\x04")
        assert data[1] & 0x80, "the mask bit"
        frame = parse_client_frame(data)
        assert (frame.opcode, frame.data, frame.fin) == (Opcode.TEXT, payload, True)


# -- against a real server ---------------------------------------------------------------------


class Peer:
    """What the client saw: messages and how the connection ended."""

    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.ended: list[tuple[int | None, Exception | None]] = []
        self.arrived = asyncio.Event()

    def on_message(self, message: str | bytes, arrived: float) -> None:
        assert arrived > 0
        self.messages.append(message)
        self.arrived.set()

    def on_close(self, code: int | None, failure: Exception | None) -> None:
        self.ended.append((code, failure))

    async def next(self) -> str | bytes:
        while not self.messages:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 5)
        return self.messages.pop(0)


Handler = Callable[[ServerConnection], Awaitable[None]]


@contextlib.asynccontextmanager
async def served(handler: Handler, **options: Any) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, **options) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/game/ABC/?seat=1"


async def test_text_goes_both_ways_at_every_length_and_headers_reach_the_server() -> None:
    seen: dict[str, Any] = {}

    async def echo(socket: ServerConnection) -> None:
        assert socket.request is not None
        seen["path"] = socket.request.path
        seen["cookie"] = socket.request.headers.get("Cookie")
        async for message in socket:
            await socket.send(message)

    async with served(echo, compression=None) as url:
        peer = Peer()
        connection = await wire.connect(
            url, peer.on_message, peer.on_close, headers={"Cookie": "sessionid=s1"}
        )
        texts = ["é" * 3, "b" * 200, "c" * 70_000]
        for text in texts:
            connection.send(text)
        assert [await peer.next() for _ in texts] == texts
        await connection.close()
        assert seen == {"path": "/game/ABC/?seat=1", "cookie": "sessionid=s1"}
        assert peer.ended == [(1000, None)]


async def test_a_fragmented_message_is_whole_and_pings_are_answered() -> None:
    async def handler(socket: ServerConnection) -> None:
        await socket.send(["frag", "ment", "ed"])
        pong = await socket.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        await socket.send("after the pong")
        await socket.wait_closed()

    async with served(handler, ping_interval=None) as url:
        peer = Peer()
        connection = await wire.connect(url, peer.on_message, peer.on_close)
        assert await peer.next() == "fragmented"
        assert await peer.next() == "after the pong"
        await connection.close()


@pytest.mark.parametrize(("code", "expected"), [(1000, 1000), (1011, 1011)])
async def test_the_server_closing_reports_its_code(code: int, expected: int) -> None:
    async def handler(socket: ServerConnection) -> None:
        await socket.send("bye")
        await socket.close(code)

    async with served(handler) as url:
        peer = Peer()
        connection = await wire.connect(url, peer.on_message, peer.on_close)
        assert await peer.next() == "bye"
        await asyncio.wait_for(asyncio.shield(connection.closed), 5)
        assert peer.ended == [(expected, None)]


async def test_a_refused_upgrade_raises_handshake_error() -> None:
    def refuse(connection: ServerConnection, request: Any) -> Response:
        return Response(403, "Forbidden", Headers(), b"no seat\n")

    async def never(socket: ServerConnection) -> None:  # pragma: no cover - refused before
        raise AssertionError

    async with served(never, process_request=refuse) as url:
        peer = Peer()
        with pytest.raises(wire.HandshakeError, match="403"):
            await wire.connect(url, peer.on_message, peer.on_close)
        await asyncio.sleep(0.05)
        assert peer.ended == [], "a connection that never opened is reported by raising"


@contextlib.asynccontextmanager
async def scripted(answer: Callable[[bytes], bytes]) -> AsyncIterator[str]:
    """A server on loopback that answers a client's upgrade request with ``answer(key)``
    (``key``: the request's ``Sec-WebSocket-Key``), then reads until the client goes."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        writer.write(answer(key))
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(script, "127.0.0.1", 0)
    async with server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


def upgraded(accept: str) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
    )


async def test_a_wrong_accept_key_raises_handshake_error() -> None:
    async with scripted(lambda key: upgraded("bm90IHRoZSBrZXk=")) as url:
        with pytest.raises(wire.HandshakeError, match="Sec-WebSocket-Accept"):
            await wire.connect(url, Peer().on_message, Peer().on_close)


async def test_a_protocol_error_from_the_server_closes_with_1002() -> None:
    def masked_frame(key: bytes) -> bytes:
        return upgraded(wire.accept_key(key)) + Frame(Opcode.TEXT, b"m").serialize(mask=True)

    async with scripted(masked_frame) as url:
        peer = Peer()
        connection = await wire.connect(url, peer.on_message, peer.on_close)
        await asyncio.wait_for(asyncio.shield(connection.closed), 5)
        assert peer.messages == []
        assert peer.ended and peer.ended[0][0] == 1002


def test_only_plain_websocket_addresses_are_accepted() -> None:
    async def attempt() -> None:
        await wire.connect("wss://127.0.0.1:1/", Peer().on_message, Peer().on_close)

    with pytest.raises(ValueError, match="ws://"):
        asyncio.run(attempt())
