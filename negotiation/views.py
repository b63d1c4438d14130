"""Pages of the negotiation app: join, pick a seat, play, briefing, results, host."""

from __future__ import annotations

import secrets
import time
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.db.models.functions import Lower
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Player
from negotiation import briefing, class_sessions, selectors, services
from negotiation.class_sessions import clean_name
from negotiation.engine.analytics import debrief
from negotiation.engine.commands import INSTRUCTOR
from negotiation.engine.scenario import (
    Deadlines,
    GameDefaults,
    game_settings_to_dict,
    scenario_from_dict,
)
from negotiation.engine.scoring import score_state
from negotiation.engine.winset import Analysis
from negotiation.models import ClassSession, Game, Scenario, Seat


class JoinForm(forms.Form):
    code = forms.CharField(
        label="Join code",
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters"}),
    )
    name = forms.CharField(label="Your name", max_length=40)

    def clean_code(self) -> str:
        code: str = self.cleaned_data["code"].strip().upper()
        known = (
            ClassSession.objects.filter(code=code).exists()
            or Game.objects.filter(code=code).exists()
        )
        if not known:
            raise forms.ValidationError("No game has this code. Check it with your instructor.")
        return code

    def clean_name(self) -> str:
        name = clean_name(self.cleaned_data["name"])
        if not name:
            raise forms.ValidationError("Tell the others who you are.")
        return name


class SeatForm(forms.Form):
    name = forms.CharField(label="Your name", max_length=40)
    seat = forms.CharField(required=False, max_length=40)

    def clean_name(self) -> str:
        name = clean_name(self.cleaned_data["name"])
        if not name:
            raise forms.ValidationError("Tell the others who you are.")
        return name


class NewGameForm(forms.Form):
    scenario = forms.ModelChoiceField(
        queryset=Scenario.objects.order_by(Lower("title")), empty_label="Choose a scenario"
    )
    rounds = forms.IntegerField(
        min_value=1,
        max_value=20,
        initial=1,
        help_text="Several rounds let reputation and reciprocity build up.",
    )
    attempts = forms.IntegerField(
        min_value=1,
        max_value=10,
        initial=2,
        label="Attempts per round",
        help_text="Tentative agreements a round may put to the vote.",
    )
    compliance = forms.BooleanField(
        required=False,
        label="Compliance stage",
        help_text="After entry into force, each government complies or defects.",
    )
    regime = forms.BooleanField(
        required=False, help_text="A regime publishes every country's compliance record."
    )
    level1_minutes = forms.IntegerField(
        min_value=1, max_value=240, initial=15, label="Level I minutes (the chiefs negotiate)"
    )
    level2_minutes = forms.IntegerField(
        min_value=1, max_value=60, initial=3, label="Level II minutes (the constituents vote)"
    )

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["scenario"]
        assert isinstance(field, forms.ModelChoiceField)
        # An instructor's uploaded scenario is theirs unless shared.
        field.queryset = class_sessions.scenarios_for(user).order_by(Lower("title"))


def _player(request: HttpRequest, name: str | None = None) -> Player:
    """The session's player, created on first use; ``name`` renames it."""
    player = selectors.player_of(request.session)
    if player is None:
        player = Player.objects.create(
            display_name=name or "Player",
            user=request.user if request.user.is_authenticated else None,
        )
        request.session[Player.SESSION_KEY] = str(player.pk)
    elif name and name != player.display_name:
        player.display_name = name
        player.save(update_fields=["display_name"])
    return player


def _game(code: str) -> Game:
    try:
        return services.game_by_code(code)
    except services.GameNotFoundError:
        raise Http404("No game has this code.") from None


#: How many ended games the front page lists for their instructor.
ENDED_GAMES_SHOWN = 20


def home(request: HttpRequest) -> HttpResponse:
    """The front page: join a game, the scenarios that can be played and, for a signed-in
    instructor, the games they created (to get back to a host console or the results)."""
    scenarios = (
        class_sessions.scenarios_for(request.user)
        .only("slug", "title", "summary", "builtin")
        .order_by("-builtin", Lower("title"), "slug")
    )
    player = selectors.player_of(request.session)
    form = JoinForm(
        initial={
            "name": player.display_name if player else "",
            "code": request.GET.get("code", "")[:8],
        }
    )
    context: dict[str, Any] = {"scenarios": scenarios, "form": form}
    if request.user.is_authenticated:
        mine = Game.objects.filter(created_by=request.user).select_related("scenario")
        context["running_games"] = list(mine.exclude(status=Game.Status.ENDED))
        context["ended_games"] = list(mine.filter(status=Game.Status.ENDED)[:ENDED_GAMES_SHOWN])
        context["class_sessions"] = list(
            ClassSession.objects.filter(owner=request.user).select_related("scenario")[:10]
        )
    return render(request, "negotiation/home.html", context)


@require_POST
def join(request: HttpRequest) -> HttpResponse:
    form = JoinForm(request.POST)
    if not form.is_valid():
        scenarios = class_sessions.scenarios_for(request.user).order_by("-builtin", Lower("title"))
        return render(
            request, "negotiation/home.html", {"scenarios": scenarios, "form": form}, status=400
        )
    player = _player(request, form.cleaned_data["name"])
    session = class_sessions.session_by_code(form.cleaned_data["code"])
    if session is not None:
        class_sessions.join(session=session, player=player)
        return redirect("session_wait", code=session.code)
    return redirect("lobby", code=form.cleaned_data["code"])


def lobby(request: HttpRequest, code: str) -> HttpResponse:
    """Pick a seat (or receive the first free one); a seated player goes to the table."""
    game = _game(code)
    player = selectors.player_of(request.session)
    if services.seat_of(game, player) is not None:
        return redirect("play", code=game.code)
    return _seat_page(request, game, player, None, SeatForm(initial=_name(player)))


def seat_link(request: HttpRequest, code: str, seat: str) -> HttpResponse:
    """A seat's own link (from the instructor): a name, then straight to that seat."""
    game = _game(code)
    player = selectors.player_of(request.session)
    target = Seat.objects.filter(game=game, key=seat).first()
    if target is None:
        raise Http404("This game has no such seat.")
    if services.seat_of(game, player) is not None:
        return redirect("play", code=game.code)
    return _seat_page(
        request, game, player, target, SeatForm(initial={**_name(player), "seat": seat})
    )


def _name(player: Player | None) -> dict[str, str]:
    return {"name": player.display_name} if player is not None else {}


def _seat_page(
    request: HttpRequest,
    game: Game,
    player: Player | None,
    target: Seat | None,
    form: SeatForm,
    status: int = 200,
    problem: str = "",
) -> HttpResponse:
    scenario = scenario_from_dict(game.scenario.definition)
    seats = list(Seat.objects.filter(game=game).order_by("order"))
    countries = [
        {
            "key": country.key,
            "name": country.name,
            "seats": [
                {
                    "seat": seat,
                    "title": _role_title(scenario.member(seat.key)),
                    "name": scenario.member(seat.key).name,
                }
                for seat in seats
                if seat.country == country.key
            ],
        }
        for country in scenario.countries
    ]
    context = {
        "game": game,
        "scenario": scenario,
        "countries": countries,
        "form": form,
        "target": target,
        "free": sum(1 for seat in seats if not seat.occupied),
        "problem": problem,
    }
    if target is not None:
        member = scenario.member(target.key)
        context.update(
            target_name=member.name,
            target_title=_role_title(member),
            target_country=scenario.country(member.country).name,
        )
    return render(request, "negotiation/lobby.html", context, status=status)


def _role_title(member: Any) -> str:
    if member.role == "chief":
        return str(member.title or "Chief negotiator")
    return "Constituent"


@require_POST
def take_seat(request: HttpRequest, code: str) -> HttpResponse:
    game = _game(code)
    form = SeatForm(request.POST)
    player = selectors.player_of(request.session)
    if not form.is_valid():
        return _seat_page(request, game, player, None, form, status=400)
    player = _player(request, form.cleaned_data["name"])
    wanted = form.cleaned_data["seat"] or None
    outcome = services.take_seat(game=game, player=player, seat_key=wanted)
    if not outcome.accepted:
        target = Seat.objects.filter(game=game, key=wanted).first() if wanted else None
        return _seat_page(request, game, player, target, form, 409, outcome.message)
    return redirect("play", code=game.code)


def _table_context(game: Game) -> dict[str, Any]:
    """What the table's script needs besides the websocket: the game's settings (payoffs,
    deadlines; the snapshot carries only the scenario's defaults) and the server's clock."""
    state = services.load_state(game.pk)
    return {
        "game": game,
        "game_settings": game_settings_to_dict(state.settings),
        "server_time": f"{time.time():.3f}",
    }


def play(request: HttpRequest, code: str) -> HttpResponse:
    """The negotiation table (also the spectators' view)."""
    game = _game(code)
    player = selectors.player_of(request.session)
    seat = services.seat_of(game, player)
    return render(
        request,
        "negotiation/play.html",
        {
            **_table_context(game),
            "seat": seat,
            "player": player,
            "socket_path": f"/ws/games/{game.code}/",
            "host": False,
        },
    )


def briefing_page(request: HttpRequest, code: str) -> HttpResponse:
    """The seat's private briefing: its role, its preferences in words and a chart."""
    game = _game(code)
    seat = services.seat_of(game, selectors.player_of(request.session))
    if seat is None:
        return redirect("lobby", code=game.code)
    scenario = scenario_from_dict(game.scenario.definition)
    member = scenario.member(seat.key)
    context = {"game": game, "seat": seat, **briefing.context(scenario, member)}
    return render(request, "negotiation/briefing.html", context)


def results(request: HttpRequest, code: str) -> HttpResponse:
    """Every role's score and the outcome label, from the log."""
    game = _game(code)
    state = services.load_state(game.pk)
    log = services.log_of(game.pk)
    scenario = state.scenario
    scores = score_state(state)
    summary = debrief(log, Analysis(scenario)) if state.rounds else None
    names = dict(Seat.objects.filter(game=game).values_list("key", "display_name"))
    countries = [
        {
            "country": country,
            "score": scores.countries[country.key],
            "chief": (
                country.chief,
                scores.chiefs[country.chief.key],
                names.get(country.chief.key),
            ),
            "members": [(m, scores.members[m.key], names.get(m.key)) for m in country.constituents],
        }
        for country in scenario.countries
    ]
    data = summary.to_dict(scenario) if summary else None
    country_names = {country.key: country.name for country in scenario.countries}
    context: dict[str, Any] = {
        "game": game,
        "state": state,
        "scores": scores,
        "countries": countries,
        "debrief": data,
        "phase": PHASE_NAMES.get(state.phase, state.phase),
    }
    if data is not None:
        context.update(
            outcome_name=OUTCOME_NAMES.get(
                data["outcome"]["label"] if data["outcome"] else "", "No outcome yet"
            ),
            rounds=[
                {**r, "name": OUTCOME_NAMES.get(r["label"], r["label"])} for r in data["rounds"]
            ],
            agreement=[
                (issue.label, data["agreement"][issue.key], issue.unit) for issue in scenario.issues
            ]
            if data["agreement"]
            else None,
            shares=[
                (country_names.get(key, key), share)
                for key, share in (data["share_of_gains"] or {}).items()
            ],
            winsets=[
                (country_names.get(key, key), size) for key, size in data["winset_sizes"].items()
            ],
            grid_size=_grid_size(scenario),
            reciprocity=[
                {
                    **r,
                    "names": " and ".join(country_names.get(k, k) for k in r["countries"]),
                }
                for r in data["reciprocity"]
            ],
        )
    context["can_replay"] = selectors.is_host(game, request.session, request.user) or (
        state.ended and services.seat_of(game, selectors.player_of(request.session)) is not None
    )
    return render(request, "negotiation/results.html", context)


#: Plain names of the outcome labels of the debrief (DESIGN §5).
OUTCOME_NAMES = {
    "harmony": "Harmony",
    "cooperation": "Cooperation",
    "discord": "Discord",
    "involuntary_defection": "Involuntary defection",
    "voluntary_defection": "Voluntary defection",
}
PHASE_NAMES = {
    "lobby": "waiting to start",
    "level1": "Level I negotiation",
    "level2": "Level II ratification vote",
    "compliance": "compliance stage",
    "ended": "ended",
}


def _grid_size(scenario: Any) -> int:
    size = 1
    for issue in scenario.issues:
        size *= issue.levels
    return size


def host_link(request: HttpRequest, code: str, token: str) -> HttpResponse:
    """The secret host link: this browser may run the game from now on."""
    game = _game(code)
    if not secrets.compare_digest(token, game.host_token):
        raise Http404("No game has this host link.")
    hosted = list(request.session.get(selectors.HOST_SESSION_KEY, []))
    if game.code not in hosted:
        hosted.append(game.code)
        request.session[selectors.HOST_SESSION_KEY] = hosted
    return redirect("host", code=game.code)


def host(request: HttpRequest, code: str) -> HttpResponse:
    """The instructor's console: seats and their links, controls, the live log."""
    game = _game(code)
    if not selectors.is_host(game, request.session, request.user):
        return HttpResponseForbidden("Open the host link of this game to run it.")
    seats = list(Seat.objects.filter(game=game).order_by("order"))
    links = {
        seat.key: request.build_absolute_uri(reverse("seat", args=[game.code, seat.key]))
        for seat in seats
    }
    return render(
        request,
        "negotiation/play.html",
        {
            **_table_context(game),
            "seat": None,
            "host": True,
            "viewer": INSTRUCTOR,
            "seats": seats,
            "seat_links": links,
            "join_url": request.build_absolute_uri(reverse("lobby", args=[game.code])),
            "socket_path": f"/ws/games/{game.code}/?role=host",
        },
    )


@login_required
def new_game(request: HttpRequest) -> HttpResponse:
    """An instructor creates a game of a scenario."""
    form = NewGameForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        settings = GameDefaults(
            rounds=data["rounds"],
            attempts=data["attempts"],
            compliance=data["compliance"],
            regime=data["regime"],
            deadlines=Deadlines(
                level1=data["level1_minutes"] * 60,
                level2=data["level2_minutes"] * 60,
                compliance=Deadlines().compliance,
            ),
        )
        scenario = data["scenario"]
        game = services.create_game(scenario=scenario, settings=settings, created_by=request.user)
        return redirect("host", code=game.code)
    return render(request, "negotiation/new_game.html", {"form": form})
