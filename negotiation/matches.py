"""Remote matches: the public lobby, creating a match, quick match, and the notice a player
gets after a bot kept their seat.

Players stay account-free (a display name in the session), as on the join page. A match is an
ordinary game with ``Game.public`` set; it starts by itself once every seat is held (there is no
instructor to start it), and bots may fill its empty seats after a wait (``services``).

The lobby refreshes itself by polling ``/matches/open.json`` every few seconds: one small
indexed query per browser, and the page never reloads under someone reading it (a meta refresh
would, and would lose their place and focus). Without scripts the page still lists the matches
as they were when it loaded, with a refresh link.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models.functions import Lower
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_GET, require_POST

from negotiation import selectors, services
from negotiation.models import Scenario
from negotiation.views import _player as session_player

#: The wait before bots fill a new match, offered and allowed (seconds).
DEFAULT_BOT_WAIT = 60
MIN_BOT_WAIT = 10
MAX_BOT_WAIT = 1800
#: How often the lobby page asks for the open matches (milliseconds).
LOBBY_REFRESH_MS = 5000


def _scenarios() -> Any:
    return Scenario.objects.order_by("-builtin", Lower("title"), "slug")


class NameField(forms.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(label="Your name", max_length=40, **kwargs)

    def clean(self, value: Any) -> str:
        name: str = " ".join(str(super().clean(value) or "").split())
        if not name:
            raise forms.ValidationError("Tell the others who you are.")
        return name


class ScenarioField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.title)


class QuickMatchForm(forms.Form):
    name = NameField()
    scenario = ScenarioField(
        queryset=Scenario.objects.none(), required=False, empty_label="Any scenario"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["scenario"].queryset = _scenarios()  # type: ignore[attr-defined]


class NewMatchForm(forms.Form):
    name = NameField()
    scenario = ScenarioField(queryset=Scenario.objects.none(), empty_label=None)
    bots = forms.BooleanField(
        required=False,
        initial=True,
        label="Bots take the seats still empty after a wait",
        help_text="Without bots the match waits until people take every seat.",
    )
    wait = forms.IntegerField(
        min_value=MIN_BOT_WAIT,
        max_value=MAX_BOT_WAIT,
        initial=DEFAULT_BOT_WAIT,
        label="Wait before bots join (seconds)",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["scenario"].queryset = _scenarios()  # type: ignore[attr-defined]


def _initial_name(request: HttpRequest) -> dict[str, str]:
    player = selectors.player_of(request.session)
    return {"name": player.display_name} if player is not None else {}


def lobby(request: HttpRequest) -> HttpResponse:
    """The public lobby: open matches to join or watch, quick match, and creating a match."""
    return _lobby(request, QuickMatchForm(initial=_initial_name(request)))


def _lobby(request: HttpRequest, form: QuickMatchForm, status: int = 200) -> HttpResponse:
    context = {
        "form": form,
        "matches": selectors.open_matches(),
        "refresh_ms": LOBBY_REFRESH_MS,
    }
    return render(request, "negotiation/matches/lobby.html", context, status=status)


@require_GET
def open_matches(request: HttpRequest) -> JsonResponse:
    """The open matches as JSON, for the lobby page to refresh itself."""
    matches = [
        {
            **match.to_dict(),
            "join_url": reverse("lobby", args=[match.code]),
            "watch_url": reverse("play", args=[match.code]),
        }
        for match in selectors.open_matches()
    ]
    response = JsonResponse({"matches": matches})
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def quick_match(request: HttpRequest) -> HttpResponse:
    """Join the first fitting open match, or open a new one; straight to the table."""
    form = QuickMatchForm(request.POST)
    if not form.is_valid():
        return _lobby(request, form, status=400)
    player = session_player(request, form.cleaned_data["name"])
    try:
        game, outcome = services.quick_match(player=player, scenario=form.cleaned_data["scenario"])
    except Scenario.DoesNotExist:
        form.add_error(None, "No scenario is available to play yet.")
        return _lobby(request, form, status=409)
    if not outcome.accepted:
        form.add_error(None, outcome.message)
        return _lobby(request, form, status=409)
    return redirect("play", code=game.code)


def new_match(request: HttpRequest) -> HttpResponse:
    """Create a remote match, then pick a seat in it."""
    form = NewMatchForm(request.POST or None, initial=_initial_name(request))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        session_player(request, data["name"])
        game = services.create_match(
            scenario=data["scenario"],
            bot_fill_after=data["wait"] if data["bots"] else None,
            created_by=request.user,
        )
        return redirect("lobby", code=game.code)
    status = 400 if request.method == "POST" else 200
    return render(request, "negotiation/matches/new.html", {"form": form}, status=status)


@require_GET
def stood_in(request: HttpRequest, code: str) -> JsonResponse:
    """For the player's table: when a bot last kept this browser's seat and gave it back."""
    try:
        game = services.game_by_code(code)
    except services.GameNotFoundError:
        raise Http404("No game has this code.") from None
    player_id = selectors.session_player_id(request.session)
    found = selectors.stood_in(game, player_id) if player_id is not None else None
    response = JsonResponse({"stood_in": found})
    response["Cache-Control"] = "no-store"
    return response


urlpatterns: list[URLPattern] = [
    path("matches/", lobby, name="matches"),
    path("matches/open.json", open_matches, name="open_matches"),
    path("matches/quick/", quick_match, name="quick_match"),
    path("matches/new/", new_match, name="new_match"),
    path("g/<str:code>/stood-in/", stood_in, name="stood_in"),
]
