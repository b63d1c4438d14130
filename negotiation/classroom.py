"""Pages of class sessions: the instructor's list, the new-session form, the dashboard and the
QR code; the students' waiting room (joining is on the front page, with the session's code).

Only a session's owner sees its pages (others get 404: a session's existence is not told).
"""

from __future__ import annotations

import io
from typing import Any

import segno
from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse

from negotiation import class_sessions, debrief, selectors
from negotiation.engine.scenario import Deadlines, GameDefaults
from negotiation.models import ClassSession, Scenario, Seat, SessionMember


class NewSessionForm(forms.Form):
    title = forms.CharField(
        max_length=200, required=False, help_text="For you; the scenario's title if left empty."
    )
    scenario = forms.ModelChoiceField(
        queryset=Scenario.objects.none(),
        required=False,
        empty_label="Choose a scenario",
        help_text="A built-in scenario, one of yours, or one another instructor shared.",
    )
    scenario_file = forms.FileField(
        required=False,
        label="…or upload a scenario file (YAML or JSON)",
        help_text="Checked before anything is created; every problem is shown by its path.",
    )
    share_scenario = forms.BooleanField(
        required=False, label="Share the uploaded scenario with other instructors"
    )
    games = forms.IntegerField(
        min_value=1,
        max_value=class_sessions.MAX_GAMES,
        required=False,
        label="Parallel games",
        help_text="Leave empty to derive it from the roster or the class size.",
    )
    students = forms.IntegerField(
        min_value=1,
        max_value=class_sessions.MAX_STUDENTS,
        required=False,
        label="Students expected",
        help_text="Used to derive the number of games when there is no roster.",
    )
    assignment = forms.ChoiceField(
        choices=ClassSession.Assignment.choices,
        initial=ClassSession.Assignment.RANDOM,
        widget=forms.RadioSelect,
        label="Seating",
    )
    roster = forms.FileField(
        required=False,
        label="Roster (CSV)",
        help_text="A first line naming the columns: name, and optionally game and seat "
        "(a seat key of the scenario). Students are matched by the name they type.",
    )
    rounds = forms.IntegerField(min_value=1, max_value=20, initial=1)
    attempts = forms.IntegerField(min_value=1, max_value=10, initial=2, label="Attempts per round")
    compliance = forms.BooleanField(required=False, label="Compliance stage")
    regime = forms.BooleanField(required=False, help_text="Publishes every compliance record.")
    level1_minutes = forms.IntegerField(
        min_value=1, max_value=240, initial=15, label="Level I minutes"
    )
    level2_minutes = forms.IntegerField(
        min_value=1, max_value=60, initial=3, label="Level II minutes"
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        field = self.fields["scenario"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = class_sessions.scenarios_for(user).order_by("-builtin", "title")
        self.roster_lines: list[class_sessions.RosterLine] = []

    def clean_roster(self) -> Any:
        upload = self.cleaned_data.get("roster")
        if upload:
            try:
                # At most one byte past the limit: enough to refuse a larger file.
                self.roster_lines = class_sessions.parse_roster(
                    upload.read(class_sessions.MAX_ROSTER_BYTES + 1)
                )
            except class_sessions.SessionError as error:
                raise forms.ValidationError(list(error.problems)) from None
        return upload

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("scenario") and not data.get("scenario_file"):
            self.add_error("scenario", "Choose a scenario or upload one.")
        if data.get("scenario") and data.get("scenario_file"):
            self.add_error("scenario_file", "Choose a scenario or upload one, not both.")
        if data.get("assignment") == ClassSession.Assignment.ROSTER and not self.roster_lines:
            self.add_error("roster", "Seating from a roster needs a roster file.")
        return data


def _owned(request: HttpRequest, code: str) -> ClassSession:
    session = ClassSession.objects.filter(code=code.upper(), owner_id=request.user.pk).first()
    if session is None:
        raise Http404("You have no session with this code.")
    return session


@login_required
def session_list(request: HttpRequest) -> HttpResponse:
    sessions = ClassSession.objects.filter(owner_id=request.user.pk).select_related("scenario")
    return render(request, "classroom/list.html", {"sessions": sessions})


@login_required
def new_session(request: HttpRequest) -> HttpResponse:
    form = NewSessionForm(request.POST or None, request.FILES or None, user=request.user)
    problems: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            scenario = data["scenario"] or class_sessions.store_uploaded_scenario(
                owner=request.user,
                data=data["scenario_file"].read(class_sessions.MAX_SCENARIO_BYTES + 1),
                shared=data["share_scenario"],
            )
            session = class_sessions.create_session(
                owner=request.user,
                title=data["title"] or "",
                scenario=scenario,
                games=data["games"],
                students=data["students"],
                assignment=data["assignment"],
                roster=form.roster_lines,
                settings=GameDefaults(
                    rounds=data["rounds"],
                    attempts=data["attempts"],
                    compliance=data["compliance"],
                    regime=data["regime"],
                    deadlines=Deadlines(
                        level1=data["level1_minutes"] * 60,
                        level2=data["level2_minutes"] * 60,
                        compliance=Deadlines().compliance,
                    ),
                ),
            )
        except class_sessions.SessionError as error:
            problems = list(error.problems)
        else:
            return redirect("session_dashboard", code=session.code)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "classroom/new.html", {"form": form, "problems": problems}, status=status
    )


def _join_url(request: HttpRequest, session: ClassSession) -> str:
    return request.build_absolute_uri(reverse("session_join", args=[session.code]))


@login_required
def dashboard(request: HttpRequest, code: str) -> HttpResponse:
    session = _owned(request, code)
    games = class_sessions.session_games(session)
    seat_choices = [
        {
            "game": number,
            "code": game.code,
            "seats": [
                {"key": s.key, "role": s.role, "country": s.country}
                for s in Seat.objects.filter(game=game).order_by("order")
            ],
        }
        for number, game in enumerate(games, start=1)
    ]
    return render(
        request,
        "classroom/dashboard.html",
        {
            "session": session,
            "join_url": _join_url(request, session),
            "socket_path": f"/ws/sessions/{session.code}/",
            "seat_choices": seat_choices,
            "games": games,
        },
    )


@login_required
def qr_code(request: HttpRequest, code: str) -> HttpResponse:
    """The join link as a QR code, SVG."""
    session = _owned(request, code)
    qr = segno.make(_join_url(request, session), error="m")
    buffer = io.BytesIO()
    # A standalone file (with its namespace), so it works as an <img> and as a download.
    qr.save(buffer, kind="svg", scale=8, border=2, title=f"Join code {session.code}")
    return HttpResponse(buffer.getvalue(), content_type="image/svg+xml")


def session_join(request: HttpRequest, code: str) -> HttpResponse:
    """The session's link (and QR code): the front page's join form with the code filled in."""
    session = class_sessions.session_by_code(code)
    if session is None:
        raise Http404("No session has this code.")
    return redirect(f"{reverse('home')}?code={session.code}#join")


def waiting_room(request: HttpRequest, code: str) -> HttpResponse:
    """Where a student who joined the session waits for a seat and the start."""
    session = class_sessions.session_by_code(code)
    if session is None:
        raise Http404("No session has this code.")
    player = selectors.player_of(request.session)
    member = (
        SessionMember.objects.filter(session=session, player=player).first() if player else None
    )
    if member is None:
        return redirect("session_join", code=session.code)
    return render(
        request,
        "classroom/waiting.html",
        {
            "session": session,
            "member": member,
            "status_url": reverse("session_status", args=[session.code]),
        },
    )


def waiting_status(request: HttpRequest, code: str) -> JsonResponse:
    """The waiting student's seat, if any, as JSON (polled by the waiting room)."""
    session = class_sessions.session_by_code(code)
    player = selectors.player_of(request.session)
    if session is None or player is None:
        return JsonResponse({"joined": False}, status=404)
    member = SessionMember.objects.filter(session=session, player=player).first()
    if member is None:
        return JsonResponse({"joined": False}, status=404)
    seat = Seat.objects.filter(game__session=session, player=player).select_related("game").first()
    if seat is None and member.game_id and member.seat_key:
        class_sessions.seat_member(member)
        seat = (
            Seat.objects.filter(game__session=session, player=player).select_related("game").first()
        )
    return JsonResponse(
        {
            "joined": True,
            "seated": seat is not None,
            "play_url": reverse("play", args=[seat.game.code]) if seat is not None else None,
            "started": session.started is not None,
        }
    )


urlpatterns: list[URLPattern] = [
    path("sessions/", session_list, name="session_list"),
    path("sessions/new/", new_session, name="new_session"),
    path("sessions/<str:code>/", dashboard, name="session_dashboard"),
    path("sessions/<str:code>/qr.svg", qr_code, name="session_qr"),
    path("s/<str:code>/", session_join, name="session_join"),
    path("s/<str:code>/wait/", waiting_room, name="session_wait"),
    path("s/<str:code>/wait/status/", waiting_status, name="session_status"),
    *debrief.urlpatterns,
]
