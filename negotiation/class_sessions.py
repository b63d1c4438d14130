"""Class sessions: one join code for a class, its parallel games, its roster and seating.

The instructor creates a session (a scenario, a number of games, an assignment rule and maybe a
roster); students join with the session's code and a name and are seated by the rule: at once
at random, from the roster, or by the instructor. Everything that seats a player or moves a
game goes through ``services`` like any other command.
"""

from __future__ import annotations

import csv
import io
import math
import random
import re
import secrets
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from accounts.models import Player
from negotiation import services
from negotiation.engine import commands as c
from negotiation.engine.scenario import (
    GameDefaults,
    ScenarioError,
    load_scenario_text,
    scenario_from_dict,
)
from negotiation.engine.scenario import (
    Scenario as EngineScenario,
)
from negotiation.engine.state import LEVEL2, GameState
from negotiation.engine.winset import Analysis
from negotiation.models import ClassSession, Game, GameEvent, Scenario, Seat, SessionMember

#: Largest class a session seats, and most parallel games.
MAX_STUDENTS = 500
MAX_GAMES = 60
#: Largest roster and scenario file accepted (bytes).
MAX_ROSTER_BYTES = 64 * 1024
MAX_SCENARIO_BYTES = 256 * 1024
#: A seat whose holder has been away this long raises an alert on the dashboard.
DISCONNECT_ALERT_SECONDS = 20


class SessionError(ValueError):
    """A session could not be created or changed as asked; ``problems`` says why."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


# --------------------------------------------------------------------------------------------
# Scenarios an instructor may use


def scenarios_for(user: Any) -> Any:
    """The scenarios ``user`` may play: built-in, their own, and those others shared."""
    if user is not None and getattr(user, "is_authenticated", False):
        return Scenario.objects.filter(Q(builtin=True) | Q(owner=user) | Q(shared=True))
    return Scenario.objects.filter(Q(builtin=True) | Q(shared=True))


def store_uploaded_scenario(*, owner: Any, data: bytes, shared: bool = False) -> Scenario:
    """Validate an uploaded scenario file and store it as ``owner``'s.

    Raises ``SessionError`` listing every problem by its path when the file is refused.
    """
    if len(data) > MAX_SCENARIO_BYTES:
        raise SessionError([f"file: is larger than {MAX_SCENARIO_BYTES // 1024} KiB"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SessionError(["file: is not UTF-8 text"]) from None
    try:
        parsed = load_scenario_text(text, source="file")
    except ScenarioError as error:
        raise SessionError([str(p) for p in error.problems]) from None
    except RecursionError:
        raise SessionError(["file: is nested too deeply"]) from None
    slug = f"{parsed.slug}-{secrets.token_hex(3)}"[:64]
    return Scenario.objects.create(
        slug=slug,
        title=parsed.title,
        summary=parsed.summary,
        definition=parsed.to_dict(),
        owner=owner,
        shared=shared,
    )


# --------------------------------------------------------------------------------------------
# Rosters


@dataclass(frozen=True, slots=True)
class RosterLine:
    """A student of an uploaded roster, with the seat given to them (``game`` 1-based)."""

    name: str
    game: int | None = None
    seat: str = ""


def clean_name(raw: str) -> str:
    """A display name: printable, single-spaced, at most 40 characters; '' when nothing is left."""
    text = "".join(ch for ch in raw if unicodedata.category(ch)[0] != "C")
    return re.sub(r"\s+", " ", text).strip()[:40]


def _name_key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


def parse_roster(data: bytes) -> list[RosterLine]:
    """Read a roster CSV: a header with ``name`` and optionally ``game`` and ``seat``.

    Raises ``SessionError`` naming the line of every problem.
    """
    if len(data) > MAX_ROSTER_BYTES:
        raise SessionError([f"roster: is larger than {MAX_ROSTER_BYTES // 1024} KiB"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SessionError(["roster: is not UTF-8 text"]) from None
    reader = csv.reader(io.StringIO(text))
    try:
        rows = list(reader)
    except csv.Error as error:
        raise SessionError([f"roster: is not CSV ({error})"]) from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise SessionError(["roster: is empty; the first line names the columns (name,game,seat)"])
    header = [cell.strip().casefold() for cell in rows[0]]
    if "name" not in header:
        raise SessionError(["roster line 1: needs a 'name' column (and optionally game, seat)"])
    name_at = header.index("name")
    game_at = header.index("game") if "game" in header else None
    seat_at = header.index("seat") if "seat" in header else None
    problems: list[str] = []
    lines: list[RosterLine] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):

        def cell(at: int | None, row: list[str] = row) -> str:
            return row[at].strip() if at is not None and at < len(row) else ""

        name = clean_name(cell(name_at))
        if not name:
            problems.append(f"roster line {number}: the name is empty")
            continue
        if _name_key(name) in seen:
            problems.append(
                f"roster line {number}: {name!r} is also on line {seen[_name_key(name)]}"
            )
            continue
        game_text, seat = cell(game_at), cell(seat_at)
        game: int | None = None
        if game_text:
            if not game_text.isdigit() or not 1 <= int(game_text) <= MAX_GAMES:
                problems.append(
                    f"roster line {number}: game must be a number from 1 to {MAX_GAMES}"
                )
                continue
            game = int(game_text)
        if bool(game) != bool(seat):
            problems.append(f"roster line {number}: give both game and seat, or neither")
            continue
        seen[_name_key(name)] = number
        lines.append(RosterLine(name, game, seat))
    if len(lines) > MAX_STUDENTS:
        problems.append(f"roster: at most {MAX_STUDENTS} students")
    if problems:
        raise SessionError(problems)
    return lines


# --------------------------------------------------------------------------------------------
# Creating a session


def new_session_code() -> str:
    """A join code that no session and no game uses."""
    while True:
        code = "".join(secrets.choice(services.CODE_ALPHABET) for _ in range(services.CODE_LENGTH))
        taken = (
            ClassSession.objects.filter(code=code).exists()
            or Game.objects.filter(code=code).exists()
        )
        if not taken:
            return code


def games_needed(students: int, seats_per_game: int) -> int:
    """Parallel games for a class: every student seated, as few bots as possible."""
    return max(1, min(MAX_GAMES, math.ceil(students / max(1, seats_per_game))))


def create_session(
    *,
    owner: Any,
    title: str,
    scenario: Scenario,
    games: int | None,
    students: int | None = None,
    assignment: str = ClassSession.Assignment.RANDOM,
    roster: Sequence[RosterLine] = (),
    settings: GameDefaults | None = None,
) -> ClassSession:
    """A session of ``scenario`` with its games in the lobby and its roster.

    Without ``games`` the number is derived from the roster's size, else from ``students``.
    Raises ``SessionError`` for a roster seat that does not exist or is given twice.
    """
    engine_scenario = scenario_from_dict(scenario.definition)
    per_game = len(engine_scenario.members)
    if games is None:
        games = games_needed(len(roster) or students or per_game, per_game)
    if not 1 <= games <= MAX_GAMES:
        raise SessionError([f"games: choose 1 to {MAX_GAMES} games"])
    _check_roster_seats(roster, engine_scenario, games)
    with transaction.atomic():
        session = ClassSession.objects.create(
            code=new_session_code(),
            title=title.strip() or scenario.title,
            owner=owner,
            scenario=scenario,
            assignment=assignment,
        )
        created = [
            services.create_game(scenario=scenario, settings=settings, created_by=owner)
            for _ in range(games)
        ]
        Game.objects.filter(pk__in=[g.pk for g in created]).update(session=session)
        SessionMember.objects.bulk_create(
            [
                SessionMember(
                    session=session,
                    name=line.name,
                    game=created[line.game - 1] if line.game else None,
                    seat_key=line.seat,
                )
                for line in roster
            ]
        )
    return session


def _check_roster_seats(roster: Sequence[RosterLine], scenario: EngineScenario, games: int) -> None:
    keys = {m.key for m in scenario.members}
    problems: list[str] = []
    taken: dict[tuple[int, str], str] = {}
    for line in roster:
        if line.game is None:
            continue
        if line.game > games:
            problems.append(f"roster: {line.name} is given game {line.game} of only {games}")
        elif line.seat not in keys:
            problems.append(
                f"roster: {line.name} is given seat {line.seat!r}; the seats are "
                + ", ".join(sorted(keys))
            )
        elif (line.game, line.seat) in taken:
            problems.append(
                f"roster: {line.name} and {taken[(line.game, line.seat)]} are both given "
                f"game {line.game}, seat {line.seat}"
            )
        else:
            taken[(line.game, line.seat)] = line.name
    if problems:
        raise SessionError(problems)


# --------------------------------------------------------------------------------------------
# Students joining and being seated


def session_by_code(code: str) -> ClassSession | None:
    return ClassSession.objects.filter(code=code.strip().upper()).first()


def session_games(session: ClassSession) -> list[Game]:
    return list(session.games.order_by("pk"))


def join(*, session: ClassSession, player: Player) -> SessionMember:
    """Enrol ``player`` (who gave their name) in the session and seat them if the rule says so.

    A roster line with the same name (ignoring case) is claimed; a player who joined before
    gets their membership back. Never raises for a seat that cannot be had: the member then
    waits, unseated, for the instructor.
    """
    with transaction.atomic():
        member = SessionMember.objects.filter(session=session, player=player).first()
        if member is None:
            wanted = _name_key(player.display_name)
            unclaimed = SessionMember.objects.select_for_update().filter(
                session=session, player__isnull=True
            )
            member = next((m for m in unclaimed if _name_key(m.name) == wanted), None)
            if member is None:
                member = SessionMember(session=session, name=player.display_name)
            member.player = player
            member.joined = timezone.now()
            member.save()
    if _seat_of(member) is None:
        seat_member(member)
    return member


def _seat_of(member: SessionMember) -> Seat | None:
    """The seat the member's player holds in one of the session's games, if any."""
    if member.player_id is None:
        return None
    return (
        Seat.objects.filter(game__session_id=member.session_id, player_id=member.player_id)
        .select_related("game")
        .first()
    )


def seat_member(member: SessionMember) -> services.Outcome | None:
    """Seat a joined member by the session's rule: their assigned seat, or (random rule) a
    random free seat of the least-filled game. None when there is nothing to do."""
    if member.player is None:
        return None
    if member.game_id is not None and member.seat_key:
        game = Game.objects.get(pk=member.game_id)
        return services.take_seat(game=game, player=member.player, seat_key=member.seat_key)
    if member.session.assignment != ClassSession.Assignment.RANDOM:
        return None
    pick = _random_free_seat(member.session)
    if pick is None:
        return None
    game, seat_key = pick
    outcome = services.take_seat(game=game, player=member.player, seat_key=seat_key)
    if outcome.accepted:
        SessionMember.objects.filter(pk=member.pk).update(game=game, seat_key=seat_key)
    return outcome


def _random_free_seat(session: ClassSession) -> tuple[Game, str] | None:
    """A free seat in one of the games with the fewest students, chiefs first: every game
    gets its share of the class, and bots take the constituents' seats before the chiefs'."""
    free = _free_seats(session)
    if not free:
        return None
    most = max(len(seats) for seats in free.values())
    game = random.choice([g for g, seats in free.items() if len(seats) == most])
    chiefs = [seat.key for seat in free[game] if seat.role == "chief"]
    return game, random.choice(chiefs or [seat.key for seat in free[game]])


def _free_seats(session: ClassSession) -> dict[Game, list[Seat]]:
    """Free seats per game (no player, no bot, not promised to a roster line)."""
    promised = set(
        SessionMember.objects.filter(session=session, game__isnull=False)
        .exclude(seat_key="")
        .values_list("game_id", "seat_key")
    )
    free: dict[Game, list[Seat]] = {}
    for game in session_games(session):
        if game.status == Game.Status.ENDED:
            continue
        seats = [
            seat
            for seat in game.seats.order_by("order")
            if not seat.occupied and (game.pk, seat.key) not in promised
        ]
        if seats:
            free[game] = seats
    return free


def assign(*, member: SessionMember, game: Game, seat_key: str) -> services.Outcome:
    """The instructor gives ``member`` the seat ``seat_key`` of ``game`` (a game of the same
    session): a seated student moves, an unseated one sits down, one who has not joined yet
    finds the seat kept for them. Never raises for a refusal."""
    if game.session_id != member.session_id:
        return services.Outcome(
            False, game.last_seq, "other_session", "That game belongs to another session."
        )
    if not Seat.objects.filter(game=game, key=seat_key).exists():
        return services.Outcome(False, game.last_seq, "unknown_seat", "There is no such seat.")
    if member.player is None:
        keeper = SessionMember.objects.filter(game=game, seat_key=seat_key).exclude(pk=member.pk)
        if keeper.exists():
            return services.Outcome(
                False, game.last_seq, "seat_taken", "That seat is kept for another student."
            )
        SessionMember.objects.filter(pk=member.pk).update(game=game, seat_key=seat_key)
        return services.Outcome(True, game.last_seq)
    if _seat_of(member) is not None:
        outcome = services.move_player(player=member.player, to_game=game, to_seat_key=seat_key)
    else:
        outcome = services.take_seat(game=game, player=member.player, seat_key=seat_key)
    if outcome.accepted:
        SessionMember.objects.filter(pk=member.pk).update(game=game, seat_key=seat_key)
    return outcome


def assign_rest_at_random(session: ClassSession) -> int:
    """Seat every joined, unseated member at random; the number seated."""
    seated = 0
    members = list(
        SessionMember.objects.filter(session=session, player__isnull=False).select_related(
            "player", "session"
        )
    )
    random.shuffle(members)
    for member in members:
        if _seat_of(member) is not None:
            continue
        member.game = None
        member.seat_key = ""
        pick = _random_free_seat(session)
        if pick is None:
            break
        outcome = assign(member=member, game=pick[0], seat_key=pick[1])
        seated += int(outcome.accepted)
    return seated


def fill_with_bots(session: ClassSession) -> list[tuple[Game, services.Outcome]]:
    """A bot takes every empty seat of the session's games (not seats kept for a roster line
    whose student has not come: those too, so that every game can be played)."""
    outcomes = []
    for game in session_games(session):
        if game.status == Game.Status.ENDED:
            continue
        for seat in game.seats.filter(player__isnull=True, bot=False).order_by("order"):
            outcomes.append((game, services.hand_to_bot(game=game, seat_key=seat.key)))
    return outcomes


def instructor_issuer(user: Any) -> str:
    return f"instructor:user-{user.pk}"


def control(
    *, game: Game, user: Any, command: c.Command, client_id: str | None
) -> services.Outcome:
    """An instructor's command to one game of their session, through ``services.submit``."""
    return services.submit(
        game_id=game.pk, command=command, issuer=instructor_issuer(user), client_id=client_id
    )


def mark_started(session: ClassSession) -> None:
    if session.started is None:
        ClassSession.objects.filter(pk=session.pk, started__isnull=True).update(
            started=timezone.now()
        )


# --------------------------------------------------------------------------------------------
# What the dashboard and the waiting room show


@lru_cache(maxsize=32)
def _analysis(definition_key: str, scenario_pk: int) -> Analysis:
    scenario = Scenario.objects.get(pk=scenario_pk)
    return Analysis(scenario_from_dict(scenario.definition))


def analysis_of(scenario: Scenario) -> Analysis:
    """The scenario's win-sets and zone, computed once per process and scenario version."""
    return _analysis(scenario.updated.isoformat(), scenario.pk)


def game_summary(game: Game, *, now: float | None = None) -> dict[str, Any]:
    """One row of the dashboard: where the game stands, its newest proposal and whether it lies
    in the zone of agreement, the votes cast, who is connected, and its alerts."""
    state = services.load_state(game.pk)
    scenario = state.scenario
    moment = time.time() if now is None else now
    analysis = analysis_of(game.scenario)
    last_event = GameEvent.objects.filter(game=game).aggregate(at=Max("created"))["at"]
    last_event_at = last_event.timestamp() if last_event is not None else moment
    proposal = _latest_proposal(state)
    latest = None
    if proposal is not None:
        latest = {
            "id": proposal.proposal_id,
            "by": scenario.member(proposal.by).name,
            "country": scenario.country(scenario.member(proposal.by).country).name,
            "text": _describe_point(scenario, proposal.values),
            "in_zone": bool(analysis.contains(analysis.zone, proposal.values)),
        }
    seats = []
    alerts: list[dict[str, str]] = []
    rows = {s.key: s for s in game.seats.select_related("player", "stand_in_for")}
    for member in scenario.members:
        row = rows.get(member.key)
        holder = state.seats.get(member.key)
        connected = bool(row is not None and row.player_id is not None and row.away_since is None)
        away = (
            moment - row.away_since.timestamp()
            if row is not None and row.player_id is not None and row.away_since is not None
            else None
        )
        seat = {
            "key": member.key,
            "role": member.role,
            "name": member.name,
            "country": scenario.country(member.country).name,
            "holder": holder.name if holder is not None else "",
            "bot": bool(holder is not None and holder.bot),
            "occupied": holder is not None,
            "connected": connected or bool(holder is not None and holder.bot),
            "away_seconds": None if away is None else round(away),
            "stand_in_for": (
                row.stand_in_for.display_name
                if row is not None and row.stand_in_for is not None
                else ""
            ),
        }
        seats.append(seat)
        if away is not None and away >= DISCONNECT_ALERT_SECONDS and not state.ended:
            alerts.append(
                {
                    "kind": "disconnected",
                    "text": f"{seat['holder'] or member.name} ({member.name}, "
                    f"{seat['country']}) has been disconnected for {round(away)} s",
                }
            )
    stall_seconds = (game.session.stall_minutes if game.session else 3) * 60
    active = state.phase not in ("lobby", "ended") and not state.paused
    if active and moment - last_event_at >= stall_seconds:
        alerts.append(
            {
                "kind": "stalled",
                "text": f"No action for {round((moment - last_event_at) / 60)} minutes",
            }
        )
    return {
        "code": game.code,
        "status": game.status,
        "phase": state.phase,
        "round": state.round,
        "rounds": state.settings.rounds,
        "attempt": state.attempt,
        "paused": state.paused,
        "deadline": None if state.paused else state.deadline,
        "remaining": state.paused_remaining if state.paused else None,
        "seq": state.seq,
        "last_event_at": last_event_at,
        "stall_seconds": stall_seconds,
        "latest_proposal": latest,
        "tentative": (
            _describe_point(scenario, state.tentative.values) if state.tentative else None
        ),
        "votes": _votes(state) if state.phase == LEVEL2 else None,
        "seats": seats,
        "alerts": alerts,
        "results": [r.result for r in state.rounds],
    }


def _latest_proposal(state: GameState) -> Any:
    live = [p for p in state.round_proposals if p.proposal_id not in state.withdrawn]
    if state.tentative is not None:
        return state.tentative
    return live[-1] if live else None


def _describe_point(scenario: EngineScenario, values: Iterable[float]) -> str:
    parts = []
    for issue, value in zip(scenario.issues, values, strict=True):
        number = int(value) if float(value).is_integer() else value
        unit = f" {issue.unit}" if issue.unit else ""
        parts.append(f"{issue.label} {number}{unit}")
    return ", ".join(parts)


def _votes(state: GameState) -> dict[str, Any]:
    voters = [m for m in state.scenario.members if m.role != "chief"]
    per_country: dict[str, dict[str, int]] = {}
    for member in voters:
        name = state.scenario.country(member.country).name
        entry = per_country.setdefault(name, {"cast": 0, "voters": 0})
        entry["voters"] += 1
        entry["cast"] += int(member.key in state.ballots)
    return {
        "cast": sum(1 for m in voters if m.key in state.ballots),
        "voters": len(voters),
        "countries": per_country,
    }


def roster_rows(session: ClassSession) -> list[dict[str, Any]]:
    """Every member of the session: name, joined or not, and the seat they hold or are kept."""
    games = {g.pk: (number, g) for number, g in enumerate(session_games(session), start=1)}
    held = {
        s.player_id: s for s in Seat.objects.filter(game__session=session, player__isnull=False)
    }
    rows = []
    for member in SessionMember.objects.filter(session=session).order_by("name", "pk"):
        seat = held.get(member.player_id) if member.player_id else None
        game_pk = seat.game_id if seat is not None else member.game_id
        number = games[game_pk][0] if game_pk in games else None
        rows.append(
            {
                "id": member.pk,
                "name": member.name,
                "joined": member.player_id is not None,
                "seated": seat is not None,
                "game": number,
                "game_code": games[game_pk][1].code if game_pk in games else "",
                "seat": seat.key if seat is not None else member.seat_key,
            }
        )
    return rows


def session_summary(session: ClassSession) -> dict[str, Any]:
    """Everything the dashboard shows, as JSON-ready data."""
    now = time.time()
    return {
        "code": session.code,
        "title": session.title,
        "started": session.started.timestamp() if session.started else None,
        "now": now,
        "games": [game_summary(g, now=now) for g in session_games(session)],
        "roster": roster_rows(session),
    }
