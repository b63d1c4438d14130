"""Serve the project with Daphne, as ``python -m config.serve [daphne options] config.asgi:application``.

Daphne's websocket transport drops the TCP connection of a client that breaks the protocol,
for instance with a message over ``--websocket-max-message-size`` (1 MiB by default): the
client sees a lost connection (1006) and reconnects as if the network had failed. Here it
closes with the WebSocket close code instead (1009, message too big), so the client is told.
Everything else is Daphne's own command line.
"""

from __future__ import annotations

from typing import Any

import daphne.server
from daphne.cli import CommandLineInterface
from daphne.ws_protocol import WebSocketFactory


class ClosingWebSocketFactory(WebSocketFactory):  # type: ignore[misc]  # Daphne is untyped
    """Daphne's factory, failing a connection with a close frame rather than a dropped socket."""

    def setProtocolOptions(self, **options: Any) -> None:
        super().setProtocolOptions(**options, failByDrop=False)


def main() -> None:
    daphne.server.WebSocketFactory = ClosingWebSocketFactory
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
