"""What each server process runs beside its connections: phase timers and bots.

Deadlines are data in the game state. Every process that serves a game keeps a timer for its
current deadline; when it fires, the process submits ``FireDeadline`` with the command id
``deadline:<deadline>``, so however many processes fire, the command is applied once (the
others get the recorded answer, or ``stale_deadline``). After a restart the first connection
starts the runtime, which sets the timers of every active game again from the ``Game`` rows,
and a connection times its game's deadline when it opens. A process with no connection of the
game (it timed the game at its start, or wrote to it from a page) leaves the deadline to the
processes that serve the game: only ``BACKUP_SECONDS`` after the deadline does it read the
game's row, and fires only if the row still shows that deadline, so that with several
processes a deadline costs one fold of the game, not one per process. A game nobody serves
still ends its phases on time give or take ``BACKUP_SECONDS``; the periodic sweep also times
every deadline overdue by as much, in case the process that held its timer is gone.

Bots move in the process that made the last write: after each write, every bot seat is asked
for its commands (``engine.bots``, with the seat's ``bot_strategy``), which are submitted with
the command id ``bot:<seat>:<seq>:<n>``: a move decided twice from the same state is applied
once. A bot waits like a person before each move (``bot_pause``).

Presence. A seat is away (``Seat.away_since``) from when its player took it until they connect,
and again from when their last connection closes. Which connections exist is known across
processes only through the channel layer, so before acting on an absence the runtime asks the
game's group (``presence.probe``): every connection bound to a seat answers to this process's
inbox. A process that dies leaves no "leave" behind; a periodic sweep (``_sweep``) asks the
groups of every game with seated people and marks away the seats nobody answers for. Every
connection answers every probe, so with several processes sharing Redis only one of them
sweeps in each period: the one that takes the sweep's lease (a Redis key set with ``NX`` for
nine tenths of the period); a process that cannot reach Redis sweeps anyway. In a
remote match (``Game.public``) a seat away for ``RATIFY_GRACE_SECONDS`` is handed to a bot
(``services.hand_over_absent_seat``, under the game's lock: of several processes whose timers
fire, one hands it over); the player gets it back when they connect (``services.note_arrival``).
A match's bot fill is a timer too. All these timers are set again from the database by the
sweep, so they survive a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime
import hashlib
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis.asyncio
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import models
from django.utils import timezone

from negotiation import services
from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.bots import BotBrain, bot_commands
from negotiation.engine.scenario import Scenario
from negotiation.engine.state import GameState
from negotiation.engine.winset import Analysis
from negotiation.models import Game, Seat

logger = logging.getLogger(__name__)

#: Event types after which the deadline may have changed.
TIMING_EVENTS = frozenset(
    {
        e.PhaseChanged.TYPE,
        e.GamePaused.TYPE,
        e.GameResumed.TYPE,
        e.DeadlineExtended.TYPE,
        e.GameEnded.TYPE,
    }
)
#: A timer that fires early by the clock of another process tries again after this long.
RETRY_SECONDS = 0.25
#: How long after a deadline a process that serves no connection of the game waits for the
#: processes that do to fire it, before it checks the game's row and fires it itself.
BACKUP_SECONDS = 2.0
#: Bots stop after this many moves in a row without a human move, in case of a loop.
MAX_BOT_MOVES = 400
#: Event types after which who holds a seat may have changed.
SEAT_EVENTS = frozenset({e.SeatTaken.TYPE, e.SeatReleased.TYPE})
#: How long a presence probe waits for the connections' answers.
PROBE_SECONDS = 0.5
#: A seat marked away this many sweeps ago or less is asked about again (it may have been
#: marked while a new connection of its player was opening).
RECHECK_SWEEPS = 3
#: The share of a sweep period for which the process that sweeps holds the sweep's lease: a
#: little less than the period, so that the next sweep of any process may take it again.
LEASE_SHARE = 0.9
#: How much longer than a chat line or an acceptance a bot thinks over each kind of move
#: (times ``RATIFY_BOT_DELAY``); unlisted commands weigh 1.
THINKING_WEIGHTS: dict[type[c.Command], float] = {
    c.Propose: 4.0,
    c.CastBallot: 3.0,
    c.ChooseCompliance: 3.0,
    c.OpenStrawPoll: 3.0,
    c.AnswerStrawPoll: 2.0,
    c.Accept: 1.5,
}
#: A bot's pause is its weight times the base delay times a random factor in this range.
JITTER = (0.6, 1.5)


def bot_pause(command: c.Command, base: float, rng: random.Random | None = None) -> float:
    """Seconds a bot waits before ``command``, like a person: longer for proposals and
    ballots than for chat and acceptances, never the same twice; 0 when ``base`` is 0."""
    if base <= 0:
        return 0.0
    weight = THINKING_WEIGHTS.get(type(command), 1.0)
    return base * weight * (rng or random).uniform(*JITTER)


def sweep_seconds() -> float:
    """How often a process sweeps presence (``RATIFY_GRACE_SECONDS``, at least a second)."""
    return max(1.0, grace_seconds())


def sweep_lease_key() -> str:
    """The Redis key of the presence sweep's lease, under the channel layer's prefix (one
    per installation sharing the Redis)."""
    config = settings.CHANNEL_LAYERS["default"].get("CONFIG", {})
    return f"{config.get('prefix', 'ratify')}:presence-sweep"


def grace_seconds() -> float:
    """How long a remote match keeps a dropped player's seat before a bot takes over."""
    return float(getattr(settings, "RATIFY_GRACE_SECONDS", 60.0))


@dataclass(frozen=True, slots=True)
class _AwaySeat:
    key: str
    player: str
    since: datetime.datetime


@dataclass(frozen=True, slots=True)
class _SeatPlan:
    """What a game needs timed: its bot fill (epoch seconds) and its away seats."""

    fill_at: float | None
    away: tuple[_AwaySeat, ...]


def _brain_key(scenario: Scenario) -> str:
    text = json.dumps(scenario.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Runtime:
    """Timers and bots of the games this process serves."""

    def __init__(self) -> None:
        self._timers: dict[int, tuple[float, asyncio.TimerHandle]] = {}
        #: The seq of the state each game's timer was last set from: a state of an older seq
        #: (a command of this process published after a later event from elsewhere was seen)
        #: must not undo it.
        self._timed_seq: dict[int, int] = {}
        #: Games whose timer waits ``BACKUP_SECONDS`` past the deadline (none of their
        #: connections was here when it came).
        self._backing_up: set[int] = set()
        self._bots: dict[int, asyncio.Task[None]] = {}
        self._bots_again: set[int] = set()
        self._brains: dict[str, BotBrain] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refreshing: set[int] = set()
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Grace timers by (game, seat): the away time they were set for, and the handle.
        self._grace: dict[tuple[int, str], tuple[datetime.datetime, asyncio.TimerHandle]] = {}
        self._fills: dict[int, tuple[float, asyncio.TimerHandle]] = {}
        self._arming: set[int] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._listener: asyncio.Task[None] | None = None
        self._inbox: asyncio.Future[str] | None = None
        #: Answers collected by the probes under way, by probe id.
        self._probes: dict[str, _Probe] = {}
        #: The Redis client that takes the sweep's lease, and the loop it belongs to.
        self._redis: tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis] | None = None

    # ----------------------------------------------------------------------------------------
    # Entry points

    def start(self) -> None:
        """Set the timers of every active game (once per process, on the first connection),
        open this process's inbox for presence answers and start the presence sweep."""
        if self._started:
            return
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._inbox = self._loop.create_future()
        self._listener = self._loop.create_task(self._listen())
        self._spawn(self._recover())
        self._schedule_sweep()

    def poke(self, game_id: int) -> None:
        """``services`` changed a game (from any thread, say a page's): time its deadline, let
        its bots move and set its seat timers. Does nothing before the runtime started."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            # A fresh context: the caller's (a worker thread of sync_to_async) would make the
            # task's own database calls look like a deadlock to asgiref.
            loop.call_soon_threadsafe(
                self._after_outside_write_soon, game_id, context=contextvars.Context()
            )

    def _after_outside_write_soon(self, game_id: int) -> None:
        self._spawn(self._after_outside_write(game_id))

    def watch(self, game_id: int, state: GameState | None = None) -> None:
        """A connection opened: time the game's deadline as of ``state`` (the one its snapshot
        shows), and set its seat and bot-fill timers if it needs any."""
        if state is not None:
            self._set_timer(game_id, state)
        self._arm_soon(game_id)

    def seat_left(self, game_id: int, seat: str, player: str) -> None:
        """The last connection of ``seat`` this process knows of closed: the seat is away
        from now (unless a connection elsewhere answers a probe), and timed if that matters."""
        self._spawn(self._seat_left(game_id, seat, player, timezone.now()))

    def after_write(self, game_id: int, state: GameState | None) -> None:
        """A command of this process changed the game: time its deadline and let bots move."""
        if state is not None:
            self._set_timer(game_id, state)
            if not any(holder.bot for holder in state.seats.values()):
                return
        self._wake_bots(game_id)

    def observe(self, game_id: int, event_types: set[str], state: GameState | None = None) -> None:
        """Events arrived from the group (possibly written elsewhere): keep the timers right.

        Every connection of the game in this process reports the same batch; each timer is
        refreshed once. With ``state``, the game's state after the events (a command of this
        process wrote them), the timer is set from it: loading the state again would be a
        hop to the database thread, which writes the commands, for what is known already.
        """
        if event_types & TIMING_EVENTS:
            if state is not None:
                self._set_timer(game_id, state)
            elif game_id not in self._refreshing:
                self._refreshing.add(game_id)
                self._spawn(self._refresh_timer(game_id))
        if event_types & SEAT_EVENTS:
            self._arm_soon(game_id)

    async def idle(self) -> None:
        """Wait until no bot is moving (tests)."""
        while self._bots:
            await asyncio.gather(*self._bots.values(), return_exceptions=True)

    async def settle(self) -> None:
        """Wait until the tasks under way (timers firing, presence work) are done (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def reset(self) -> None:
        """Cancel every timer, bot and task (tests)."""
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._timed_seq.clear()
        self._backing_up.clear()
        for _, handle in [*self._grace.values(), *self._fills.values()]:
            handle.cancel()
        self._grace.clear()
        self._fills.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for task in [*self._bots.values(), *self._tasks, *filter(None, [self._listener])]:
            if not task.done():
                with contextlib.suppress(RuntimeError):  # its loop is closed already
                    task.cancel()
        self._bots.clear()
        self._bots_again.clear()
        self._tasks.clear()
        self._listener = None
        self._inbox = None
        self._probes.clear()
        self._redis = None
        self._refreshing.clear()
        self._arming.clear()
        self._loop = None
        self._started = False

    # ----------------------------------------------------------------------------------------
    # Timers

    async def _recover(self) -> None:
        # From the rows, not the logs: folding every active game's log here would cost a
        # process the state of games whose connections other processes serve.
        timed, with_bots = await database_sync_to_async(_recovery_plan)()
        for game_id, seq, deadline in timed:
            self._set_timer_at(game_id, seq, deadline)
        for game_id in with_bots:
            self._wake_bots(game_id)
        for game_id in await database_sync_to_async(_open_match_ids)():
            await self._arm(game_id)

    async def _refresh_timer(self, game_id: int) -> None:
        try:
            state = await database_sync_to_async(services.load_state)(game_id)
        except services.GameNotFoundError:
            return
        finally:
            self._refreshing.discard(game_id)
        self._set_timer(game_id, state)

    def _set_timer(self, game_id: int, state: GameState) -> None:
        deadline = None if state.paused or state.ended else state.deadline
        self._set_timer_at(game_id, state.seq, deadline)

    def _set_timer_at(self, game_id: int, seq: int, deadline: float | None) -> None:
        """Time ``deadline`` (None: no timer), the game's deadline as of ``seq``."""
        if seq < self._timed_seq.get(game_id, 0):
            return
        self._timed_seq[game_id] = seq
        current = self._timers.get(game_id)
        if current is not None:
            if current[0] == deadline and game_id not in self._backing_up:
                return
            current[1].cancel()
            del self._timers[game_id]
        self._backing_up.discard(game_id)
        if deadline is None:
            return
        self._time(game_id, deadline, deadline)

    def _time(self, game_id: int, deadline: float, at: float) -> None:
        delay = max(0.0, at - time.time())
        handle = asyncio.get_running_loop().call_later(
            delay, lambda: self._spawn(self._fire(game_id, deadline))
        )
        self._timers[game_id] = (deadline, handle)

    def _forget(self, game_id: int) -> None:
        """Stop timing a game this process does not serve (unless a timer was set again)."""
        self._backing_up.discard(game_id)
        if game_id not in self._timers:
            self._timed_seq.pop(game_id, None)

    async def _fire(self, game_id: int, deadline: float) -> None:
        if self._timers.get(game_id, (None,))[0] == deadline:
            del self._timers[game_id]
        if not _served_here(game_id) and not await self._unfired(game_id, deadline):
            return
        self._backing_up.discard(game_id)
        outcome = await database_sync_to_async(services.submit)(
            game_id=game_id,
            command=c.FireDeadline(c.SYSTEM, deadline),
            issuer=services.SYSTEM_ISSUER,
            client_id=f"deadline:{deadline!r}",
        )
        if outcome.code == "deadline_not_reached":
            await asyncio.sleep(RETRY_SECONDS)
            self._spawn(self._fire(game_id, deadline))
            return
        if outcome.accepted and not outcome.replayed:
            self.after_write(game_id, outcome.state)
        else:
            await self._refresh_timer(game_id)

    async def _unfired(self, game_id: int, deadline: float) -> bool:
        """For a game none of whose connections is here: whether ``deadline`` is still to be
        fired by this process, which is so only ``BACKUP_SECONDS`` after it and while the
        game's row still shows it. Until then the timer waits (unless it was set again); a
        row showing another deadline, or none, means the processes serving the game took
        care of it, and this one stops timing the game."""
        if game_id in self._timers:
            return False  # timed again meanwhile, by what this process saw
        backup_at = deadline + BACKUP_SECONDS
        if time.time() < backup_at:
            self._backing_up.add(game_id)
            self._time(game_id, deadline, backup_at)
            return False
        if await database_sync_to_async(_row_deadline)(game_id) != deadline or (
            game_id in self._timers
        ):
            self._forget(game_id)
            return False
        return True

    # ----------------------------------------------------------------------------------------
    # Bots

    def _wake_bots(self, game_id: int) -> None:
        running = self._bots.get(game_id)
        if running is not None and not running.done():
            self._bots_again.add(game_id)
            return
        task = asyncio.get_running_loop().create_task(self._run_bots(game_id))
        self._bots[game_id] = task
        task.add_done_callback(lambda _: self._bots.pop(game_id, None))

    async def _brain(self, scenario: Scenario) -> BotBrain:
        key = _brain_key(scenario)
        brain = self._brains.get(key)
        if brain is None:
            # The playable zone of a large grid takes a moment: off the event loop.
            brain = await asyncio.to_thread(_build_brain, scenario)
            self._brains[key] = brain
        return brain

    async def _run_bots(self, game_id: int) -> None:
        base = float(getattr(settings, "RATIFY_BOT_DELAY", 0.0))
        moves = 0
        try:
            while moves < MAX_BOT_MOVES:
                self._bots_again.discard(game_id)
                state = await database_sync_to_async(services.load_state)(game_id)
                bots = [seat for seat, holder in sorted(state.seats.items()) if holder.bot]
                if not bots or state.ended:
                    return
                brain = await self._brain(state.scenario)
                strategies = await database_sync_to_async(_bot_strategies)(game_id)
                moved = False
                for seat in bots:
                    commands = _commands_of(state, seat, brain, strategies.get(seat, ""))
                    for index, command in enumerate(commands):
                        pause = bot_pause(command, base)
                        if pause:
                            await asyncio.sleep(pause)
                        outcome = await database_sync_to_async(services.submit)(
                            game_id=game_id,
                            command=command,
                            issuer=services.BOT_ISSUER,
                            client_id=f"bot:{seat}:{state.seq}:{index}",
                        )
                        if not outcome.accepted:
                            break
                        moves += 1
                        moved = True
                        if outcome.state is not None:
                            self._set_timer(game_id, outcome.state)
                    if moved:
                        break
                if not moved and game_id not in self._bots_again:
                    return
            logger.warning("game %s: bots stopped after %d moves in a row", game_id, moves)
        except services.GameNotFoundError:
            return
        except Exception:
            logger.exception("game %s: a bot failed", game_id)

    # ----------------------------------------------------------------------------------------
    # Writes made outside the runtime (pages, the instructor's dashboard)

    async def _after_outside_write(self, game_id: int) -> None:
        try:
            state = await database_sync_to_async(services.load_state)(game_id)
        except services.GameNotFoundError:
            return
        self.after_write(game_id, state)
        self._arm_soon(game_id)

    # ----------------------------------------------------------------------------------------
    # Seat timers: the grace period of remote matches and their bot fill

    def _arm_soon(self, game_id: int) -> None:
        if game_id not in self._arming:
            self._arming.add(game_id)
            self._spawn(self._arm(game_id))

    async def _arm(self, game_id: int) -> None:
        try:
            plan = await database_sync_to_async(_seat_plan)(game_id)
        finally:
            self._arming.discard(game_id)
        self._set_fill_timer(game_id, plan.fill_at)
        wanted = {seat.key: seat for seat in plan.away}
        for key in [k for k in self._grace if k[0] == game_id and k[1] not in wanted]:
            self._grace.pop(key)[1].cancel()
        loop = asyncio.get_running_loop()
        grace = grace_seconds()
        for seat in plan.away:
            current = self._grace.get((game_id, seat.key))
            if current is not None:
                if current[0] == seat.since:
                    continue
                current[1].cancel()
            delay = max(0.0, seat.since.timestamp() + grace - time.time())
            handle = loop.call_later(delay, self._grace_soon, game_id, seat)
            self._grace[(game_id, seat.key)] = (seat.since, handle)

    def _grace_soon(self, game_id: int, seat: _AwaySeat) -> None:
        self._spawn(self._grace_over(game_id, seat))

    def _set_fill_timer(self, game_id: int, fill_at: float | None) -> None:
        current = self._fills.get(game_id)
        if current is not None:
            if current[0] == fill_at:
                return
            current[1].cancel()
            del self._fills[game_id]
        if fill_at is None:
            return
        delay = max(0.0, fill_at - time.time())
        handle = asyncio.get_running_loop().call_later(
            delay, lambda: self._spawn(self._fill(game_id, fill_at))
        )
        self._fills[game_id] = (fill_at, handle)

    async def _fill(self, game_id: int, fill_at: float) -> None:
        if self._fills.get(game_id, (None,))[0] == fill_at:
            del self._fills[game_id]
        if time.time() < fill_at:
            # Fired early by the clock of the process that created the match.
            await asyncio.sleep(RETRY_SECONDS)
            self._spawn(self._fill(game_id, fill_at))
            return
        try:
            await database_sync_to_async(services.fill_match)(game_id=game_id)
        except services.GameNotFoundError:
            return

    async def _grace_over(self, game_id: int, seat: _AwaySeat) -> None:
        if self._grace.get((game_id, seat.key), (None,))[0] == seat.since:
            del self._grace[(game_id, seat.key)]
        present = await self._present(game_id, seat.key, seat.player)
        if present is None:
            return  # unknown: the next sweep sets the timer again
        if present:
            await database_sync_to_async(services.note_present)(
                game_id=game_id, seat_key=seat.key, player_id=seat.player
            )
            return
        try:
            outcome = await database_sync_to_async(services.hand_over_absent_seat)(
                game_id=game_id, seat_key=seat.key, away_before=seat.since
            )
        except services.GameNotFoundError:
            return
        if outcome.accepted:
            logger.info("game %s: a bot stands in for the absent %s", game_id, seat.key)
        else:
            logger.info("game %s: %s keeps its holder (%s)", game_id, seat.key, outcome.code)

    async def _seat_left(
        self, game_id: int, seat: str, player: str, since: datetime.datetime
    ) -> None:
        if await self._present(game_id, seat, player):
            return
        away = await database_sync_to_async(services.note_departure)(
            game_id=game_id, seat_key=seat, player_id=player, since=since
        )
        if away:
            self._arm_soon(game_id)

    # ----------------------------------------------------------------------------------------
    # Presence probes: which seats have a connection, in any process

    async def _listen(self) -> None:
        """Receive the connections' answers to this process's probes, for as long as it runs;
        after a failure of the channel layer, with a new inbox."""
        layer = get_channel_layer()
        while layer is not None and self._inbox is not None:
            try:
                inbox = await layer.new_channel("ratify-runtime.")
                if not self._inbox.done():
                    self._inbox.set_result(inbox)
                while True:
                    message = await layer.receive(inbox)
                    probe = self._probes.get(str(message.get("probe", "")))
                    if probe is not None:
                        probe.answer(
                            int(message["game"]), str(message["seat"]), str(message["player"])
                        )
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("presence inbox failed; opening a new one")
                self._inbox = asyncio.get_running_loop().create_future()
                await asyncio.sleep(RETRY_SECONDS * 4)

    async def _ask(
        self, game_ids: Iterable[int], wanted: tuple[int, str, str] | None
    ) -> _Probe | None:
        """Ask the groups of ``game_ids`` who is connected; returns once ``wanted`` answered
        or after ``PROBE_SECONDS``. None when the channel layer could not be asked: then
        nobody's absence is known."""
        probe = _Probe(wanted)
        if self._inbox is None:
            return None
        try:
            inbox = await asyncio.wait_for(asyncio.shield(self._inbox), PROBE_SECONDS)
        except (TimeoutError, asyncio.CancelledError):
            return None
        layer = get_channel_layer()
        if layer is None:
            return None
        probe_id = uuid.uuid4().hex
        self._probes[probe_id] = probe
        try:
            for game_id in game_ids:
                await layer.group_send(
                    services.group_name(game_id),
                    {
                        "type": "presence.probe",
                        "game": game_id,
                        "reply_to": inbox,
                        "probe": probe_id,
                    },
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(probe.found.wait(), PROBE_SECONDS)
        except Exception:
            logger.exception("could not probe the presence of games %s", game_ids)
            return None
        finally:
            self._probes.pop(probe_id, None)
        return probe

    async def _present(self, game_id: int, seat: str, player: str) -> bool | None:
        """Whether a connection of ``player`` bound to ``seat`` is open, in any process; None
        when the channel layer could not be asked."""
        probe = await self._ask([game_id], (game_id, seat, player))
        return None if probe is None else probe.found.is_set()

    def _schedule_sweep(self) -> None:
        loop = self._loop
        if loop is None:
            return
        self._sweeper = loop.call_later(sweep_seconds(), lambda: self._spawn(self._sweep()))

    async def _takes_the_sweep(self) -> bool:
        """Whether this process sweeps presence this period. Without Redis there is one
        process to a layer: always. With Redis, only if it takes the sweep's lease, so that
        each connection answers one probe per period rather than one per process; if Redis
        cannot be reached, it sweeps (and says so), as a process alone would."""
        url = getattr(settings, "REDIS_URL", "")
        if not url:
            return True
        loop = asyncio.get_running_loop()
        try:
            if self._redis is None or self._redis[0] is not loop:
                self._redis = (loop, redis.asyncio.Redis.from_url(url))
            taken = await self._redis[1].set(
                sweep_lease_key(),
                os.getpid(),
                nx=True,
                px=max(1, int(sweep_seconds() * LEASE_SHARE * 1000)),
            )
        except Exception:
            logger.warning("could not take the presence sweep's lease; sweeping", exc_info=True)
            return True
        return bool(taken)

    async def _sweep(self) -> None:
        """Mark away the seats nobody is connected for (their process may have died), clear
        those wrongly marked, and set the seat timers of every remote match again. Before
        that, time every deadline overdue by ``BACKUP_SECONDS``: the process that held its
        timer may be gone."""
        try:
            due_by = time.time() - BACKUP_SECONDS
            for game_id, seq, deadline in await database_sync_to_async(_timed_games)(due_by):
                self._set_timer_at(game_id, seq, deadline)
        except Exception:
            logger.exception("the sweep of overdue deadlines failed")
        try:
            if await self._takes_the_sweep():
                await self._sweep_presence()
            for game_id in await database_sync_to_async(_open_match_ids)():
                await self._arm(game_id)
        except Exception:
            logger.exception("the presence sweep failed")
        finally:
            self._schedule_sweep()

    async def _sweep_presence(self) -> None:
        seats = await database_sync_to_async(_seats_to_check)(
            timezone.now() - datetime.timedelta(seconds=RECHECK_SWEEPS * grace_seconds())
        )
        games = sorted({game_id for game_id, *_ in seats})
        probe = await self._ask(games, None) if games else None
        if games and probe is None:
            return  # nobody's presence is known: change nothing until the next sweep
        answered = probe.answers if probe is not None else set()
        now = timezone.now()
        for game_id, key, player, away_since in seats:
            if (game_id, key, player) in answered:
                if away_since is not None:
                    await database_sync_to_async(services.note_present)(
                        game_id=game_id, seat_key=key, player_id=player
                    )
            elif away_since is None:
                await database_sync_to_async(services.note_departure)(
                    game_id=game_id, seat_key=key, player_id=player, since=now
                )

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Probe:
    """The answers to one presence probe: (game, seat, player) of each connection."""

    def __init__(self, wanted: tuple[int, str, str] | None) -> None:
        self.wanted = wanted
        self.answers: set[tuple[int, str, str]] = set()
        self.found = asyncio.Event()

    def answer(self, game_id: int, seat: str, player: str) -> None:
        self.answers.add((game_id, seat, player))
        if (game_id, seat, player) == self.wanted:
            self.found.set()


def _recovery_plan() -> tuple[list[tuple[int, int, float]], list[int]]:
    """``_timed_games()``, and the ids of the games not ended with a bot seat."""
    with_bots = list(
        Seat.objects.filter(bot=True)
        .exclude(game__status=Game.Status.ENDED)
        .order_by("game_id")
        .values_list("game_id", flat=True)
        .distinct()
    )
    return _timed_games(), with_bots


def _timed_games(due_by: float | None = None) -> list[tuple[int, int, float]]:
    """(id, last seq, deadline) of the games not ended whose deadline runs (the ``Game`` rows'
    projection, none while paused); with ``due_by``, only those due by then."""
    rows = Game.objects.exclude(status=Game.Status.ENDED).filter(deadline__isnull=False)
    if due_by is not None:
        rows = rows.filter(deadline__lte=due_by)
    return [
        (pk, seq, deadline)
        for pk, seq, deadline in rows.order_by("pk").values_list("pk", "last_seq", "deadline")
        if deadline is not None  # never, by the filter: for the type
    ]


def _row_deadline(game_id: int) -> float | None:
    """The deadline the game's row shows (None while paused or ended, or for no such game)."""
    return Game.objects.filter(pk=game_id).values_list("deadline", flat=True).first()


def _served_here(game_id: int) -> bool:
    # Imported here, not at the top: the hub imports this module.
    from negotiation.hub import hub

    return hub().serves(game_id)


def _bot_strategies(game_id: int) -> dict[str, str]:
    return dict(Seat.objects.filter(game_id=game_id, bot=True).values_list("key", "bot_strategy"))


def _commands_of(state: GameState, seat: str, brain: BotBrain, strategy: str) -> list[c.Command]:
    """What the bot in ``seat`` does now, playing ``strategy`` (blank: the default; a name the
    engine no longer knows plays the default too)."""
    now = time.time()
    try:
        return bot_commands(state, seat, brain, strategy or None, now=now)
    except ValueError:
        logger.warning("seat %s: unknown bot strategy %r, playing the default", seat, strategy)
        return bot_commands(state, seat, brain, None, now=now)


def _seat_plan(game_id: int) -> _SeatPlan:
    game = Game.objects.filter(pk=game_id).first()
    if game is None or not game.public or game.status == Game.Status.ENDED:
        return _SeatPlan(None, ())
    fill_at = None
    if game.status == Game.Status.LOBBY and game.bot_fill_after is not None:
        fill_at = game.created.timestamp() + game.bot_fill_after
    away = tuple(
        _AwaySeat(key, str(player), since)
        for key, player, since in Seat.objects.filter(
            game=game, bot=False, player__isnull=False, away_since__isnull=False
        ).values_list("key", "player_id", "away_since")
        if since is not None
    )
    return _SeatPlan(fill_at, away)


def _seats_to_check(
    recently: datetime.datetime,
) -> list[tuple[int, str, str, datetime.datetime | None]]:
    """Seats of unfinished games held by people and believed connected, or marked away
    since ``recently``: (game id, seat, player id, away since)."""
    rows = (
        Seat.objects.filter(bot=False, player__isnull=False)
        .exclude(game__status=Game.Status.ENDED)
        .filter(models.Q(away_since__isnull=True) | models.Q(away_since__gte=recently))
        .values_list("game_id", "key", "player_id", "away_since")
    )
    return [(game_id, key, str(player), since) for game_id, key, player, since in rows]


def _open_match_ids() -> list[int]:
    return list(
        Game.objects.filter(public=True)
        .exclude(status=Game.Status.ENDED)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _build_brain(scenario: Scenario) -> BotBrain:
    brain = BotBrain(Analysis(scenario))
    # Compute what the bots will ask for here, off the event loop.
    try:
        brain.nash_point  # noqa: B018
    except ValueError:
        brain.fallback_offers  # noqa: B018
    return brain


runtime = Runtime()
services.listen_to_writes(runtime.poke)
