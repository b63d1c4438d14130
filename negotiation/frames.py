"""Encode each event frame once per shown form, and keep each game's recent events once per
process.

A game event reaches every connection of the game in this process as the same object
(``hub``); each connection filters it for its viewer (``visibility.visible_shared``), which
returns the event object itself to every viewer who sees it unchanged. Keyed by object
identity (each entry holds its key object, so an id is not reused while cached), the encoded
frame is made once per process and visibility class instead of once per socket. The caches are
small and bounded: only the last moments of traffic are hot.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from negotiation.engine import events as e

#: The ASGI scope extension through which the project's server (``config.serve``) offers a
#: websocket application a synchronous text sender: ``scope["extensions"][TEXT_SENDER]["send"]``
#: is ``send(text) -> bool``, False when the frame must go through the ASGI ``send`` instead;
#: ``["send_all"]``, when offered, is ``send_all(texts) -> bool``, the same for several frames in
#: turn, written together.
TEXT_SENDER = "ratify.send_text"

#: How every frame is encoded: compact, and refusing NaN and infinities, which JSON lacks. One
#: encoder for all (``json.dumps`` with these options builds a new one for each call).
FRAME_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)

#: Entries kept in each cache (a few seconds of a busy server's events).
CACHE_SIZE = 4096

_encoded: OrderedDict[tuple[int, int], tuple[e.Event | None, str]] = OrderedDict()


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    if len(cache) > CACHE_SIZE:
        cache.popitem(last=False)


def event_text(seq: int, shown: e.Event | None) -> str:
    """The ``event`` frame for ``seq`` showing ``shown`` (a placeholder for None), as JSON."""
    key = (seq, id(shown))
    entry = _encoded.get(key)
    if entry is not None and entry[0] is shown:
        return entry[1]
    payload = e.event_to_dict(shown) if shown is not None else None
    text = FRAME_ENCODER.encode({"type": "event", "seq": seq, "event": payload})
    _remember(_encoded, key, (shown, text))
    return text


#: Recent events per game (at most ``RECENT_EVENTS`` each, of ``RECENT_GAMES`` games).
RECENT_EVENTS = 128
RECENT_GAMES = 2048
_recent: OrderedDict[int, OrderedDict[int, e.Event]] = OrderedDict()


def remember(game_id: int, events: list[tuple[int, e.Event]]) -> None:
    """Keep the events this process just wrote or received, so that a connection that sees
    a gap because a neighbour's command in the same batch is published after its own finds
    the missing events here instead of in the database."""
    kept = _recent.get(game_id)
    if kept is None:
        kept = _recent[game_id] = OrderedDict()
        if len(_recent) > RECENT_GAMES:
            _recent.popitem(last=False)
    else:
        _recent.move_to_end(game_id)
        if events and kept.get(events[-1][0]) is events[-1][1]:
            # Every connection of the game in this process hands in the same batch.
            return
    for seq, event in events:
        kept[seq] = event
    while len(kept) > RECENT_EVENTS:
        kept.popitem(last=False)


def recent_event(game_id: int, seq: int) -> e.Event | None:
    """Event ``seq`` of the game if this process holds it, else None."""
    kept = _recent.get(game_id)
    return None if kept is None else kept.get(seq)


def recent_between(game_id: int, after: int, upto: int) -> list[tuple[int, e.Event]] | None:
    """The events with ``after < seq <= upto`` if this process holds them all, else None."""
    kept = _recent.get(game_id)
    if kept is None:
        return None
    found: list[tuple[int, e.Event]] = []
    for seq in range(after + 1, upto + 1):
        event = kept.get(seq)
        if event is None:
            return None
        found.append((seq, event))
    return found


def forget_recent(game_id: int | None = None) -> None:
    """Forget the recent events of one game (or of all: tests that reset the database)."""
    if game_id is None:
        _recent.clear()
    else:
        _recent.pop(game_id, None)
