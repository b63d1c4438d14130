"""The debrief of a class session: what happened across its games, for the class to discuss.

DESIGN §1 lists what the debrief shows for each idea of the theory; across a session's games
this page shows:

- each round's outcome label (harmony, cooperation, discord, involuntary or voluntary
  defection) with its reason, and how often each label occurred;
- each country's share of the joint gains of the agreement in force against the size of its
  win-set (Schelling's conjecture: the more constrained negotiator takes more), as a scatter
  chart, a table and a one-line reading with the correlation and its n;
- specific and diffuse reciprocity of each pair of chiefs in each game;
- the time from each game's start to its first tentative agreement and to its first entry into
  force;
- questions for the class, naming the games where something happened.

Every analytic comes from ``engine.analytics.debrief`` of each game's stored log
(``services.log_of``), with one win-set ``Analysis`` per scenario: nothing here recomputes a
label, a share, a win-set or a reciprocity index. Events carry no clock of their own, so the
times are those at which the events were stored (``GameEvent.created``, kept by export and
import). The whole debrief is computed once per state of the session's games and kept in memory
(``DEBRIEF_CACHE_SIZE`` sessions per process), so the page and its charts share it.

Only the session's owner sees these pages (others get 404, like the dashboard; an anonymous
visitor is sent to sign in):

- ``/sessions/<code>/debrief/``: the page;
- ``/sessions/<code>/debrief/chart/<name>.svg`` (``share-vs-winset``, ``agreement-times``),
  with ``?download=1`` to save it as a file;
- ``/sessions/<code>/debrief.json``: the numbers of the page.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_GET

from negotiation import charts, class_sessions, services
from negotiation.engine import analytics
from negotiation.engine import events as e
from negotiation.engine.analytics import Debrief
from negotiation.engine.scenario import Country, Scenario, scenario_from_dict
from negotiation.engine.winset import Analysis
from negotiation.models import ClassSession, Game, GameEvent

#: Sessions whose debrief is kept in memory (per process).
DEBRIEF_CACHE_SIZE = 8
#: Below this many agreements in force the correlation is shown but not read.
MIN_AGREEMENTS_TO_READ = 3
#: Below this many points a reading comes with a warning that it is no evidence.
FEW_POINTS = 10
#: A correlation this close to 0 reads as "no clear relation".
WEAK_CORRELATION = 0.1
#: Games a question names by name before it counts the rest.
NAMED_GAMES = 2

CHART_NAMES = ("share-vs-winset", "agreement-times")

#: Plain names of the outcome labels (as on a game's results page).
LABEL_NAMES = {
    analytics.HARMONY: "Harmony",
    analytics.COOPERATION: "Cooperation",
    analytics.DISCORD: "Discord",
    analytics.INVOLUNTARY: "Involuntary defection",
    analytics.VOLUNTARY: "Voluntary defection",
}


# --------------------------------------------------------------------------------------------
# One game


@dataclass(frozen=True, slots=True)
class FailedRatification:
    """A tentative agreement a country did not ratify, and the members who voted against it
    (a missing ballot counts as no) or vetoed it, by name."""

    round: int
    country: str
    against: tuple[str, ...]
    vetoed_by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GameDebrief:
    """One game of the session: its analytics (``engine.analytics.debrief``) and its times,
    in seconds from its start (None: not reached, or the game has not started)."""

    number: int
    code: str
    status: str
    phase: str
    scenario: Scenario
    analytics: Debrief
    zone_points: int
    to_tentative: float | None
    to_in_force: float | None
    tentative_agreements: int
    failed: tuple[FailedRatification, ...]
    offers: int
    offers_in_zone: int
    transfers: Mapping[str, int]

    @property
    def label(self) -> str:
        return f"Game {self.number} ({self.code})"

    @property
    def started(self) -> bool:
        return self.phase != "lobby"


def _first_seq(log: Sequence[e.Event], kind: type[e.Event]) -> int | None:
    return next((seq for seq, event in enumerate(log, 1) if isinstance(event, kind)), None)


def _failed_ratifications(scenario: Scenario, log: Iterable[e.Event]) -> list[FailedRatification]:
    """Every involuntary defection of the log with the ballots of the count that caused it."""
    failures: list[FailedRatification] = []
    round_number = 0
    counted: e.BallotsCounted | None = None
    for event in log:
        if isinstance(event, e.PhaseChanged):
            round_number = event.round
        elif isinstance(event, e.BallotsCounted):
            counted = event
        elif isinstance(event, e.InvoluntaryDefection):
            for key in event.countries:
                country = scenario.country(key)
                ballots = counted.ballots if counted is not None else {}
                result = next(
                    (r for r in (counted.results if counted else ()) if r.country == key), None
                )
                failures.append(
                    FailedRatification(
                        round=round_number,
                        country=country.name,
                        against=tuple(
                            m.name for m in country.constituents if ballots.get(m.key) is not True
                        ),
                        vetoed_by=tuple(
                            scenario.member(k).name for k in (result.vetoed_by if result else ())
                        ),
                    )
                )
    return failures


def game_debrief(game: Game, number: int, analyses: _Analyses) -> GameDebrief:
    """The debrief of one game from its stored log. Raises ``GameNotFoundError`` for a game
    without a log and ``ValueError`` for a log the analytics cannot read."""
    log = services.log_of(game.pk)
    if not log or not isinstance(log[0], e.GameCreated):
        raise services.GameNotFoundError(f"game {game.pk} has no log")
    analysis = analyses.of(scenario_from_dict(log[0].scenario), game)
    summary = analytics.debrief(log, analysis)
    scenario = analysis.scenario
    marks = {
        "start": _first_seq(log, e.PhaseChanged),
        "tentative": _first_seq(log, e.TentativeAgreement),
        "in_force": _first_seq(log, e.AgreementInForce),
    }
    wanted = [seq for seq in marks.values() if seq is not None]
    times = {
        seq: created.timestamp()
        for seq, created in GameEvent.objects.filter(game=game, seq__in=wanted).values_list(
            "seq", "created"
        )
    }

    def since_start(mark: str) -> float | None:
        start, seq = marks["start"], marks[mark]
        if start is None or seq is None or start not in times or seq not in times:
            return None
        return max(0.0, times[seq] - times[start])

    chiefs = {c.chief.key for c in scenario.countries}
    offers = [ev for ev in log if isinstance(ev, e.ProposalMade) and ev.by in chiefs]
    in_force = [ev for ev in log if isinstance(ev, e.AgreementInForce)]
    return GameDebrief(
        number=number,
        code=game.code,
        status=game.status,
        phase=game.phase,
        scenario=scenario,
        analytics=summary,
        zone_points=int(analysis.zone.sum()),
        to_tentative=since_start("tentative"),
        to_in_force=since_start("in_force"),
        tentative_agreements=sum(isinstance(ev, e.TentativeAgreement) for ev in log),
        failed=tuple(_failed_ratifications(scenario, log)),
        offers=len(offers),
        offers_in_zone=sum(analysis.contains(analysis.zone, ev.values) for ev in offers),
        transfers=dict(in_force[-1].transfers) if in_force else {},
    )


class _Analyses:
    """One win-set ``Analysis`` per scenario: the session's stored scenario's is the one the
    dashboard keeps (``class_sessions.analysis_of``); a game whose log holds another version
    of the scenario gets its own, shared with every game of that version."""

    def __init__(self) -> None:
        self._known: list[Analysis] = []

    def of(self, scenario: Scenario, game: Game) -> Analysis:
        for analysis in self._known:
            if analysis.scenario == scenario:
                return analysis
        stored = class_sessions.analysis_of(game.scenario)
        analysis = stored if stored.scenario == scenario else Analysis(scenario)
        self._known.append(analysis)
        return analysis


# --------------------------------------------------------------------------------------------
# Across the session


@dataclass(frozen=True, slots=True)
class OutcomeCount:
    label: str
    rounds: int
    games: int

    @property
    def name(self) -> str:
        return LABEL_NAMES[self.label]


@dataclass(frozen=True, slots=True)
class Schelling:
    """The share of the joint gains against win-set size across the session's agreements:
    Pearson's ``r`` over the points (None when undefined), the least-squares ``trend`` (slope,
    intercept) drawn when the reading is made, and in how many of the ``comparable``
    agreements (one country with the strictly smallest win-set and one with the strictly
    largest share) the smallest win-set took the largest share."""

    points: tuple[charts.SharePoint, ...]
    agreements: int
    r: float | None
    trend: tuple[float, float] | None
    smallest_took_most: int
    comparable: int
    reading: str


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    n = len(xs)
    if n < 2:
        return None
    mean_x, mean_y = math.fsum(xs) / n, math.fsum(ys) / n
    sxx = math.fsum((x - mean_x) ** 2 for x in xs)
    syy = math.fsum((y - mean_y) ** 2 for y in ys)
    if sxx <= 1e-15 or syy <= 1e-15:
        return None
    sxy = math.fsum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def _least_squares(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Slope and intercept; the caller makes sure the xs vary."""
    n = len(xs)
    mean_x, mean_y = math.fsum(xs) / n, math.fsum(ys) / n
    sxx = math.fsum((x - mean_x) ** 2 for x in xs)
    slope = math.fsum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, mean_y - slope * mean_x


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def schelling(games: Sequence[GameDebrief]) -> Schelling:
    """The points and their reading; see ``Schelling``."""
    points: list[charts.SharePoint] = []
    agreements = 0
    smallest_took_most = comparable = 0
    for game in games:
        shares = game.analytics.share_of_gains
        if not shares:
            continue
        agreements += 1
        sizes = game.analytics.winset_sizes
        grid = game.scenario.grid_size
        for index, country in enumerate(game.scenario.countries):
            points.append(
                charts.SharePoint(
                    game=game.label,
                    country=country.key,
                    country_name=country.name,
                    style=index,
                    winset=sizes[country.key] / grid,
                    winset_points=sizes[country.key],
                    share=shares[country.key],
                )
            )
        smallest = min(sizes.values())
        largest = max(shares.values())
        small = [k for k, v in sizes.items() if v == smallest]
        large = [k for k, v in shares.items() if v == largest]
        if len(small) == 1 and len(large) == 1:
            comparable += 1
            smallest_took_most += small == large
    xs = [p.winset for p in points]
    ys = [p.share for p in points]
    r = _pearson(xs, ys)
    n = len(points)
    counted = f"n = {_plural(n, 'point')} from {_plural(agreements, 'agreement')}"
    trend = None
    if not agreements:
        reading = (
            "No game has an agreement in force yet, so there are no shares of the gains to compare."
        )
    elif len(set(xs)) < 2:
        reading = (
            f"Every country's win-set has the same size here ({counted}), so these games "
            "cannot speak to Schelling's conjecture."
        )
    elif r is None:
        reading = (
            f"Every country took the same share of the gains ({counted}): no relation to read."
        )
    elif agreements < MIN_AGREEMENTS_TO_READ:
        reading = (
            f"r = {r:+.2f} ({counted}): too few agreements to read anything into its sign; "
            f"wait for at least {MIN_AGREEMENTS_TO_READ}."
        )
    else:
        trend = _least_squares(xs, ys)
        if r <= -WEAK_CORRELATION:
            meaning = (
                "countries with smaller win-sets took larger shares, as Schelling's conjecture "
                "predicts"
            )
        elif r >= WEAK_CORRELATION:
            meaning = "countries with larger win-sets took larger shares, against the conjecture"
        else:
            meaning = "no clear relation between win-set size and share"
        reading = f"Correlation between win-set size and share of the gains: r = {r:+.2f} ({counted}): {meaning}."
        if n < FEW_POINTS:
            reading += " With so few points, this is a question for the class, not evidence."
    if comparable:
        reading += (
            f" In {smallest_took_most} of {_plural(comparable, 'agreement')} the country with "
            "the smallest win-set took the largest share."
        )
    return Schelling(
        points=tuple(points),
        agreements=agreements,
        r=r,
        trend=trend,
        smallest_took_most=smallest_took_most,
        comparable=comparable,
        reading=reading,
    )


def outcome_counts(games: Iterable[GameDebrief]) -> list[OutcomeCount]:
    """How many rounds got each label, and in how many games, in ``analytics.LABELS`` order."""
    rounds = dict.fromkeys(analytics.LABELS, 0)
    games_with = dict.fromkeys(analytics.LABELS, 0)
    for game in games:
        labels = [o.label for o in game.analytics.rounds]
        for label in labels:
            rounds[label] += 1
        for label in set(labels):
            games_with[label] += 1
    return [OutcomeCount(label, rounds[label], games_with[label]) for label in analytics.LABELS]


def _names(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _and_others(games: Sequence[GameDebrief]) -> str:
    rest = len(games) - NAMED_GAMES
    return f" (and {_plural(rest, 'other game')} like it)" if rest > 0 else ""


def _quota_words(country: Country) -> str:
    quota = country.quota
    if quota == 1:
        rule = "unanimity"
    else:
        rule = f"{'more than' if country.strict else 'at least'} {quota.numerator}/{quota.denominator} of the weight"
    vetoes = [m.name for m in country.constituents if m.veto]
    if vetoes:
        rule += f", with {_names(vetoes)} holding a veto"
    return rule


def questions(games: Sequence[GameDebrief], schelling_data: Schelling) -> list[str]:
    """Questions for the class (DESIGN §1), naming the games where each thing happened."""
    asked: list[str] = []

    def with_label(label: str) -> list[GameDebrief]:
        return [g for g in games if any(o.label == label for o in g.analytics.rounds)]

    involuntary = with_label(analytics.INVOLUNTARY)
    for game in involuntary[:NAMED_GAMES]:
        failure = game.failed[-1] if game.failed else None
        if failure is not None:
            who = f"{failure.country} did not ratify"
            if failure.vetoed_by:
                who += f" ({_names(failure.vetoed_by)} vetoed it)"
            elif failure.against:
                who += f" ({_names(failure.against)} voted no)"
        else:
            who = "ratification failed at home"
        asked.append(
            f"{game.label} ended in involuntary defection: the chiefs agreed, but {who}. "
            "Could the chief have seen it coming (did a straw poll warn them?), and was there "
            "a text inside every win-set they could have proposed instead?"
            + (_and_others(involuntary) if game is involuntary[0] else "")
        )
    voluntary = with_label(analytics.VOLUNTARY)
    for game in voluntary[:NAMED_GAMES]:
        outcome = next(o for o in game.analytics.rounds if o.label == analytics.VOLUNTARY)
        asked.append(
            f"In {game.label}, round {outcome.round}: {outcome.reason} What did defecting "
            "gain that round, and what did it cost in reputation and in the rounds after (the "
            "shadow of the future)?" + (_and_others(voluntary) if game is voluntary[0] else "")
        )
    discord = with_label(analytics.DISCORD)
    for game in discord[:NAMED_GAMES]:
        if game.zone_points == 0:
            why = (
                "its zone of agreement is empty. Could side payments, or a package across "
                "issues, have opened one?"
            )
        elif game.offers_in_zone:
            why = (
                f"{game.offers_in_zone} of its {_plural(game.offers, 'offer')} lay inside the "
                "zone of agreement. Why did the chiefs not settle on one of them?"
            )
        else:
            why = (
                f"none of its {_plural(game.offers, 'offer')} entered the zone of agreement. "
                "Whose constraint kept them out, and did either chief know the other's win-set?"
            )
        asked.append(
            f"{game.label} ended in discord, with no tentative agreement: {why}"
            + (_and_others(discord) if game is discord[0] else "")
        )
    harmony = with_label(analytics.HARMONY)
    if harmony:
        asked.append(
            f"{harmony[0].label} was harmony: each country's best deal was already acceptable "
            "abroad, so no adjustment was needed. What did the negotiation add there, and "
            "what would have made mutual adjustment necessary?"
        )
    paid = [g for g in games if any(g.transfers.values())]
    if paid:
        game = paid[0]
        receivers = [game.scenario.member(k).name for k, v in game.transfers.items() if v]
        asked.append(
            f"In {game.label} side payments of {sum(game.transfers.values())} points went to "
            f"{_names(receivers)}. Were they pivotal for ratification, and who paid for them?"
        )
    if schelling_data.comparable:
        first = next(g for g in games if g.analytics.share_of_gains)
        sizes = first.analytics.winset_sizes
        smallest = min(sizes, key=lambda k: sizes[k])
        asked.append(
            f"{first.scenario.country(smallest).name} has the smallest win-set "
            f"({sizes[smallest]} of {first.scenario.grid_size} deals). In "
            f"{schelling_data.smallest_took_most} of "
            f"{_plural(schelling_data.comparable, 'agreement')} the country with the smallest "
            "win-set took the largest share of the gains. Did its chief use the tight "
            "constraint at home as a lever at the table?"
        )
    measured = [
        (game, pair)
        for game in games
        for pair in game.analytics.reciprocity
        if pair.diffuse is not None
    ]
    if len(measured) >= 2:
        high = max(measured, key=lambda item: item[1].diffuse or 0.0)
        low = min(measured, key=lambda item: item[1].diffuse or 0.0)
        if high[0] is not low[0]:
            asked.append(
                f"The chiefs of {high[0].label} kept their concessions most balanced over the "
                f"game (diffuse reciprocity {high[1].diffuse:.2f}), those of {low[0].label} "
                f"least ({low[1].diffuse:.2f}). Did they answer each concession in kind "
                "(specific reciprocity) or keep a running balance, and which built more trust?"
            )
    timed = sorted(
        (g for g in games if g.to_tentative is not None), key=lambda g: g.to_tentative or 0
    )
    if len(timed) >= 2 and timed[0].to_tentative != timed[-1].to_tentative:
        fast, slow = timed[0], timed[-1]
        asked.append(
            f"{fast.label} reached its first tentative agreement after "
            f"{charts.duration_words(fast.to_tentative or 0)}, {slow.label} after "
            f"{charts.duration_words(slow.to_tentative or 0)}. What held the slower table up: "
            "the terms abroad (Level I) or the fear of the vote at home (Level II)?"
        )
    if games:
        scenario = games[0].scenario
        sizes = games[0].analytics.winset_sizes
        tightest = min(scenario.countries, key=lambda c: sizes.get(c.key, 0))
        asked.append(
            f"{tightest.name} ratifies by {_quota_words(tightest)}, and would ratify "
            f"{sizes.get(tightest.key, 0)} of the {scenario.grid_size} possible deals. How "
            "would a stricter or looser rule have changed its win-set, and its share of the "
            "gains?"
        )
    if not any(g.analytics.rounds for g in games):
        asked.insert(
            0, "No round has ended yet: the questions grow with what happens in the games."
        )
    return asked


@dataclass(frozen=True, slots=True)
class SessionDebrief:
    games: tuple[GameDebrief, ...]
    counts: tuple[OutcomeCount, ...]
    schelling: Schelling
    questions: tuple[str, ...] = field(default_factory=tuple)

    def timing_bars(self) -> list[charts.TimingBar]:
        return [
            charts.TimingBar(
                game=game.label,
                tentative=game.to_tentative,
                in_force=game.to_in_force,
                note="not started" if not game.started else "no tentative agreement",
            )
            for game in self.games
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every number is finite or None."""
        return {
            "games": [
                {
                    "number": game.number,
                    "code": game.code,
                    "status": game.status,
                    "phase": game.phase,
                    "seconds_to_tentative_agreement": _rounded(game.to_tentative),
                    "seconds_to_entry_into_force": _rounded(game.to_in_force),
                    "tentative_agreements": game.tentative_agreements,
                    "offers": game.offers,
                    "offers_in_zone": game.offers_in_zone,
                    "grid_size": game.scenario.grid_size,
                    **game.analytics.to_dict(game.scenario),
                }
                for game in self.games
            ],
            "outcome_counts": [
                {"label": c.label, "rounds": c.rounds, "games": c.games} for c in self.counts
            ],
            "share_vs_winset": {
                "points": [
                    {
                        "game": p.game,
                        "country": p.country,
                        "winset_points": p.winset_points,
                        "winset_share": _rounded(p.winset),
                        "share_of_gains": _rounded(p.share),
                    }
                    for p in self.schelling.points
                ],
                "agreements": self.schelling.agreements,
                "r": _rounded(self.schelling.r),
                "reading": self.schelling.reading,
            },
            "questions": list(self.questions),
        }


def _rounded(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 6)


class _DebriefCache:
    """Session debriefs by the state of their games, least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[Any, ...], SessionDebrief] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> SessionDebrief | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], value: SessionDebrief) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


debriefs = _DebriefCache(DEBRIEF_CACHE_SIZE)


def session_debrief(session: ClassSession) -> SessionDebrief:
    """The debrief of every game of ``session`` (numbered as on the dashboard), computed once
    per state of its games. Raises ``ValueError`` for a game log the analytics cannot read."""
    games = class_sessions.session_games(session)
    key = (session.pk, tuple((g.pk, g.last_seq, g.status) for g in games))
    cached = debriefs.get(key)
    if cached is not None:
        return cached
    analyses = _Analyses()
    per_game = tuple(
        game_debrief(game, number, analyses) for number, game in enumerate(games, start=1)
    )
    shares = schelling(per_game)
    result = SessionDebrief(
        games=per_game,
        counts=tuple(outcome_counts(per_game)),
        schelling=shares,
        questions=tuple(questions(per_game, shares)),
    )
    debriefs.put(key, result)
    return result


def chart_svg(data: SessionDebrief, name: str) -> str:
    """The debrief chart ``name`` (one of ``CHART_NAMES``) as SVG. Raises ``KeyError`` for
    another name."""
    if name == "share-vs-winset":
        countries = {len(g.scenario.countries) for g in data.games if g.analytics.share_of_gains}
        return charts.share_vs_winset_svg(
            data.schelling.points,
            reading=data.schelling.reading,
            equal_share=1 / countries.pop() if len(countries) == 1 else None,
            trend=data.schelling.trend,
        )
    if name == "agreement-times":
        return charts.agreement_times_svg(data.timing_bars())
    raise KeyError(name)


# --------------------------------------------------------------------------------------------
# Pages


def owned_session(request: HttpRequest, code: str) -> ClassSession:
    """The session with ``code`` if the signed-in user owns it. Raises ``Http404`` otherwise
    (a session's existence is not told to others)."""
    session = (
        ClassSession.objects.filter(code=code.upper(), owner_id=request.user.pk)
        .select_related("scenario")
        .first()
    )
    if session is None:
        raise Http404("You have no session with this code.")
    return session


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _index(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _duration(seconds: float | None) -> str:
    return "—" if seconds is None else charts.duration_words(seconds)


def _page_rows(data: SessionDebrief) -> dict[str, Any]:
    """What the template shows, as plain rows."""
    outcomes: list[dict[str, Any]] = []
    reciprocity: list[dict[str, Any]] = []
    timing: list[dict[str, Any]] = []
    for game in data.games:
        replay = reverse("replay", args=[game.code])
        for outcome in game.analytics.rounds:
            outcomes.append(
                {
                    "game": game,
                    "replay": replay,
                    "round": outcome.round,
                    "label": outcome.label,
                    "name": LABEL_NAMES[outcome.label],
                    "reason": outcome.reason,
                }
            )
        if not game.analytics.rounds:
            outcomes.append(
                {
                    "game": game,
                    "replay": replay,
                    "round": None,
                    "label": "",
                    "name": "",
                    "reason": "Not started yet." if not game.started else "No round has ended yet.",
                }
            )
        names = {c.key: c.name for c in game.scenario.countries}
        for pair in game.analytics.reciprocity:
            reciprocity.append(
                {
                    "game": game,
                    "replay": replay,
                    "pair": " and ".join(names[k] for k in pair.countries),
                    "countries": "-".join(pair.countries),
                    "concessions": len(pair.concessions),
                    "specific": _index(pair.specific),
                    "diffuse": _index(pair.diffuse),
                    "specific_value": _rounded(pair.specific),
                    "diffuse_value": _rounded(pair.diffuse),
                }
            )
        timing.append(
            {
                "game": game,
                "replay": replay,
                "tentative": _duration(game.to_tentative),
                "in_force": _duration(game.to_in_force),
                "tentative_seconds": _rounded(game.to_tentative),
                "in_force_seconds": _rounded(game.to_in_force),
            }
        )
    codes = {game.label: game.code for game in data.games}
    points = [
        {
            "point": point,
            "winset": _percent(point.winset),
            "share": _percent(point.share),
            "replay": reverse("replay", args=[codes[point.game]]),
        }
        for point in data.schelling.points
    ]
    return {"outcomes": outcomes, "reciprocity": reciprocity, "timing": timing, "points": points}


CHART_TITLES = {
    "share-vs-winset": "Share of the joint gains against win-set size",
    "agreement-times": "Time from the start to agreement, per game",
}


@require_GET
@login_required
def debrief_page(request: HttpRequest, code: str) -> HttpResponse:
    session = owned_session(request, code)
    data = session_debrief(session)
    charts_shown = {
        key: {
            "name": name,
            "title": CHART_TITLES[name],
            "alt": alt,
            "url": reverse("session_debrief_chart", args=[session.code, name]),
            "filename": f"ratify-{session.code}-{name}",
        }
        for key, name, alt in (
            ("share", "share-vs-winset", data.schelling.reading),
            ("times", "agreement-times", "The table below gives the same times."),
        )
    }
    context = {
        "session": session,
        "data": data,
        "charts": charts_shown,
        "ended": sum(g.status == Game.Status.ENDED for g in data.games),
        **_page_rows(data),
    }
    return render(request, "classroom/debrief.html", context)


@require_GET
@login_required
def debrief_chart(request: HttpRequest, code: str, name: str) -> HttpResponse:
    """A debrief chart as SVG; ``download=1`` saves it as a file."""
    session = owned_session(request, code)
    if name not in CHART_NAMES:
        raise Http404("The debrief has no such chart.")
    svg = chart_svg(session_debrief(session), name)
    response = HttpResponse(svg, content_type="image/svg+xml; charset=utf-8")
    # A chart is a picture: nothing in it may run or load, even when opened on its own.
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response["Cache-Control"] = "no-cache"
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="ratify-{session.code}-{name}.svg"'
    return response


@require_GET
@login_required
def debrief_json(request: HttpRequest, code: str) -> JsonResponse:
    """The numbers of the debrief page as JSON."""
    session = owned_session(request, code)
    response = JsonResponse(
        session_debrief(session).to_dict(), json_dumps_params={"allow_nan": False}
    )
    if request.GET.get("download"):
        response["Content-Disposition"] = (
            f'attachment; filename="ratify-{session.code}-debrief.json"'
        )
    return response


urlpatterns: list[URLPattern] = [
    path("sessions/<str:code>/debrief/", debrief_page, name="session_debrief"),
    path(
        "sessions/<str:code>/debrief/chart/<slug:name>.svg",
        debrief_chart,
        name="session_debrief_chart",
    ),
    path("sessions/<str:code>/debrief.json", debrief_json, name="session_debrief_json"),
]
