"""The replay of a game: a timeline over every seq, the page as a viewer saw it, charts, notes.

Who may replay a game (``reviewer_for``):

- its instructor (``selectors.is_host``: staff, the instructor who created it, or the holder of
  its host link), from any viewer: the omniscient instructor view, every seat, the public view;
- a seated player, once the game has ended, from their own seat only;
- nobody else (403), whether a spectator, an anonymous visitor or another instructor.

The view at a seq is ``visibility.view`` of the state after folding the log up to that seq with
``rules.evolve``: the live code path, never a second implementation. The states along the log
are kept per game in memory (``timelines``), so scrubbing folds each event once.

Endpoints (all under ``/g/<code>/replay/``):

- ``""``: the page.
- ``data/?viewer=``: the events the viewer saw (seq, type, the visible payload), the key
  moments, the annotations and the charts that apply.
- ``view/?viewer=&seq=``: ``visibility.view`` at that seq and the time the event was stored.
- ``chart/<name>.svg?viewer=&upto=[&download=1]``: a chart of ``negotiation.charts``.
- ``annotations/`` (POST ``seq``, ``text``; instructor only, CSRF-checked): a note at a seq.

Players reviewing their seat see the instructor's notes too: notes are debrief comments for the
class, and the page tells the instructor so where notes are written.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_POST

from negotiation import charts, selectors, services
from negotiation.engine import events as e
from negotiation.engine.commands import INSTRUCTOR
from negotiation.engine.rules import evolve, initial_state
from negotiation.engine.scenario import Scenario
from negotiation.engine.state import GameState
from negotiation.engine.visibility import SPECTATOR, view, visible
from negotiation.models import Annotation, Game, GameEvent, Seat

#: Games whose folded states are kept in memory (per process).
TIMELINE_CACHE_SIZE = 8
#: The longest note an instructor may write (the model's limit).
MAX_NOTE = 2000

#: Events the timeline offers to jump to, with the kind of moment each is.
KEY_MOMENTS = {
    e.ProposalMade.TYPE: "proposal",
    e.TentativeAgreement.TYPE: "tentative",
    e.BallotsCounted.TYPE: "ballot",
    e.AgreementInForce.TYPE: "outcome",
    e.InvoluntaryDefection.TYPE: "outcome",
    e.RoundEnded.TYPE: "outcome",
    e.GameEnded.TYPE: "outcome",
}

NOT_ALLOWED = "Only the instructor of this game and, once it is over, its players may replay it."
NOT_OVER = "The replay opens for players when the game is over."
OTHER_SEAT = "You may replay this game only from your own seat."


# --------------------------------------------------------------------------------------------
# The log folded once per game


@dataclass(frozen=True, slots=True)
class Timeline:
    """A game's log with the state after each seq (``states[seq - 1]``) and when each event
    was stored (seconds since the epoch)."""

    events: tuple[e.Event, ...]
    states: tuple[GameState, ...]
    times: tuple[float, ...]

    @property
    def last_seq(self) -> int:
        return len(self.events)

    @property
    def scenario(self) -> Scenario:
        return self.states[0].scenario

    def state_at(self, seq: int) -> GameState:
        """Raises ``IndexError`` for a seq outside 1..last_seq."""
        if not 1 <= seq <= self.last_seq:
            raise IndexError(seq)
        return self.states[seq - 1]


class _Timelines:
    """Timelines by game id, least recently used dropped first; extended as the log grows."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._timelines: OrderedDict[int, Timeline] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, game_id: int) -> Timeline:
        """The game's timeline up to its last stored event. Raises ``GameNotFoundError`` for
        a game without a log."""
        with self._lock:
            cached = self._timelines.get(game_id)
        after = cached.last_seq if cached is not None else 0
        rows = list(
            GameEvent.objects.filter(game_id=game_id, seq__gt=after)
            .order_by("seq")
            .values_list("seq", "payload", "created")
        )
        if cached is not None and not rows:
            timeline = cached
        else:
            events = list(cached.events) if cached is not None else []
            states = list(cached.states) if cached is not None else []
            times = list(cached.times) if cached is not None else []
            for seq, payload, created in rows:
                if seq != len(events) + 1:
                    # A hole means the cache outlived its log (a test flushed the database).
                    self.forget(game_id)
                    return self.get(game_id) if cached is not None else self._missing(game_id)
                event = e.event_from_dict(payload)
                if states:
                    state = evolve(states[-1], event)
                elif isinstance(event, e.GameCreated):
                    state = initial_state(event)
                else:
                    return self._missing(game_id)
                events.append(event)
                states.append(state)
                times.append(created.timestamp())
            if not events:
                return self._missing(game_id)
            timeline = Timeline(tuple(events), tuple(states), tuple(times))
        with self._lock:
            current = self._timelines.get(game_id)
            if current is None or current.last_seq <= timeline.last_seq:
                self._timelines[game_id] = timeline
            self._timelines.move_to_end(game_id)
            while len(self._timelines) > self._size:
                self._timelines.popitem(last=False)
        return timeline

    @staticmethod
    def _missing(game_id: int) -> Timeline:
        raise services.GameNotFoundError(f"game {game_id} has no log")

    def forget(self, game_id: int) -> None:
        with self._lock:
            self._timelines.pop(game_id, None)

    def clear(self) -> None:
        with self._lock:
            self._timelines.clear()


timelines = _Timelines(TIMELINE_CACHE_SIZE)


# --------------------------------------------------------------------------------------------
# Who may replay, and from where


@dataclass(frozen=True, slots=True)
class Reviewer:
    """What a request may replay: the viewers it may pick (the first is its default)."""

    viewers: tuple[str, ...]
    instructor: bool


def reviewer_for(request: HttpRequest, game: Game) -> Reviewer:
    """The request's rights to replay ``game``. Raises ``PermissionDenied`` for anyone other
    than its instructor or, once the game has ended, one of its seated players."""
    if selectors.is_host(game, request.session, request.user):
        seats = Seat.objects.filter(game=game).order_by("order").values_list("key", flat=True)
        return Reviewer((INSTRUCTOR, *seats, SPECTATOR), instructor=True)
    seat = services.seat_of(game, selectors.player_of(request.session))
    if seat is None:
        raise PermissionDenied(NOT_ALLOWED)
    if not timelines.get(game.pk).states[-1].ended:
        raise PermissionDenied(NOT_OVER)
    return Reviewer((seat.key,), instructor=False)


def _game(code: str) -> Game:
    try:
        return services.game_by_code(code)
    except services.GameNotFoundError:
        raise Http404("No game has this code.") from None


def _viewer(request: HttpRequest, reviewer: Reviewer) -> str:
    """The viewer asked for (``?viewer=``), or the reviewer's default. Raises
    ``PermissionDenied`` for a viewer the reviewer may not take."""
    wanted = request.GET.get("viewer") or reviewer.viewers[0]
    if wanted not in reviewer.viewers:
        raise PermissionDenied(OTHER_SEAT)
    return wanted


class BadSeq(ValueError):
    """A ``seq`` or ``upto`` parameter that is not a seq of the log."""


def _seq(request: HttpRequest, name: str, timeline: Timeline) -> int:
    """The seq in parameter ``name`` (the last seq when absent). Raises ``BadSeq``."""
    raw = request.GET.get(name, "")
    if raw == "":
        return timeline.last_seq
    try:
        seq = int(raw)
    except ValueError:
        raise BadSeq(f"{name} must be a whole number") from None
    if not 1 <= seq <= timeline.last_seq:
        raise BadSeq(f"{name} must lie between 1 and {timeline.last_seq}")
    return seq


def viewer_label(scenario: Scenario, viewer: str) -> str:
    """The viewer in words, for the seat picker."""
    if viewer == INSTRUCTOR:
        return "Omniscient (the instructor's view)"
    if viewer == SPECTATOR:
        return "Public (a spectator's view)"
    member = scenario.member(viewer)
    country = scenario.country(member.country).name
    if member.role == "chief":
        role = member.title or "Chief negotiator"
    else:
        role = "Constituent"
    return f"{member.name}: {role}, {country}"


# --------------------------------------------------------------------------------------------
# Pages and data


@require_GET
def replay_page(request: HttpRequest, code: str) -> HttpResponse:
    """The replay page: the scrubber, the table as the chosen viewer saw it, charts, notes."""
    game = _game(code)
    reviewer = reviewer_for(request, game)
    timeline = timelines.get(game.pk)
    scenario = timeline.scenario
    names = dict(Seat.objects.filter(game=game).values_list("key", "display_name"))
    viewers = [
        {
            "key": viewer,
            "label": viewer_label(scenario, viewer)
            + (f" ({names[viewer]})" if names.get(viewer) else ""),
        }
        for viewer in reviewer.viewers
    ]
    config = {
        "code": game.code,
        "viewers": viewers,
        "viewer": reviewer.viewers[0],
        "instructor": reviewer.instructor,
        "lastSeq": timeline.last_seq,
        "charts": charts.charts_for(scenario),
        "urls": {
            "data": reverse("replay_data", args=[game.code]),
            "view": reverse("replay_view", args=[game.code]),
            "chart": reverse("replay_chart", args=[game.code, "NAME"]),
            "annotations": reverse("replay_annotations", args=[game.code]),
            "results": reverse("results", args=[game.code]),
            "briefing": reverse("briefing", args=[game.code]),
            "lobby": reverse("lobby", args=[game.code]),
        },
    }
    context = {
        "game": game,
        "scenario": scenario,
        "reviewer": reviewer,
        "viewers": viewers,
        "replay_config": config,
        "ended": timeline.states[-1].ended,
    }
    return render(request, "negotiation/replay.html", context)


def _annotation_dict(note: Annotation) -> dict[str, Any]:
    author = note.author
    return {
        "id": note.pk,
        "seq": note.seq,
        "text": note.text,
        "author": (author.get_full_name() or author.get_username()) if author else "Instructor",
        "created": note.created.isoformat(),
    }


@require_GET
def replay_data(request: HttpRequest, code: str) -> HttpResponse:
    """The viewer's timeline: every event it saw, the key moments, the notes, the charts."""
    game = _game(code)
    reviewer = reviewer_for(request, game)
    viewer = _viewer(request, reviewer)
    timeline = timelines.get(game.pk)
    scenario = timeline.scenario
    seen: list[dict[str, Any]] = []
    moments: list[dict[str, Any]] = []
    for seq, (event, state) in enumerate(zip(timeline.events, timeline.states, strict=True), 1):
        shown = visible(scenario, event, viewer, settings=state.settings)
        if shown is None:
            continue
        if isinstance(shown, e.GameCreated):
            # The scenario comes with every view; the log entry needs only its type.
            payload: dict[str, Any] = {"type": shown.TYPE}
        else:
            payload = e.event_to_dict(shown)
        seen.append({"seq": seq, "type": shown.TYPE, "event": payload})
        kind = KEY_MOMENTS.get(shown.TYPE)
        if kind is not None:
            moments.append({"seq": seq, "type": shown.TYPE, "kind": kind})
    notes = Annotation.objects.filter(game=game).select_related("author")
    return JsonResponse(
        {
            "viewer": viewer,
            "last_seq": timeline.last_seq,
            "ended": timeline.states[-1].ended,
            "first_time": timeline.times[0],
            "events": seen,
            "moments": moments,
            "annotations": [_annotation_dict(note) for note in notes],
            "charts": charts.charts_for(scenario),
        }
    )


@require_GET
def replay_view(request: HttpRequest, code: str) -> HttpResponse:
    """``visibility.view`` of the state after ``seq`` for the viewer, and the event's time."""
    game = _game(code)
    reviewer = reviewer_for(request, game)
    viewer = _viewer(request, reviewer)
    timeline = timelines.get(game.pk)
    try:
        seq = _seq(request, "seq", timeline)
    except BadSeq as error:
        return HttpResponseBadRequest(str(error))
    return JsonResponse(
        {
            "seq": seq,
            "last_seq": timeline.last_seq,
            "time": timeline.times[seq - 1],
            "view": view(timeline.state_at(seq), viewer),
        }
    )


@require_GET
def replay_chart(request: HttpRequest, code: str, name: str) -> HttpResponse:
    """A chart as SVG, for the viewer up to ``upto``; ``download=1`` saves it as a file."""
    game = _game(code)
    reviewer = reviewer_for(request, game)
    viewer = _viewer(request, reviewer)
    chart = charts.CHARTS.get(name)
    timeline = timelines.get(game.pk)
    if chart is None or name not in charts.charts_for(timeline.scenario):
        raise Http404("This game has no such chart.")
    try:
        upto = _seq(request, "upto", timeline)
    except BadSeq as error:
        return HttpResponseBadRequest(str(error))
    svg = chart(timeline.scenario, timeline.events, viewer, upto=upto)
    response = HttpResponse(svg, content_type="image/svg+xml; charset=utf-8")
    # A chart is a picture: nothing in it may run or load, even when opened on its own.
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response["Cache-Control"] = "private, max-age=3600" if "upto" in request.GET else "no-cache"
    if request.GET.get("download"):
        filename = f"ratify-{game.code}-{name}-{viewer}-seq{upto}.svg"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_POST
def replay_annotations(request: HttpRequest, code: str) -> HttpResponse:
    """The instructor writes a note at a seq (form fields ``seq`` and ``text``)."""
    game = _game(code)
    reviewer = reviewer_for(request, game)
    if not reviewer.instructor:
        raise PermissionDenied("Only the instructor writes notes on the replay.")
    timeline = timelines.get(game.pk)
    text = request.POST.get("text", "").strip()
    try:
        seq = int(request.POST.get("seq", ""))
    except ValueError:
        return JsonResponse({"error": "Say at which event the note belongs."}, status=400)
    if not 1 <= seq <= timeline.last_seq:
        return JsonResponse(
            {"error": f"The note's event must lie between 1 and {timeline.last_seq}."}, status=400
        )
    if not text:
        return JsonResponse({"error": "Write the note first."}, status=400)
    if len(text) > MAX_NOTE:
        return JsonResponse({"error": f"A note holds at most {MAX_NOTE} characters."}, status=400)
    author = request.user if request.user.is_authenticated else None
    note = Annotation.objects.create(game=game, seq=seq, text=text, author=author)
    return JsonResponse(_annotation_dict(note), status=201)


urlpatterns = [
    path("g/<str:code>/replay/", replay_page, name="replay"),
    path("g/<str:code>/replay/data/", replay_data, name="replay_data"),
    path("g/<str:code>/replay/view/", replay_view, name="replay_view"),
    path("g/<str:code>/replay/chart/<slug:name>.svg", replay_chart, name="replay_chart"),
    path("g/<str:code>/replay/annotations/", replay_annotations, name="replay_annotations"),
]
