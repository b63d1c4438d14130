"""The per-process fan-out of a game's events (``negotiation.hub``).

First the hub alone, with fake members and a fresh ``ProcessChannelLayer``: one group
membership per process and game, kept while the game has a member here; batches from
elsewhere decoded once and handed to every member in order; the hub's own batches dropped when
they come back; presence handed to the members of its game, in order, by a task of its own;
``publish`` handing to ``first`` first, surviving a failing member, and sending one group
message (with the hub's origin) only when someone else is in the group.

On a layer shared by processes (channels' own in-memory layer standing in for Redis), where
the group's members cannot be seen: each hub says it listens when it joins and every
``LISTEN_RENEW_SECONDS``; a hub alone keeps its batches from the group; a listener heard for
the first time is answered and sent the batches kept back; one not heard of for
``LISTEN_TTL_SECONDS`` is forgotten.

Then through real websocket consumers (``GameConsumer``): every connection of the process gets
every seq once and in order whether the events were written by one of its connections or by
"another process" (``services.submit`` from a thread); a gap the recent events cannot fill is
fetched by the connection that has it without holding the others up; the process leaves the
game's group with its last connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer

from negotiation import consumers, frames, services
from negotiation import hub as hub_module
from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.hub import Hub, hub
from negotiation.layers import ProcessChannelLayer
from tests import test_consumers
from tests.test_consumers import WAIT, Client, table

pytestmark = [pytest.mark.timeout(30)]

#: Games of the unit tests (no database): ids no test game gets.
GAME = 9_000_001
OTHER_GAME = 9_000_002
#: How long a unit test waits for something the hub does at once.
SOON = 1.0


async def eventually(check: Callable[[], bool], timeout: float = SOON) -> None:
    """Return once ``check()`` holds; fail after ``timeout`` seconds."""

    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), timeout)


def chat(seq: int, text: str) -> services.StoredEvent:
    event = e.ChatPosted(channel="table", by="A-chief", text=text)
    return services.StoredEvent(seq, event, e.event_to_dict(event))


def from_elsewhere(game_id: int, stored: Sequence[services.StoredEvent]) -> dict[str, Any]:
    """The group message another process (or a worker thread) sends: no origin."""
    return services.events_message(game_id, stored)


class FakeMember:
    """A connection as the hub sees it: records what it is handed, in one shared order log."""

    def __init__(self, name: str, order: list[str] | None = None) -> None:
        self.name = name
        self.order = order if order is not None else []
        self.batches: list[Sequence[tuple[int, e.Event]]] = []
        self.messages: list[dict[str, Any]] = []

    def take_now(self, batch: Sequence[tuple[int, e.Event]]) -> bool:
        return False

    async def take(self, batch: Sequence[tuple[int, e.Event]]) -> None:
        self.order.append(self.name)
        self.batches.append(batch)

    async def dispatch(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def seqs(self) -> list[int]:
        return [seq for batch in self.batches for seq, _ in batch]


class SyncMember(FakeMember):
    """Takes every batch at once, without a coroutine (as a connection with the server's
    synchronous sender does); awaiting ``take`` would be a mistake."""

    def take_now(self, batch: Sequence[tuple[int, e.Event]]) -> bool:
        self.order.append(self.name)
        self.batches.append(batch)
        return True

    async def take(self, batch: Sequence[tuple[int, e.Event]]) -> None:
        raise AssertionError("take awaited although take_now took the batch")


class FailingMember(FakeMember):
    async def take(self, batch: Sequence[tuple[int, e.Event]]) -> None:
        await super().take(batch)
        raise RuntimeError("this connection is broken")


class GatedMember(FakeMember):
    """Its presence handler waits until ``gate`` is set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gate = asyncio.Event()

    async def dispatch(self, message: dict[str, Any]) -> None:
        await self.gate.wait()
        await super().dispatch(message)


class CountingLayer(ProcessChannelLayer):
    """A process layer that records group additions and group messages."""

    def __init__(self) -> None:
        super().__init__()
        self.adds: list[tuple[str, str]] = []
        self.sent: list[tuple[str, dict[str, Any]]] = []
        #: The next this many ``receive`` calls fail.
        self.failing_receives = 0

    async def group_add(self, group: str, channel: str) -> None:
        self.adds.append((group, channel))
        await super().group_add(group, channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.sent.append((group, message))
        await super().group_send(group, message)

    async def receive(self, channel: str) -> dict[str, Any]:
        if self.failing_receives:
            self.failing_receives -= 1
            raise RuntimeError("the layer's connection dropped")
        return await super().receive(channel)


class RefusingLayer(CountingLayer):
    async def group_add(self, group: str, channel: str) -> None:
        raise RuntimeError("no room in this group")


class RecordingRuntime:
    """Stands in for ``runtime`` (whose timers need a database)."""

    def __init__(self) -> None:
        self.observed: list[tuple[int, set[str]]] = []

    def observe(self, game_id: int, event_types: set[str], state: object = None) -> None:
        self.observed.append((game_id, set(event_types)))


class SharedLayer(InMemoryChannelLayer):  # type: ignore[misc]  # Channels is untyped
    """A layer whose groups the hub cannot see, as Redis shared by processes; records group
    messages."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.sent.append((group, message))
        await super().group_send(group, message)

    def of_type(self, kind: str, origin: str | None = None) -> list[dict[str, Any]]:
        return [
            m
            for _, m in self.sent
            if m["type"] == kind and (origin is None or m.get("origin") == origin)
        ]


class Layers:
    """The channel layer the hub finds (``get_channel_layer``), replaceable during a test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.current: ProcessChannelLayer | SharedLayer = CountingLayer()
        monkeypatch.setattr(hub_module, "get_channel_layer", self.get)

    def get(self, alias: str = "default") -> ProcessChannelLayer | SharedLayer:
        return self.current


@pytest.fixture
def layers(monkeypatch: pytest.MonkeyPatch) -> Layers:
    return Layers(monkeypatch)


@pytest.fixture
def layer(layers: Layers) -> CountingLayer:
    current = layers.current
    assert isinstance(current, CountingLayer)
    return current


@pytest.fixture
def shared(layers: Layers) -> SharedLayer:
    layers.current = SharedLayer()
    return layers.current


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> RecordingRuntime:
    recording = RecordingRuntime()
    monkeypatch.setattr(hub_module, "runtime", recording)
    return recording


async def stop(stopped: Hub) -> None:
    """Cancel the hub's tasks (a hub lives as long as its event loop otherwise)."""
    tasks = [
        t
        for t in (
            stopped._listener,
            stopped._renewer,
            stopped._presence_worker,
            stopped._announcer,
        )
        if t
    ]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def the_hub(layers: Layers, observed: RecordingRuntime) -> AsyncIterator[Hub]:
    """A hub of its own (not the loop's), its tasks stopped and its recent events forgotten
    afterwards."""
    fresh = Hub()
    yield fresh
    await stop(fresh)
    frames.forget_recent(GAME)
    frames.forget_recent(OTHER_GAME)


def hub_channels(layer: ProcessChannelLayer, game_id: int) -> list[str]:
    """The channels in the game's group."""
    return list(layer.groups.get(services.group_name(game_id), {}))


def game_messages(layer: CountingLayer) -> list[dict[str, Any]]:
    return [message for _, message in layer.sent if message["type"] == "game.events"]


# --------------------------------------------------------------------------------------------
# Membership


async def test_members_of_one_game_share_one_group_membership(
    the_hub: Hub, layer: CountingLayer
) -> None:
    first, second, third = FakeMember("first"), FakeMember("second"), FakeMember("third")
    await the_hub.join(GAME, first)
    group = services.group_name(GAME)
    assert layer.adds and set(layer.adds) == {(group, the_hub._channel)}
    added = len(layer.adds)
    await the_hub.join(GAME, second)
    await the_hub.join(GAME, third)
    # The game's later connections do not touch the channel layer.
    assert len(layer.adds) == added
    assert hub_channels(layer, GAME) == [the_hub._channel]
    assert the_hub.members(GAME) == [first, second, third]


async def test_the_group_is_left_with_the_games_last_member(
    the_hub: Hub, layer: CountingLayer
) -> None:
    first, second = FakeMember("first"), FakeMember("second")
    elsewhere = FakeMember("elsewhere")
    await the_hub.join(GAME, first)
    await the_hub.join(GAME, second)
    await the_hub.join(OTHER_GAME, elsewhere)
    channel = the_hub._channel
    await the_hub.leave(GAME, first)
    assert hub_channels(layer, GAME) == [channel]
    # Leaving twice, or leaving a game one never joined, changes nothing.
    await the_hub.leave(GAME, first)
    await the_hub.leave(GAME, elsewhere)
    assert the_hub.members(GAME) == [second]
    await the_hub.leave(GAME, second)
    assert the_hub.members(GAME) == []
    assert services.group_name(GAME) not in layer.groups
    assert hub_channels(layer, OTHER_GAME) == [channel]
    # A member joining again brings the process back into the group.
    await the_hub.join(GAME, first)
    assert hub_channels(layer, GAME) == [channel]


async def test_a_member_whose_group_cannot_be_joined_is_not_kept(layers: Layers) -> None:
    layers.current = RefusingLayer()
    refused = Hub()
    member = FakeMember("member")
    try:
        with pytest.raises(RuntimeError, match="no room"):
            await refused.join(GAME, member)
        assert refused.members(GAME) == []
    finally:
        await stop(refused)


async def test_a_new_channel_layer_gets_a_new_channel_in_every_group(
    the_hub: Hub, layers: Layers, layer: CountingLayer
) -> None:
    first, second = FakeMember("first"), FakeMember("second")
    await the_hub.join(GAME, first)
    replacement = CountingLayer()
    layers.current = replacement
    await the_hub.join(OTHER_GAME, second)
    assert hub_channels(replacement, GAME) == [the_hub._channel]
    assert hub_channels(replacement, OTHER_GAME) == [the_hub._channel]
    await replacement.group_send(services.group_name(GAME), from_elsewhere(GAME, [chat(1, "hi")]))
    await eventually(lambda: first.seqs == [1])
    assert second.seqs == []


async def test_after_its_channel_fails_the_hub_listens_on_a_new_one(
    the_hub: Hub, layer: CountingLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "RETRY_SECONDS", 0.01)
    layer.failing_receives = 1
    member = FakeMember("member")
    await the_hub.join(GAME, member)
    broken = the_hub._channel
    await eventually(lambda: the_hub._channel not in (None, broken))
    assert the_hub._channel in hub_channels(layer, GAME)
    await layer.group_send(services.group_name(GAME), from_elsewhere(GAME, [chat(1, "back")]))
    await eventually(lambda: member.seqs == [1])


async def test_a_failed_channel_leaves_the_groups_it_was_in(
    the_hub: Hub, layer: CountingLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "RETRY_SECONDS", 0.01)
    layer.failing_receives = 1
    await the_hub.join(GAME, FakeMember("member"))
    broken = the_hub._channel
    await eventually(lambda: the_hub._channel not in (None, broken))
    # Only the new channel: the broken one would fill up and keep the group from looking
    # like this process alone.
    assert hub_channels(layer, GAME) == [the_hub._channel]


async def test_a_message_the_hub_cannot_read_does_not_stop_the_next(
    the_hub: Hub, layer: CountingLayer
) -> None:
    member = FakeMember("member")
    await the_hub.join(GAME, member)
    channel = the_hub._channel
    group = services.group_name(GAME)
    unreadable = from_elsewhere(GAME, [chat(1, "one")])
    unreadable["events"][0][1] = {"type": "no_such_event"}
    await layer.group_send(group, unreadable)
    await layer.group_send(group, from_elsewhere(GAME, [chat(2, "two")]))
    await eventually(lambda: member.seqs == [2])
    assert the_hub._channel == channel


# --------------------------------------------------------------------------------------------
# Batches from the group


async def test_a_batch_from_elsewhere_reaches_every_member_once_decoded_in_order(
    the_hub: Hub, layer: CountingLayer, observed: RecordingRuntime
) -> None:
    first, second = FakeMember("first"), FakeMember("second")
    await the_hub.join(GAME, first)
    await the_hub.join(GAME, second)
    group = services.group_name(GAME)
    await layer.group_send(group, from_elsewhere(GAME, [chat(1, "one"), chat(2, "two")]))
    await layer.group_send(group, from_elsewhere(GAME, [chat(3, "three")]))
    await eventually(lambda: first.seqs == [1, 2, 3] and second.seqs == [1, 2, 3])
    assert first.batches[0] == [(1, chat(1, "one").event), (2, chat(2, "two").event)]
    assert isinstance(first.batches[0][0][1], e.ChatPosted)
    # Decoded once: every member is handed the same objects.
    assert first.batches[0] is second.batches[0]
    # Kept for the connections that find a gap.
    assert frames.recent_event(GAME, 2) is first.batches[0][1][1]
    assert observed.observed == [(GAME, {"chat_posted"}), (GAME, {"chat_posted"})]
    await asyncio.sleep(0.01)
    assert len(first.batches) == len(second.batches) == 2


async def test_the_hubs_own_batch_is_dropped_when_it_comes_back(
    the_hub: Hub, layer: CountingLayer, observed: RecordingRuntime
) -> None:
    member = FakeMember("member")
    await the_hub.join(GAME, member)
    group = services.group_name(GAME)
    own = {**from_elsewhere(GAME, [chat(1, "mine")]), "origin": the_hub.origin}
    other = {**from_elsewhere(GAME, [chat(1, "theirs")]), "origin": "another-process"}
    await layer.group_send(group, own)
    await layer.group_send(group, other)
    await eventually(lambda: member.seqs == [1])
    assert member.batches[0][0][1] == chat(1, "theirs").event
    assert observed.observed == [(GAME, {"chat_posted"})]


async def test_group_messages_without_a_game_id_are_ignored(
    the_hub: Hub, layer: CountingLayer
) -> None:
    member = FakeMember("member")
    await the_hub.join(GAME, member)
    group = services.group_name(GAME)
    await layer.group_send(group, {**from_elsewhere(GAME, [chat(1, "x")]), "game": str(GAME)})
    await layer.group_send(group, {"type": "presence.join", "game": None, "channel": "x"})
    await layer.group_send(group, from_elsewhere(GAME, [chat(2, "y")]))
    await eventually(lambda: member.seqs == [2])
    assert member.messages == []


# --------------------------------------------------------------------------------------------
# Presence


async def test_presence_reaches_the_members_of_its_game_in_order(
    the_hub: Hub, layer: CountingLayer
) -> None:
    first, second, elsewhere = FakeMember("first"), FakeMember("second"), FakeMember("other")
    await the_hub.join(GAME, first)
    await the_hub.join(GAME, second)
    await the_hub.join(OTHER_GAME, elsewhere)
    joined = {"type": "presence.join", "game": GAME, "channel": "c1", "viewer": "A1"}
    probe = {"type": "presence.probe", "game": OTHER_GAME, "probe": "p", "reply_to": "r"}
    left = {"type": "presence.leave", "game": GAME, "channel": "c1", "viewer": "A1"}
    await layer.group_send(services.group_name(GAME), joined)
    await layer.group_send(services.group_name(OTHER_GAME), probe)
    await layer.group_send(services.group_name(GAME), left)
    await eventually(lambda: len(first.messages) == len(second.messages) == 2)
    await eventually(lambda: len(elsewhere.messages) == 1)
    assert first.messages == second.messages == [joined, left]
    assert elsewhere.messages == [probe]
    assert first.batches == second.batches == elsewhere.batches == []


async def test_a_slow_presence_handler_does_not_hold_up_events(
    the_hub: Hub, layer: CountingLayer
) -> None:
    slow, other = GatedMember("slow"), FakeMember("other")
    await the_hub.join(GAME, slow)
    await the_hub.join(GAME, other)
    group = services.group_name(GAME)
    probe = {"type": "presence.probe", "game": GAME, "probe": "p", "reply_to": "r"}
    await layer.group_send(group, probe)
    await layer.group_send(group, from_elsewhere(GAME, [chat(1, "meanwhile")]))
    await eventually(lambda: slow.seqs == other.seqs == [1])
    assert slow.messages == other.messages == []
    slow.gate.set()
    await eventually(lambda: slow.messages == other.messages == [probe])


# --------------------------------------------------------------------------------------------
# Publishing this process's events


async def test_publish_hands_the_batch_to_first_before_the_others(
    the_hub: Hub, observed: RecordingRuntime
) -> None:
    order: list[str] = []
    members = [FakeMember(name, order) for name in ("one", "two", "three")]
    for member in members:
        await the_hub.join(GAME, member)
    stored = [chat(1, "a"), chat(2, "b")]
    await the_hub.publish(GAME, stored, first=members[1])
    assert order == ["two", "one", "three"]
    assert all(m.batches == [[(1, stored[0].event), (2, stored[1].event)]] for m in members)
    assert frames.recent_event(GAME, 1) is stored[0].event
    assert observed.observed == [(GAME, {"chat_posted"})]
    # Without ``first``, in the order they joined; a ``first`` of another game is ignored.
    await the_hub.publish(GAME, [chat(3, "c")], first=FakeMember("stranger"))
    assert order[3:] == ["one", "two", "three"]
    # Nothing to publish: nothing handed out.
    await the_hub.publish(GAME, [])
    assert len(order) == 6


async def test_members_that_take_at_once_are_handed_the_batch_in_the_same_order(
    the_hub: Hub, observed: RecordingRuntime
) -> None:
    order: list[str] = []
    members = [SyncMember("one", order), FakeMember("two", order), SyncMember("three", order)]
    for member in members:
        await the_hub.join(GAME, member)
    stored = [chat(1, "a"), chat(2, "b")]
    await the_hub.publish(GAME, stored, first=members[2])
    assert order == ["three", "one", "two"]
    assert all(m.batches == [[(1, stored[0].event), (2, stored[1].event)]] for m in members)


async def test_a_member_that_fails_to_take_does_not_stop_the_others(
    the_hub: Hub, layer: CountingLayer
) -> None:
    order: list[str] = []
    broken, healthy = FailingMember("broken", order), FakeMember("healthy", order)
    await the_hub.join(GAME, broken)
    await the_hub.join(GAME, healthy)
    await the_hub.publish(GAME, [chat(1, "written here")], first=broken)
    assert order == ["broken", "healthy"]
    await layer.group_send(services.group_name(GAME), from_elsewhere(GAME, [chat(2, "there")]))
    await eventually(lambda: healthy.seqs == [1, 2])
    assert broken.seqs == [1, 2]


async def test_publish_sends_nothing_when_the_hub_is_alone_in_the_group(
    the_hub: Hub, layer: CountingLayer
) -> None:
    member = FakeMember("member")
    await the_hub.join(GAME, member)
    await the_hub.publish(GAME, [chat(1, "local only")])
    assert member.seqs == [1]
    assert game_messages(layer) == []
    # The process's own layer knows the group: nobody needs to say they listen.
    assert [m for _, m in layer.sent if m["type"] == hub_module.LISTENING] == []


async def test_publish_sends_one_message_with_its_origin_when_a_dashboard_watches(
    the_hub: Hub, layer: CountingLayer
) -> None:
    order: list[str] = []
    first, second = FakeMember("first", order), FakeMember("second", order)
    await the_hub.join(GAME, first)
    await the_hub.join(GAME, second)
    dashboard = await layer.new_channel("dashboard.")
    group = services.group_name(GAME)
    await layer.group_add(group, dashboard)
    await the_hub.publish(GAME, [chat(1, "a"), chat(2, "b")])
    await the_hub.publish(GAME, [chat(3, "c")])
    assert len(game_messages(layer)) == 2
    received = [await asyncio.wait_for(layer.receive(dashboard), SOON) for _ in range(2)]
    assert [m["events"] for m in received] == [
        [[1, chat(1, "a").payload], [2, chat(2, "b").payload]],
        [[3, chat(3, "c").payload]],
    ]
    assert all(m["type"] == "game.events" and m["game"] == GAME for m in received)
    assert all(m["origin"] == the_hub.origin for m in received)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(dashboard), 0.05)
    # The hub's copies came back and were dropped: a later batch from elsewhere is the only
    # other thing the members are handed.
    await layer.group_send(group, from_elsewhere(GAME, [chat(4, "d")]))
    await eventually(lambda: first.seqs == [1, 2, 3, 4])
    assert second.seqs == [1, 2, 3, 4]
    assert order == ["first", "second"] * 3


# --------------------------------------------------------------------------------------------
# On a layer shared by processes


async def test_on_a_shared_layer_a_hub_alone_says_it_listens_and_keeps_its_batches(
    the_hub: Hub, shared: SharedLayer
) -> None:
    member = FakeMember("member")
    await the_hub.join(GAME, member)
    await the_hub.publish(GAME, [chat(1, "a"), chat(2, "b")])
    await the_hub.publish(GAME, [chat(3, "c")])
    assert member.seqs == [1, 2, 3]
    assert shared.of_type("game.events") == []
    said = shared.of_type(hub_module.LISTENING, the_hub.origin)
    assert said and all(m["game"] == GAME for m in said)


async def test_a_second_process_is_sent_what_was_kept_back_and_answered_at_once(
    the_hub: Hub, shared: SharedLayer, observed: RecordingRuntime
) -> None:
    here, there = FakeMember("here"), FakeMember("there")
    await the_hub.join(GAME, here)
    for seq in (1, 2, 3):
        await the_hub.publish(GAME, [chat(seq, f"kept {seq}")])
    assert shared.of_type("game.events") == []
    other = Hub()
    try:
        # The other process's connection joins: the first hub hears it, answers, and sends
        # the three batches it kept back as one.
        await other.join(GAME, there)
        await eventually(lambda: there.seqs == [1, 2, 3])
        assert [m["events"] for m in shared.of_type("game.events", the_hub.origin)] == [
            [[seq, chat(seq, f"kept {seq}").payload] for seq in (1, 2, 3)]
        ]
        # Both know of each other now: each one's batches reach the other at once.
        await eventually(lambda: other._others_listen(GAME))
        await the_hub.publish(GAME, [chat(4, "from here")])
        await eventually(lambda: there.seqs == [1, 2, 3, 4])
        await other.publish(GAME, [chat(5, "from there")])
        await eventually(lambda: here.seqs == [1, 2, 3, 4, 5])
        # Each hub dropped its own batches when they came back.
        await asyncio.sleep(0.02)
        assert here.seqs == [1, 2, 3, 4, 5] and there.seqs == [1, 2, 3, 4, 5]
    finally:
        await stop(other)


async def test_a_dashboard_that_says_it_listens_gets_every_batch_until_it_falls_silent(
    the_hub: Hub, shared: SharedLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "LISTEN_TTL_SECONDS", 0.2)
    member = FakeMember("member")
    await the_hub.join(GAME, member)
    dashboard = await shared.new_channel("dashboard.")
    await shared.group_add(services.group_name(GAME), dashboard)
    await hub_module.say_listening(shared, [GAME], dashboard)
    await eventually(lambda: the_hub._others_listen(GAME))
    await the_hub.publish(GAME, [chat(1, "watched")])
    received: list[dict[str, Any]] = []
    while not any(m["type"] == "game.events" for m in received):
        received.append(await asyncio.wait_for(shared.receive(dashboard), SOON))
    assert next(m for m in received if m["type"] == "game.events")["events"] == [
        [1, chat(1, "watched").payload]
    ]
    # Silent past the time to live: the next batch is kept back again...
    await asyncio.sleep(0.25)
    await the_hub.publish(GAME, [chat(2, "unwatched")])
    assert len(shared.of_type("game.events", the_hub.origin)) == 1
    # ...and sent as soon as the dashboard speaks again.
    await hub_module.say_listening(shared, [GAME], dashboard)
    await eventually(lambda: len(shared.of_type("game.events", the_hub.origin)) == 2)
    assert shared.of_type("game.events", the_hub.origin)[1]["events"] == [
        [2, chat(2, "unwatched").payload]
    ]


async def test_a_hub_says_again_that_it_listens_and_forgets_the_silent(
    the_hub: Hub, shared: SharedLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "LISTEN_RENEW_SECONDS", 0.02)
    monkeypatch.setattr(hub_module, "LISTEN_TTL_SECONDS", 0.05)
    await the_hub.join(GAME, FakeMember("member"))
    await hub_module.say_listening(shared, [GAME], "a-dashboard")
    await eventually(lambda: "a-dashboard" in the_hub._listeners.get(GAME, {}))
    await eventually(lambda: len(shared.of_type(hub_module.LISTENING, the_hub.origin)) >= 4)
    await eventually(lambda: GAME not in the_hub._listeners)
    assert not the_hub._others_listen(GAME)


async def test_batches_kept_back_beyond_the_recent_events_are_left_to_be_fetched(
    the_hub: Hub, shared: SharedLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frames, "RECENT_EVENTS", 2)
    await the_hub.join(GAME, FakeMember("member"))
    for seq in (1, 2, 3):
        await the_hub.publish(GAME, [chat(seq, str(seq))])
    await hub_module.say_listening(shared, [GAME], "late")
    await eventually(lambda: bool(shared.of_type("game.events", the_hub.origin)))
    # Only what this process still holds: a later gap is fetched by seq, from the log.
    assert [seq for seq, _ in shared.of_type("game.events")[0]["events"]] == [2, 3]


# --------------------------------------------------------------------------------------------
# Through real consumers

OpenClient = Callable[..., Awaitable[Client]]


#: Opens synced clients and closes them afterwards: the fixture of ``tests.test_consumers``.
connect = test_consumers.connect


async def open_table(connect: OpenClient) -> tuple[int, dict[str, Client]]:
    """A game with the host, two seats, another country's seat and a spectator connected,
    each past its snapshot."""
    t = await table()
    clients = {"host": await connect(t.code, t.sessions["host"], host=True)}
    for who in ("A-chief", "A1", "B1", "spectator"):
        clients[who] = await connect(t.code, t.sessions[who])
    for client in clients.values():
        await client.until("snapshot")
    return t.game.pk, clients


def event_seqs(frames_: list[dict[str, Any]]) -> list[int]:
    return [f["seq"] for f in frames_ if f["type"] == "event"]


async def settled(clients: dict[str, Client]) -> dict[str, list[int]]:
    """The seqs of the events each client received since last asked, once nothing more
    comes (``Client`` itself fails on a repeated or skipped seq)."""
    return {name: event_seqs(await client.quiet(0.1)) for name, client in clients.items()}


async def events_upto(client: Client, seq: int) -> list[int]:
    """The seqs of the events the client receives up to ``seq``, since last asked."""
    start = client.cursor
    await client.until("event", seq=seq)
    return event_seqs(client.seen[start : client.cursor])


def elsewhere(game_id: int, command: c.Command) -> services.Outcome:
    """A command written by "another process": stored, then published to the group without
    an origin (``services.publish``)."""
    outcome = services.submit(game_id=game_id, command=command, issuer="elsewhere")
    assert outcome.accepted, outcome
    return outcome


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_server")
async def test_a_commands_events_reach_every_connection_once_through_one_membership(
    connect: OpenClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    game_id, clients = await open_table(connect)
    layer = get_channel_layer()
    sent: list[dict[str, Any]] = []
    group_send = layer.group_send

    async def spy(group: str, message: dict[str, Any]) -> None:
        sent.append(message)
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", spy)
    host = clients["host"]
    before = host.seq
    await host.command("start_game")
    last = (await host.command("announce", text="Welcome to the table."))["seq"]
    expected = list(range(before + 1, last + 1))
    assert len(expected) >= 2
    assert await settled(clients) == {name: expected for name in clients}
    assert len(hub().members(game_id)) == len(clients)
    (channel,) = hub_channels(layer, game_id)
    assert channel.startswith("ratify-hub.")
    # Nobody else in the group: the events never went through the channel layer.
    assert [m for m in sent if m["type"] == "game.events"] == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_server")
async def test_with_a_dashboard_in_the_group_a_command_is_sent_to_it_once(
    connect: OpenClient,
) -> None:
    game_id, clients = await open_table(connect)
    layer = get_channel_layer()
    dashboard = await layer.new_channel("dashboard.")
    await layer.group_add(services.group_name(game_id), dashboard)
    host = clients["host"]
    before = host.seq
    last = (await host.command("announce", text="Watched from the dashboard."))["seq"]
    assert last == before + 1
    assert await settled(clients) == {name: [last] for name in clients}
    received: list[dict[str, Any]] = []
    while not layer.channels[dashboard].empty():
        received.append(await layer.receive(dashboard))
    published = [m for m in received if m["type"] == "game.events"]
    assert len(published) == 1
    assert published[0]["origin"] == hub().origin
    assert [seq for seq, _ in published[0]["events"]] == [last]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_server")
async def test_events_written_by_another_process_reach_every_connection_once(
    connect: OpenClient,
) -> None:
    game_id, clients = await open_table(connect)
    before = clients["host"].seq
    started = await sync_to_async(elsewhere)(game_id, c.StartGame(c.INSTRUCTOR))
    announced = await sync_to_async(elsewhere)(game_id, c.Announce(c.INSTRUCTOR, "From afar."))
    assert announced.last_seq > started.last_seq > before
    expected = list(range(before + 1, announced.last_seq + 1))
    for client in clients.values():
        assert await events_upto(client, announced.last_seq) == expected
    assert await settled(clients) == {name: [] for name in clients}
    for client in clients.values():
        shown = [f for f in client.seen if f.get("seq") == announced.last_seq]
        assert [f["event"]["text"] for f in shown] == ["From afar."]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_server")
async def test_a_gap_is_fetched_by_its_connection_without_holding_up_the_others(
    connect: OpenClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    game_id, clients = await open_table(connect)
    before = clients["host"].seq
    # A1's connection fetches from the database only when the test lets it.
    gate = asyncio.Event()
    fetching: list[tuple[str, int | None, int]] = []
    fetch = consumers.GameConsumer._fetch

    async def held_fetch(self: consumers.GameConsumer, upto: int) -> None:
        assert self.binding is not None
        fetching.append((self.binding.viewer, self.last_sent, upto))
        if self.binding.viewer == "A1":
            await gate.wait()
        await fetch(self, upto)

    monkeypatch.setattr(consumers.GameConsumer, "_fetch", held_fetch)
    # Written elsewhere; its publication is lost, and this process holds no recent events.
    with monkeypatch.context() as lost:
        lost.setattr(services, "publish", lambda game_id, stored: None)
        await sync_to_async(elsewhere)(game_id, c.StartGame(c.INSTRUCTOR))
    frames.forget_recent(game_id)
    second = await sync_to_async(elsewhere)(game_id, c.Announce(c.INSTRUCTOR, "Second."))
    gap = list(range(before + 1, second.last_seq + 1))
    assert len(gap) >= 2
    others = {name: client for name, client in clients.items() if name != "A1"}
    for client in others.values():
        assert await events_upto(client, second.last_seq) == gap
    await eventually(lambda: len(fetching) == len(clients), timeout=WAIT)
    assert {(last, upto) for _, last, upto in fetching} == {(before, second.last_seq)}
    assert len({viewer for viewer, _, _ in fetching}) == len(clients)
    assert await settled({"A1": clients["A1"]}) == {"A1": []}
    # More events while A1's connection still waits for the database: the others get them
    # at once, from the process's recent events, without fetching again.
    third = await sync_to_async(elsewhere)(game_id, c.Announce(c.INSTRUCTOR, "Third."))
    for client in others.values():
        assert await events_upto(client, third.last_seq) == [third.last_seq]
    assert await settled({"A1": clients["A1"]}) == {"A1": []}
    gate.set()
    assert await events_upto(clients["A1"], third.last_seq) == [*gap, third.last_seq]
    assert await settled(clients) == {name: [] for name in clients}
    assert len(fetching) == len(clients)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_server")
async def test_the_process_leaves_the_group_with_the_games_last_connection(
    connect: OpenClient,
) -> None:
    game_id, clients = await open_table(connect)
    layer = get_channel_layer()
    (channel,) = hub_channels(layer, game_id)
    names = list(clients)
    for name in names[:-1]:
        await clients.pop(name).close()
        assert hub_channels(layer, game_id) == [channel]
    (last,) = clients.values()
    assert hub().members(game_id) != []
    await last.close()
    assert hub().members(game_id) == []
    assert hub_channels(layer, game_id) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_server")
async def test_a_fetch_the_database_failed_is_tried_again(
    connect: OpenClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    game_id, clients = await open_table(connect)
    before = clients["host"].seq
    monkeypatch.setattr(consumers, "FETCH_RETRY_SECONDS", 0.05)
    failures = [1]
    events_between = services.events_between

    def failing_once(game: int, after: int, upto: int | None = None) -> Any:
        if failures:
            failures.pop()
            raise OSError("the database went away")
        return events_between(game, after, upto)

    monkeypatch.setattr(services, "events_between", failing_once)
    with monkeypatch.context() as lost:
        lost.setattr(services, "publish", lambda game_id, stored: None)
        last = await sync_to_async(elsewhere)(game_id, c.StartGame(c.INSTRUCTOR))
    frames.forget_recent(game_id)
    ended = await sync_to_async(elsewhere)(game_id, c.Announce(c.INSTRUCTOR, "Last word."))
    assert ended.last_seq > last.last_seq
    # The failure hit one connection; it still gets every seq, without a further event.
    for client in clients.values():
        assert await events_upto(client, ended.last_seq) == list(
            range(before + 1, ended.last_seq + 1)
        )
    assert not failures
