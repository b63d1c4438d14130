"""Serve the project with Daphne, as ``python -m config.serve [daphne options] config.asgi:application``.

Daphne's websocket transport drops the TCP connection of a client that breaks the protocol,
for instance with a message over ``--websocket-max-message-size`` (1 MiB by default): the
client sees a lost connection (1006) and reconnects as if the network had failed. Here it
closes with the WebSocket close code instead (1009, message too big), so the client is told.

Each websocket's scope also carries a server extension, ``frames.TEXT_SENDER``: plain
functions that send text frames on that socket at once, ``send`` one and ``send_all`` several
in one write (a command's events and its acknowledgement to its sender). A game event goes to
every socket of the game, and the standard ASGI ``send`` costs, per frame, a session-middleware
check and two coroutines before Daphne writes it; the consumer sends events and answers
through the extension when the server offers it (and through ``send`` elsewhere, as under test
communicators). Everything else is Daphne's own command line.
"""

from __future__ import annotations

import gc
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any

import daphne.server
from daphne.cli import CommandLineInterface
from daphne.ws_protocol import WebSocketFactory

from negotiation.frames import TEXT_SENDER


class ClosingWebSocketFactory(WebSocketFactory):  # type: ignore[misc]  # Daphne is untyped
    """Daphne's factory, failing a connection with a close frame rather than a dropped socket."""

    def setProtocolOptions(self, **options: Any) -> None:
        super().setProtocolOptions(**options, failByDrop=False)


class DirectSendServer(daphne.server.Server):  # type: ignore[misc]  # Daphne is untyped
    """Daphne's server, offering each websocket application ``TEXT_SENDER`` in its scope."""

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
        if scope.get("type") == "websocket":
            scope.setdefault("extensions", {})[TEXT_SENDER] = {
                "send": self._text_sender(protocol),
                "send_all": self._texts_sender(protocol),
            }
        return super().create_application(protocol, scope)

    def _text_sender(self, protocol: Any) -> Callable[[str], bool]:
        def send_text(text: str) -> bool:
            """Send ``text`` as a text frame now; False (nothing done) until the handshake is
            complete, when the ASGI ``send`` must be used. On a closed or closing connection
            the frame is dropped, as Daphne's own ``send`` drops it."""
            sendable = self._sendable(protocol)
            if sendable:
                payload = text.encode("utf-8")
                if not _write_now(protocol, text_frame(payload)):
                    protocol.sendMessage(payload, False)
            return sendable is not None

        return send_text

    def _texts_sender(self, protocol: Any) -> Callable[[Sequence[str]], bool]:
        def send_all(texts: Sequence[str]) -> bool:
            """``send_text`` for each of ``texts`` in turn, in one write to the socket when it
            takes them at once (one system call instead of one per frame)."""
            sendable = self._sendable(protocol)
            if sendable:
                payloads = [text.encode("utf-8") for text in texts]
                if not _write_now(protocol, b"".join([text_frame(p) for p in payloads])):
                    for payload in payloads:
                        protocol.sendMessage(payload, False)
            return sendable is not None

        return send_all

    def _sendable(self, protocol: Any) -> bool | None:
        """Whether a frame may be written on the connection now: None before the handshake is
        complete (the ASGI ``send`` must be used), False once it is closing or closed or Daphne
        no longer serves it (the frame is dropped), True otherwise."""
        if protocol.state == protocol.STATE_CONNECTING:
            return None
        if protocol.state != protocol.STATE_OPEN:
            return False
        connection = self.connections.get(protocol)
        return connection is not None and not connection.get("disconnected")


def text_frame(payload: bytes) -> bytes:
    """A whole, unmasked text frame carrying ``payload``, as a server sends it (RFC 6455,
    section 5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


def _write_now(protocol: Any, frames: bytes) -> bool:
    """Write ``frames`` (whole text frames, ``text_frame``) straight to the socket when nothing
    else is waiting to be written on it: Twisted's own ``write`` would register the socket with the event loop
    for writing and unregister it once written (two system calls and a selector update per
    frame, the largest cost of a busy server). What the socket does not take at once goes
    through Twisted as before, and so does everything when the connection is not a plain TCP
    one at rest (TLS, bytes already waiting, a message being sent in parts, compression):
    False, for autobahn's ``sendMessage``."""
    transport = protocol.transport
    if (
        getattr(transport, "TLS", True)
        or not getattr(transport, "connected", False)
        or transport.disconnecting
        or transport._tempDataBuffer
        or transport.offset != len(transport.dataBuffer)
        or protocol.send_state != protocol.SEND_STATE_GROUND
        or protocol._perMessageCompress is not None
    ):
        return False
    written = transport.writeSomeData(frames)
    if not isinstance(written, int):
        # The connection is lost: Twisted finds out and closes it as it would have.
        transport.write(frames)
    elif written < len(frames):
        transport.write(frames[written:])
    return True


#: Seconds a thread holding the GIL may run before a waiting thread gets it (Python's
#: default is 5 ms). The database thread gives the GIL up at every SQL statement and then
#: waits for the event loop's thread to hand it back: at the default, a command of five
#: statements could wait 25 ms for nothing while the loop is busy.
SWITCH_INTERVAL = 0.0005


#: The garbage collector's thresholds (Python's defaults: 700, 10, 10). A busy process holds
#: millions of tracked objects (its connections, folded game states, recent events): a full
#: collection took 250-350 ms on a 2-core machine with 1,600 sockets, stalling every
#: connection, and under load one came every few seconds (two processes, 400 games: p99 up to
#: 270 ms, 18 ms with these). Collecting the youngest generation every 50,000 allocations
#: instead of 700 makes full collections rare; each is as long as before, and cyclic garbage
#: waits longer to be freed (server memory stayed under 50 KiB per seat, ``bench/README.md``).
GC_THRESHOLDS = (50_000, 20, 10)


def tune_runtime() -> None:
    """The interpreter settings of a server process: GIL switch interval and collector."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.set_threshold(*GC_THRESHOLDS)


def main() -> None:
    tune_runtime()
    daphne.server.WebSocketFactory = ClosingWebSocketFactory
    CommandLineInterface.server_class = DirectSendServer
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
