"""Games played by bots alone, and tournaments of them, on a simulated clock.

``play_game`` runs one whole game through ``rules.apply`` exactly as the live runtime does:
every seat is taken by a bot with ``TakeSeat(bot=True)``, the instructor starts the game, and
then, again and again, the bot seats are asked in sorted order for their commands
(``bots.bot_commands``); the first seat that has any submits them in order and the round of
questions starts over. Each command waits a human-like delay on the simulated clock (a random
share, 0.5x to 1.5x, of ``move_seconds``, as the runtime waits before each bot move). When the
clock reaches the phase deadline the ``FireDeadline`` command fires it, as the runtime's timer
would; when no bot has a move the clock jumps to the deadline and fires it, and a phase without
a deadline is ended by the instructor's ``AdvancePhase``. The game runs until it ends (all its
rounds).

A command the rules refuse is recorded as a ``Refusal`` (with ``strict`` it raises
``BotRuleViolation`` at once) and dropped, as the runtime drops it. Bots that keep moving past
``MAX_COMMANDS`` raise ``RunawayBotsError``: bots alone always fall silent or agree, so that
would be a bug.

``play_tournament`` plays many games with one ``random.Random(seed)``: each game draws its own
seed from it, and each game's generator chooses the strategy of every chief that is not pinned
(uniformly from the pool) and the delays. The same seed gives the same games, event for event.
``Tournament.summary()`` is the JSON-ready report of ``manage.py play_bots`` (docs/bots.md lists
its keys).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.analytics import LABELS, Outcome, outcomes, share_of_gains
from negotiation.engine.bots import (
    CHIEF_STRATEGIES,
    DEFAULT_CONSTITUENT_STRATEGY,
    BotBrain,
    bot_commands,
)
from negotiation.engine.rules import RuleViolation, apply, create_game, initial_state
from negotiation.engine.scenario import GameDefaults, Member, Scenario
from negotiation.engine.scoring import IN_FORCE_RESULTS, Scores, score_state
from negotiation.engine.state import GameState

#: The simulated clock starts here (seconds); only differences matter.
START_TIME = 0.0
#: The mean delay before each bot command, as ``RATIFY_BOT_DELAY``'s default in the shell.
DEFAULT_MOVE_SECONDS = 1.0
#: A bot's delay is this range of shares of ``move_seconds``.
DELAY_SPREAD = (0.5, 1.5)
#: More bot commands than this in one game means bots that never stop.
MAX_COMMANDS = 20_000
#: The player id and display name of a bot's seat, as the shell seats bots.
BOT_PLAYER = "bot"
BOT_NAME = "Bot"
#: Each game's seed is drawn below this bound.
GAME_SEED_BOUND = 2**32


class BotRuleViolation(Exception):
    """A bot issued a command the rules refused (``strict`` play)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.describe())
        self.refusal = refusal


class RunawayBotsError(RuntimeError):
    """Bots kept moving past ``MAX_COMMANDS`` commands in one game."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A bot's command that the rules refused."""

    game: int
    seat: str
    strategy: str
    command: c.Command
    code: str
    message: str
    phase: str
    seq: int

    def describe(self) -> str:
        return (
            f"game {self.game}: {self.seat} ({self.strategy}) issued {self.command!r} in "
            f"{self.phase} at seq {self.seq}, refused: {self.code}: {self.message}"
        )

    def to_dict(self) -> dict[str, Any]:
        fields = {f.name: getattr(self.command, f.name) for f in dataclasses.fields(self.command)}
        return {
            "game": self.game,
            "seat": self.seat,
            "strategy": self.strategy,
            "command": {"type": self.command.NAME, **_plain(fields)},
            "code": self.code,
            "message": self.message,
            "phase": self.phase,
            "seq": self.seq,
        }


@dataclass(frozen=True)
class GameRecord:
    """One bot game: who played what, its whole log and what came of it."""

    index: int
    seed: int
    #: Chief seat -> strategy key.
    strategies: Mapping[str, str]
    events: tuple[e.Event, ...]
    state: GameState
    outcomes: tuple[Outcome, ...]
    scores: Scores
    refusals: tuple[Refusal, ...]
    #: Bot commands the rules accepted.
    commands: int
    #: Phase deadlines fired, and phases without a deadline the instructor ended.
    deadlines_fired: int
    phases_advanced: int


def play_game(
    brain: BotBrain,
    strategies: Mapping[str, str],
    *,
    rng: random.Random,
    settings: GameDefaults | None = None,
    move_seconds: float = DEFAULT_MOVE_SECONDS,
    index: int = 0,
    seed: int = 0,
    strict: bool = False,
) -> GameRecord:
    """Play one whole game of ``brain.scenario`` with a bot in every seat.

    ``strategies`` maps every chief's seat to a key of ``CHIEF_STRATEGIES``; ``settings``
    defaults to the scenario's own. ``rng`` draws the delays. ``index`` and ``seed`` only
    label the record. Raises ``ValueError`` for a missing or unknown strategy or a negative or
    non-finite ``move_seconds``, ``BotRuleViolation`` (with ``strict``) when a bot's command is
    refused, ``RunawayBotsError`` when the bots never stop.
    """
    scenario = brain.scenario
    _check_strategies(scenario, strategies)
    if not (math.isfinite(move_seconds) and move_seconds >= 0):
        raise ValueError(f"move_seconds must be a finite number >= 0, not {move_seconds!r}")
    created = create_game(scenario, settings)
    log: list[e.Event] = [created]
    state = initial_state(created)
    now = START_TIME

    def run(command: c.Command) -> None:
        """Apply a command of the server or the instructor, which never fails here."""
        nonlocal state
        state, events = apply(state, command, now)
        log.extend(events)

    for member in scenario.members:
        run(c.TakeSeat(c.SYSTEM, member.key, BOT_PLAYER, bot=True, name=BOT_NAME))
    run(c.StartGame(c.INSTRUCTOR))

    refusals: list[Refusal] = []
    accepted = fired = advanced = 0
    issued = 0
    while not state.ended:
        moved = False
        for seat in sorted(state.seats):
            if not state.seats[seat].bot:
                continue
            strategy = strategies.get(seat, DEFAULT_CONSTITUENT_STRATEGY)
            for command in bot_commands(state, seat, brain, strategy, now=now):
                issued += 1
                if issued > MAX_COMMANDS:
                    raise RunawayBotsError(
                        f"game {index}: the bots issued more than {MAX_COMMANDS} commands"
                    )
                at = now + rng.uniform(*DELAY_SPREAD) * move_seconds
                deadline = state.deadline
                if deadline is not None and at >= deadline:
                    # The phase's timer fires before this move; the bots look again.
                    now = max(now, deadline)
                    run(c.FireDeadline(c.SYSTEM, deadline))
                    fired += 1
                    moved = True
                    break
                now = at
                try:
                    state, events = apply(state, command, now)
                except RuleViolation as violation:
                    refusal = Refusal(
                        game=index,
                        seat=seat,
                        strategy=strategy,
                        command=command,
                        code=violation.code,
                        message=violation.message,
                        phase=state.phase,
                        seq=state.seq,
                    )
                    if strict:
                        raise BotRuleViolation(refusal) from violation
                    refusals.append(refusal)
                    break
                log.extend(events)
                accepted += 1
                moved = True
            if moved:
                break
        if moved:
            continue
        if state.deadline is not None:
            deadline = state.deadline
            now = max(now, deadline)
            run(c.FireDeadline(c.SYSTEM, deadline))
            fired += 1
        else:
            run(c.AdvancePhase(c.INSTRUCTOR))
            advanced += 1

    return GameRecord(
        index=index,
        seed=seed,
        strategies=dict(strategies),
        events=tuple(log),
        state=state,
        outcomes=tuple(outcomes(state, brain.analysis, log)),
        scores=score_state(state),
        refusals=tuple(refusals),
        commands=accepted,
        deadlines_fired=fired,
        phases_advanced=advanced,
    )


def _check_strategies(scenario: Scenario, strategies: Mapping[str, str]) -> None:
    """Raises ``ValueError`` unless every chief has a known strategy and nothing else has one."""
    chiefs = {chief.key for chief in scenario.chiefs}
    missing = sorted(chiefs - set(strategies))
    if missing:
        raise ValueError(f"no strategy for chief seat(s) {', '.join(missing)}")
    extra = sorted(set(strategies) - chiefs)
    if extra:
        raise ValueError(f"{', '.join(extra)}: not a chief seat of {scenario.slug}")
    unknown = sorted({s for s in strategies.values() if s not in CHIEF_STRATEGIES})
    if unknown:
        raise ValueError(
            f"unknown chief strategy {', '.join(unknown)} (known: {', '.join(CHIEF_STRATEGIES)})"
        )


# --------------------------------------------------------------------------------------------
# Tournaments


@dataclass(frozen=True)
class Tournament:
    """Many bot games of one scenario, and their summary."""

    brain: BotBrain
    seed: int
    settings: GameDefaults
    move_seconds: float
    pool: tuple[str, ...]
    pinned: Mapping[str, str]
    games: tuple[GameRecord, ...]

    @property
    def scenario(self) -> Scenario:
        return self.brain.scenario

    @property
    def refusals(self) -> tuple[Refusal, ...]:
        return tuple(r for game in self.games for r in game.refusals)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready report: the same tournament gives the same dict, key order included
        (docs/bots.md describes every key)."""
        scenario = self.scenario
        rounds = [o for game in self.games for o in game.outcomes]
        counts = {label: 0 for label in LABELS}
        for outcome in rounds:
            counts[outcome.label] += 1
        return {
            "scenario": scenario.slug,
            "title": scenario.title,
            "games": len(self.games),
            "seed": self.seed,
            "settings": {
                "rounds": self.settings.rounds,
                "attempts": self.settings.attempts,
                "compliance": self.settings.compliance,
                "move_seconds": self.move_seconds,
            },
            "strategy_pool": list(self.pool),
            "pinned": dict(self.pinned),
            "rule_violations": len(self.refusals),
            "violations": [r.to_dict() for r in self.refusals],
            "rounds_played": len(rounds),
            "outcomes": counts,
            "seats": [self._seat_summary(member) for member in scenario.members],
            "chief_strategies": self._strategy_summary(),
            "mean_commands": _mean([g.commands for g in self.games]),
            "deadlines_fired": sum(g.deadlines_fired for g in self.games),
            "phases_advanced": sum(g.phases_advanced for g in self.games),
            "per_game": [self._game_summary(game) for game in self.games],
        }

    def _seat_summary(self, member: Member) -> dict[str, Any]:
        scenario = self.scenario
        country = scenario.country(member.country)
        role_name = "chief" if member.role == "chief" else member.name
        scores = [
            (g.scores.chiefs if member.role == "chief" else g.scores.members)[member.key]
            for g in self.games
        ]
        return {
            "seat": member.key,
            "country": country.key,
            "role": member.role,
            "label": f"{country.name} / {role_name}",
            "mean_score": _mean(scores),
        }

    def _strategy_summary(self) -> dict[str, Any]:
        scenario = self.scenario
        result: dict[str, Any] = {}
        for strategy in CHIEF_STRATEGIES:
            scores: list[float] = []
            rounds = agreements = 0
            shares: list[float] = []
            for game in self.games:
                for chief in scenario.chiefs:
                    if game.strategies.get(chief.key) != strategy:
                        continue
                    scores.append(game.scores.chiefs[chief.key])
                    for record in game.state.rounds:
                        rounds += 1
                        if record.result not in IN_FORCE_RESULTS or record.values is None:
                            continue
                        agreements += 1
                        share = share_of_gains(scenario, record.values, record.transfers)
                        if share is not None:
                            shares.append(share[chief.country])
            if not scores:
                continue
            result[strategy] = {
                "plays": len(scores),
                "mean_score": _mean(scores),
                "agreement_rate": _round(agreements / rounds) if rounds else None,
                "mean_share_of_gains": _mean(shares),
            }
        return result

    def _game_summary(self, game: GameRecord) -> dict[str, Any]:
        last = game.state.rounds[-1] if game.state.rounds else None
        agreement = (
            self.scenario.point_dict(last.values)
            if last is not None and last.result in IN_FORCE_RESULTS and last.values is not None
            else None
        )
        return {
            "game": game.index,
            "seed": game.seed,
            "strategies": dict(game.strategies),
            "outcomes": [o.label for o in game.outcomes],
            "agreement": agreement,
            "chief_scores": {k: _round(v) for k, v in game.scores.chiefs.items()},
            "commands": game.commands,
            "rule_violations": len(game.refusals),
        }


def play_tournament(
    brain: BotBrain,
    games: int,
    seed: int,
    *,
    pinned: Mapping[str, str] | None = None,
    pool: Sequence[str] | None = None,
    settings: GameDefaults | None = None,
    move_seconds: float = DEFAULT_MOVE_SECONDS,
    strict: bool = False,
) -> Tournament:
    """Play ``games`` bot games of ``brain.scenario``, deterministic for ``seed``.

    Chiefs in ``pinned`` (seat -> strategy) always play that strategy; every other chief's
    strategy is drawn for each game from ``pool`` (default: every chief strategy). Raises
    ``ValueError`` for a negative number of games, an empty or unknown pool, a pinned seat
    that is not a chief or an unknown strategy; ``BotRuleViolation`` with ``strict``, and
    ``RunawayBotsError`` (see ``play_game``).
    """
    scenario = brain.scenario
    if games < 0:
        raise ValueError(f"the number of games must be >= 0, not {games}")
    chosen_pool = tuple(pool) if pool is not None else tuple(CHIEF_STRATEGIES)
    if not chosen_pool:
        raise ValueError("the strategy pool is empty")
    unknown = [s for s in chosen_pool if s not in CHIEF_STRATEGIES]
    if unknown:
        raise ValueError(f"unknown chief strategy {', '.join(unknown)}")
    fixed = dict(pinned or {})
    chiefs = {chief.key for chief in scenario.chiefs}
    extra = sorted(set(fixed) - chiefs)
    if extra:
        raise ValueError(f"{', '.join(extra)}: not a chief seat of {scenario.slug}")
    chosen_settings = settings if settings is not None else scenario.game
    master = random.Random(seed)
    records: list[GameRecord] = []
    for index in range(games):
        game_seed = master.randrange(GAME_SEED_BOUND)
        rng = random.Random(game_seed)
        strategies = {
            chief.key: fixed[chief.key] if chief.key in fixed else rng.choice(chosen_pool)
            for chief in scenario.chiefs
        }
        records.append(
            play_game(
                brain,
                strategies,
                rng=rng,
                settings=chosen_settings,
                move_seconds=move_seconds,
                index=index,
                seed=game_seed,
                strict=strict,
            )
        )
    return Tournament(
        brain=brain,
        seed=seed,
        settings=chosen_settings,
        move_seconds=move_seconds,
        pool=chosen_pool,
        pinned=fixed,
        games=tuple(records),
    )


def _round(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def _mean(values: Sequence[float]) -> float | None:
    """The mean rounded to 6 decimals; None for no values or a non-finite mean."""
    if not values:
        return None
    return _round(math.fsum(values) / len(values))


def _plain(value: Any) -> Any:
    """Tuples as lists, for JSON."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
