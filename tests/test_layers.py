"""The process channel layer keeps the in-memory layer's semantics at a cost per member."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer

from negotiation import layers
from negotiation.layers import ProcessChannelLayer


async def test_the_project_uses_it_without_redis() -> None:
    assert isinstance(get_channel_layer(), ProcessChannelLayer)


async def test_group_send_reaches_every_member_once_and_in_order() -> None:
    layer = ProcessChannelLayer()
    members = [await layer.new_channel() for _ in range(5)]
    outsider = await layer.new_channel()
    for channel in members:
        await layer.group_add("game.1", channel)
    await layer.group_add("game.2", outsider)
    for n in range(3):
        await layer.group_send("game.1", {"type": "game.events", "n": n})
    for channel in members:
        got = [await asyncio.wait_for(layer.receive(channel), 1) for _ in range(3)]
        assert [m["n"] for m in got] == [0, 1, 2]
    assert outsider not in layer.channels
    await layer.group_discard("game.1", members[0])
    await layer.group_send("game.1", {"type": "game.events", "n": 3})
    assert layer.channels[members[0]].empty()
    assert (await layer.receive(members[1]))["n"] == 3


async def test_a_receiver_gets_its_own_copy_of_the_message() -> None:
    layer = ProcessChannelLayer()
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", a)
    await layer.group_add("g", b)
    await layer.group_send("g", {"type": "x", "v": 1})
    first = await layer.receive(a)
    first["v"] = 2
    assert (await layer.receive(b))["v"] == 1


async def test_a_full_channel_refuses_a_send_and_misses_a_group_message() -> None:
    layer = ProcessChannelLayer(capacity=2)
    slow, quick = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", slow)
    await layer.group_add("g", quick)
    await layer.send(slow, {"type": "x"})
    await layer.send(slow, {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send(slow, {"type": "x"})
    await layer.group_send("g", {"type": "y"})
    assert (await layer.receive(quick))["type"] == "y"
    assert [(await layer.receive(slow))["type"] for _ in range(2)] == ["x", "x"]
    assert layer.channels[slow].empty()


async def test_the_sweep_drops_empty_queues_but_not_one_a_receiver_waits_on() -> None:
    layer = ProcessChannelLayer()
    done, waiting = await layer.new_channel(), await layer.new_channel()
    await layer.send(done, {"type": "x"})
    await layer.receive(done)
    receiver = asyncio.create_task(layer.receive(waiting))
    await asyncio.sleep(0)
    layer._next_sweep = 0.0
    layer._sweep_if_due()
    assert done not in layer.channels
    assert waiting in layer.channels
    await layer.send(waiting, {"type": "late"})
    assert (await asyncio.wait_for(receiver, 1))["type"] == "late"


async def test_bad_names_are_refused() -> None:
    layer = ProcessChannelLayer()
    with pytest.raises(TypeError):
        await layer.send("bad name with spaces", {"type": "x"})
    with pytest.raises(TypeError):
        await layer.group_add("bad group!", "good.channel")


async def test_expired_messages_and_their_channels_leave_the_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layer = ProcessChannelLayer(expiry=1)
    stale, live = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", stale)
    await layer.send(stale, {"type": "x"})
    later = time.time() + 5
    monkeypatch.setattr(time, "time", lambda: later)
    monkeypatch.setattr(layers, "SWEEP_SECONDS", 0.0)
    layer._next_sweep = 0.0
    await layer.group_add("g", live)
    await layer.group_send("g", {"type": "y"})
    # The stale channel's message expired: it left the group and got nothing more.
    assert stale not in layer.groups.get("g", {})
    assert stale not in layer.channels
    assert (await layer.receive(live))["type"] == "y"
