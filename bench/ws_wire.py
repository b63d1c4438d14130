"""A lean websocket client for the load benchmark's simulated players (RFC 6455, client side).

The players share the machine's cores with the server they measure, so every microsecond a
client spends on a frame is taken from the server. The general-purpose client (``websockets``'
asyncio connection) parses each frame through a generator, queues it, and wakes a reader task
per frame; here a frame is parsed where the bytes arrive (``asyncio.Protocol.data_received``)
and handed straight to a callback, with one clock reading for all the frames of one read.

What it does: the opening handshake (checks the status and ``Sec-WebSocket-Accept``), text
frames both ways (fragmented messages reassembled), binary frames reported to the callback as
bytes, pings answered with pongs, and the closing handshake. What it does not: extensions
(no ``Sec-WebSocket-Extensions`` is offered, so the server sends none), subprotocols, TLS.
Raises ``HandshakeError`` when the server refuses the upgrade; a frame that breaks the protocol
(a masked or oversized server frame, a control frame split or too long) closes the connection
with 1002 and is reported as a loss.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import struct
import time
from collections.abc import Callable, Mapping
from typing import cast
from urllib.parse import urlsplit

from websockets.speedups import apply_mask

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: Close codes after which the end of the connection is an ordinary one.
NORMAL_CLOSURE = (1000, 1001)
MAX_HANDSHAKE = 64 * 1024


class HandshakeError(Exception):
    """The server answered the upgrade with something other than a valid 101."""


#: What the callback receives: the message (str for text, bytes for binary) and the clock
#: (``time.monotonic``) read when the bytes that completed it arrived.
OnMessage = Callable[[str | bytes, float], None]
#: Called once when an opened connection ends (one that never opened makes ``connect`` raise
#: instead): the close code the server sent, or the one this side closed with after a
#: protocol error (None if neither), and the exception that ended the transport, if any.
OnClose = Callable[[int | None, Exception | None], None]


def accept_key(key: bytes) -> str:
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()


def client_frame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    """One final frame from a client: masked with ``mask`` (4 bytes), as RFC 6455 requires."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + mask + apply_mask(payload, mask)


class FrameReader:
    """Splits a server's byte stream into frames: ``feed`` returns (fin, opcode, payload) for
    every whole frame so far and keeps the rest for the next call.

    Raises ``ValueError`` on a frame a server may not send (masked, reserved bits set, a
    control frame fragmented or longer than 125 bytes, longer than ``max_size``)."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.rest = b""

    def feed(self, data: bytes) -> list[tuple[bool, int, bytes]]:
        buffer = self.rest + data if self.rest else data
        end = len(buffer)
        position = 0
        frames: list[tuple[bool, int, bytes]] = []
        while end - position >= 2:
            first = buffer[position]
            second = buffer[position + 1]
            length = second & 0x7F
            start = position + 2
            if length == 126:
                if end - position < 4:
                    break
                (length,) = struct.unpack_from("!H", buffer, position + 2)
                start = position + 4
            elif length == 127:
                if end - position < 10:
                    break
                (length,) = struct.unpack_from("!Q", buffer, position + 2)
                start = position + 10
            opcode = first & 0x0F
            fin = bool(first & 0x80)
            if second & 0x80:
                raise ValueError("a server frame must not be masked")
            if first & 0x70:
                raise ValueError("reserved bits set without an extension")
            if opcode >= OP_CLOSE and (not fin or length > 125):
                raise ValueError("a control frame must be whole and at most 125 bytes")
            if length > self.max_size:
                raise ValueError(f"a frame of {length} bytes is over the limit")
            stop = start + length
            if stop > end:
                break
            frames.append((fin, opcode, buffer[start:stop]))
            position = stop
        self.rest = buffer[position:] if position < end else b""
        return frames


class Connection(asyncio.Protocol):
    """One client websocket; open it with ``connect``."""

    def __init__(
        self, request: bytes, key: bytes, on_message: OnMessage, on_close: OnClose, max_size: int
    ) -> None:
        self.request = request
        self.expected_accept = accept_key(key)
        self.on_message = on_message
        self.on_close = on_close
        self.reader = FrameReader(max_size)
        self.max_size = max_size
        self.transport: asyncio.Transport | None = None
        self.response = b""
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.fragments: list[bytes] = []
        self.fragment_opcode = OP_TEXT
        self.close_code: int | None = None
        self.close_sent = False
        self.masks = random.Random(os.urandom(16))

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        arrived = time.monotonic()
        if not self.opened.done():
            data = self._handshake(data)
            if not data:
                return
        try:
            frames = self.reader.feed(data)
        except ValueError:
            self._fail(1002)
            return
        for fin, opcode, payload in frames:
            if opcode in (OP_TEXT, OP_BINARY):
                if self.fragments:
                    self._fail(1002)
                    return
                if fin:
                    self.on_message(payload.decode() if opcode == OP_TEXT else payload, arrived)
                else:
                    self.fragment_opcode = opcode
                    self.fragments.append(payload)
            elif opcode == OP_CONTINUATION:
                if not self.fragments:
                    self._fail(1002)
                    return
                self.fragments.append(payload)
                if fin:
                    message = b"".join(self.fragments)
                    self.fragments = []
                    if len(message) > self.max_size:
                        self._fail(1009)
                        return
                    text = self.fragment_opcode == OP_TEXT
                    self.on_message(message.decode() if text else message, arrived)
            elif opcode == OP_PING:
                self._write(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close_code = code
                if not self.close_sent:
                    self._write(OP_CLOSE, payload[:2])
                    self.close_sent = True
                # The server closes the TCP connection after its close frame is answered.
                return
            elif opcode != OP_PONG:
                self._fail(1002)
                return

    def connection_lost(self, exc: Exception | None) -> None:
        opened = (
            self.opened.done() and not self.opened.cancelled() and self.opened.exception() is None
        )
        if not self.opened.done():
            self.opened.set_exception(
                exc or HandshakeError(f"connection closed during the handshake: {self.response!r}")
            )
        if not self.closed.done():
            self.closed.set_result(None)
            # A connection that never opened is reported by ``connect`` raising, not here.
            if opened:
                self.on_close(self.close_code, exc)

    # -- sending ---------------------------------------------------------------------------

    def send(self, text: str) -> None:
        """Send one text message (dropped once the closing handshake has begun)."""
        if not self.close_sent:
            self._write(OP_TEXT, text.encode())

    async def close(self, timeout: float = 2.0) -> None:
        """The closing handshake (1000), then the socket; waits at most ``timeout`` seconds."""
        if self.transport is None:
            return
        if not self.close_sent and not self.transport.is_closing():
            self._write(OP_CLOSE, struct.pack("!H", 1000))
            self.close_sent = True
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self.transport.abort()

    # -- inside ----------------------------------------------------------------------------

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            mask = self.masks.getrandbits(32).to_bytes(4, "big")
            self.transport.write(client_frame(opcode, payload, mask))

    def _fail(self, code: int) -> None:
        """Close after a protocol error: the close frame, then the socket, at once."""
        if not self.close_sent:
            self._write(OP_CLOSE, struct.pack("!H", code))
            self.close_sent = True
        if self.close_code is None:
            self.close_code = code
        if self.transport is not None:
            self.transport.close()

    def _handshake(self, data: bytes) -> bytes:
        """Consume the server's answer to the upgrade; returns the bytes after it."""
        self.response += data
        head, separator, rest = self.response.partition(b"\r\n\r\n")
        if not separator:
            if len(self.response) > MAX_HANDSHAKE:
                self._refuse("an answer of more than 64 KiB without its end")
            return b""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or parts[1] != "101":
            self._refuse(f"the server answered {lines[0]!r}")
            return b""
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("sec-websocket-accept") != self.expected_accept:
            self._refuse("a wrong Sec-WebSocket-Accept")
            return b""
        if headers.get("sec-websocket-extensions"):
            self._refuse("an extension nobody asked for")
            return b""
        self.opened.set_result(None)
        return rest

    def _refuse(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(reason))
        if self.transport is not None:
            self.transport.abort()


async def connect(
    url: str,
    on_message: OnMessage,
    on_close: OnClose,
    *,
    headers: Mapping[str, str] | None = None,
    open_timeout: float = 10.0,
    max_size: int = 2**20,
) -> Connection:
    """Open a websocket to ``url`` (``ws://`` only) and return it once the handshake is done.

    Raises ``ValueError`` for an address that is not ``ws://``, ``HandshakeError`` when the
    server refuses the upgrade, ``OSError`` when it cannot be reached, ``TimeoutError`` after
    ``open_timeout`` seconds."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme != "ws" or host is None:
        raise ValueError(f"only ws:// addresses: {url!r}")
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}" if parts.port else f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    loop = asyncio.get_running_loop()

    async def opening() -> Connection:
        _, connection = await loop.create_connection(
            lambda: Connection(request, key, on_message, on_close, max_size), host, port
        )
        try:
            await connection.opened
        except BaseException:
            if connection.transport is not None:
                connection.transport.abort()
            raise
        return connection

    return await asyncio.wait_for(opening(), open_timeout)
