"""What each server process runs beside its connections: phase timers and bots.

Deadlines are data in the game state. Every process that serves a game keeps a timer for its
current deadline; when it fires, the process submits ``FireDeadline`` with the command id
``deadline:<deadline>``, so however many processes fire, the command is applied once (the
others get the recorded answer, or ``stale_deadline``). After a restart the first connection
starts the runtime, which sets the timers of every active game again from the ``Game`` rows.

Bots move in the process that made the last write: after each write, every bot seat is asked
for its commands (``engine.bots``), which are submitted with the command id
``bot:<seat>:<seq>:<n>``: a move decided twice from the same state is applied once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from negotiation import services
from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.bots import BotBrain, bot_commands
from negotiation.engine.scenario import Scenario
from negotiation.engine.state import GameState
from negotiation.engine.winset import Analysis
from negotiation.models import Game

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
#: Bots stop after this many moves in a row without a human move, in case of a loop.
MAX_BOT_MOVES = 400


def _brain_key(scenario: Scenario) -> str:
    text = json.dumps(scenario.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Runtime:
    """Timers and bots of the games this process serves."""

    def __init__(self) -> None:
        self._timers: dict[int, tuple[float, asyncio.TimerHandle]] = {}
        self._bots: dict[int, asyncio.Task[None]] = {}
        self._bots_again: set[int] = set()
        self._brains: dict[str, BotBrain] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refreshing: set[int] = set()
        self._started = False

    # ----------------------------------------------------------------------------------------
    # Entry points

    def start(self) -> None:
        """Set the timers of every active game (once per process, on the first connection)."""
        if self._started:
            return
        self._started = True
        self._spawn(self._recover())

    def after_write(self, game_id: int, state: GameState | None) -> None:
        """A command of this process changed the game: time its deadline and let bots move."""
        if state is not None:
            self._set_timer(game_id, state)
            if not any(holder.bot for holder in state.seats.values()):
                return
        self._wake_bots(game_id)

    def observe(self, game_id: int, event_types: set[str]) -> None:
        """Events arrived from the group (possibly written elsewhere): keep the timer right.

        Every connection of the game in this process reports the same batch; the timer is
        refreshed once.
        """
        if event_types & TIMING_EVENTS and game_id not in self._refreshing:
            self._refreshing.add(game_id)
            self._spawn(self._refresh_timer(game_id))

    async def idle(self) -> None:
        """Wait until no bot is moving (tests)."""
        while self._bots:
            await asyncio.gather(*self._bots.values(), return_exceptions=True)

    def reset(self) -> None:
        """Cancel every timer and bot (tests)."""
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in self._bots.values():
            task.cancel()
        self._bots.clear()
        self._bots_again.clear()
        self._refreshing.clear()
        self._started = False

    # ----------------------------------------------------------------------------------------
    # Timers

    async def _recover(self) -> None:
        games = await database_sync_to_async(_active_game_ids)()
        for game_id in games:
            await self._refresh_timer(game_id)
            self._wake_bots(game_id)

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
        current = self._timers.get(game_id)
        if current is not None:
            if current[0] == deadline:
                return
            current[1].cancel()
            del self._timers[game_id]
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - time.time())
        handle = loop.call_later(delay, lambda: self._spawn(self._fire(game_id, deadline)))
        self._timers[game_id] = (deadline, handle)

    async def _fire(self, game_id: int, deadline: float) -> None:
        if self._timers.get(game_id, (None,))[0] == deadline:
            del self._timers[game_id]
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
        delay = float(getattr(settings, "RATIFY_BOT_DELAY", 0.0))
        moves = 0
        try:
            while moves < MAX_BOT_MOVES:
                self._bots_again.discard(game_id)
                state = await database_sync_to_async(services.load_state)(game_id)
                bots = [seat for seat, holder in sorted(state.seats.items()) if holder.bot]
                if not bots or state.ended:
                    return
                brain = await self._brain(state.scenario)
                moved = False
                for seat in bots:
                    commands = bot_commands(state, seat, brain)
                    for index, command in enumerate(commands):
                        if delay:
                            await asyncio.sleep(delay)
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

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _active_game_ids() -> list[int]:
    return list(
        Game.objects.exclude(status=Game.Status.ENDED).order_by("pk").values_list("pk", flat=True)
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
