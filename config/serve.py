"""Serve the project with Daphne, as ``python -m config.serve [daphne options] config.asgi:application``.

Daphne's websocket transport drops the TCP connection of a client that breaks the protocol,
for instance with a message over ``--websocket-max-message-size`` (1 MiB by default): the
client sees a lost connection (1006) and reconnects as if the network had failed. Here it
closes with the WebSocket close code instead (1009, message too big), so the client is told.
Everything else is Daphne's own command line.
"""

from __future__ import annotations

import sys
from typing import Any

import daphne.server
from daphne.cli import CommandLineInterface
from daphne.ws_protocol import WebSocketFactory


class ClosingWebSocketFactory(WebSocketFactory):  # type: ignore[misc]  # Daphne is untyped
    """Daphne's factory, failing a connection with a close frame rather than a dropped socket."""

    def setProtocolOptions(self, **options: Any) -> None:
        super().setProtocolOptions(**options, failByDrop=False)


#: Seconds a thread holding the GIL may run before a waiting thread gets it (Python's
#: default is 5 ms). The database thread gives the GIL up at every SQL statement and then
#: waits for the event loop's thread to hand it back: at the default, a command of five
#: statements could wait 25 ms for nothing while the loop is busy.
SWITCH_INTERVAL = 0.0005


def main() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL)
    daphne.server.WebSocketFactory = ClosingWebSocketFactory
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
