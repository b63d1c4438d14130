"""Class sessions over HTTP: instructor accounts, creating a session (built-in or uploaded
scenario, roster), students joining by code and being seated, and who may see what."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.models import Player
from negotiation import class_sessions, services
from negotiation.models import ClassSession, Game, Scenario, Seat, SessionMember

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture(autouse=True)
def scenarios(settings: Any) -> None:
    settings.RATIFY_BOT_DELAY = 0
    services.state_cache.clear()
    call_command("load_scenarios", verbosity=0)


def instructor(name: str = "ada") -> tuple[Any, Client]:
    user = User.objects.create_user(name, f"{name}@example.org", "a-long-passphrase-42")
    client = Client()
    client.force_login(user)
    return user, client


def session_form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": "IR 101, Tuesday",
        "scenario": Scenario.objects.get(slug="imf-weak").pk,
        "games": "2",
        "assignment": "random",
        "rounds": "1",
        "attempts": "2",
        "level1_minutes": "15",
        "level2_minutes": "3",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def student(code: str, name: str) -> Client:
    client = Client()
    response = client.post(reverse("join"), {"code": code, "name": name})
    assert response.status_code == 302, response.content[:500]
    return client


# ---------------------------------------------------------------------------------------------
# Accounts


def test_an_instructor_signs_up_and_is_signed_in_at_once() -> None:
    client = Client()
    page = client.get(reverse("signup"))
    assert page.status_code == 200 and b"csrfmiddlewaretoken" in page.content
    response = client.post(
        reverse("signup"),
        {
            "username": "grace",
            "email": "Grace@Example.org",
            "password1": "correct-horse-battery",
            "password2": "correct-horse-battery",
            "next": reverse("new_session"),
        },
    )
    assert response.status_code == 302 and response["Location"] == reverse("new_session")
    assert User.objects.get(username="grace").email == "grace@example.org"
    assert client.get(reverse("new_session")).status_code == 200


def test_sign_up_refuses_a_taken_address_a_weak_password_and_a_foreign_next() -> None:
    User.objects.create_user("ada", "ada@example.org", "a-long-passphrase-42")
    client = Client()
    response = client.post(
        reverse("signup"),
        {"username": "ada2", "email": "ADA@example.org", "password1": "x", "password2": "y"},
    )
    assert response.status_code == 400
    assert b"already uses this address" in response.content
    assert b"password fields didn" in response.content
    response = client.post(
        reverse("signup"),
        {
            "username": "bob",
            "email": "bob@example.org",
            "password1": "correct-horse-battery",
            "password2": "correct-horse-battery",
            "next": "https://elsewhere.example/",
        },
    )
    assert response.status_code == 302 and response["Location"] == reverse("home")


def test_the_password_reset_mail_carries_a_link_that_sets_a_new_password() -> None:
    User.objects.create_user("ada", "ada@example.org", "a-long-passphrase-42")
    client = Client()
    assert client.get(reverse("password_reset")).status_code == 200
    response = client.post(reverse("password_reset"), {"email": "ada@example.org"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and "Reset your Ratify password" in mail.outbox[0].subject
    link = re.search(r"http://testserver(/accounts/reset/\S+)", str(mail.outbox[0].body))
    assert link is not None
    form_page = client.get(link.group(1), follow=True)
    assert b"Choose a new password" in form_page.content
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "another-long-passphrase", "new_password2": "another-long-passphrase"},
    )
    assert done.status_code == 302
    assert Client().login(username="ada", password="another-long-passphrase")


def test_sign_in_sign_out_and_the_login_page_links_sign_up_and_reset() -> None:
    User.objects.create_user("ada", "ada@example.org", "a-long-passphrase-42")
    client = Client()
    page = client.get(reverse("login"))
    assert reverse("signup").encode() in page.content
    assert reverse("password_reset").encode() in page.content
    response = client.post(
        reverse("login"), {"username": "ada", "password": "a-long-passphrase-42"}
    )
    assert response.status_code == 302
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("new_session")).status_code == 302


# ---------------------------------------------------------------------------------------------
# Creating sessions


def test_a_session_of_a_builtin_scenario_creates_its_games_in_the_lobby() -> None:
    user, client = instructor()
    response = client.post(reverse("new_session"), session_form())
    session = ClassSession.objects.get(owner=user)
    assert response.status_code == 302
    assert response["Location"] == reverse("session_dashboard", args=[session.code])
    games = list(session.games.all())
    assert len(games) == 2
    assert all(g.status == Game.Status.LOBBY and g.created_by == user for g in games)
    assert all(g.seats.count() == 8 for g in games)
    dashboard = client.get(response["Location"])
    assert dashboard.status_code == 200
    assert session.code.encode() in dashboard.content
    assert b"/ws/sessions/" in dashboard.content


def test_the_number_of_games_follows_the_class_size_when_not_given() -> None:
    user, client = instructor()
    client.post(reverse("new_session"), session_form(games="", students="30"))
    # imf-weak has 8 seats: 30 students need 4 games.
    assert ClassSession.objects.get(owner=user).games.count() == 4


def test_an_uploaded_scenario_is_checked_and_every_problem_shown_by_its_path() -> None:
    user, client = instructor()
    bad = SimpleUploadedFile("bad.yaml", b"slug: broken\ntitle: Broken\nissues: []\n")
    response = client.post(reverse("new_session"), session_form(scenario="", scenario_file=bad))
    assert response.status_code == 400
    assert b"issues" in response.content
    assert not ClassSession.objects.exists()
    assert not Scenario.objects.filter(owner=user).exists()


def test_an_uploaded_scenario_is_stored_as_the_instructors_own() -> None:
    user, client = instructor()
    text = (Scenario.objects.get(slug="gatt").definition,)
    import json

    upload = SimpleUploadedFile("mine.json", json.dumps(text[0]).encode())
    response = client.post(
        reverse("new_session"), session_form(scenario="", scenario_file=upload, games="1")
    )
    assert response.status_code == 302, response.content[:2000]
    mine = Scenario.objects.get(owner=user)
    assert not mine.builtin and not mine.shared and mine.slug.startswith("gatt-")
    assert ClassSession.objects.get(owner=user).scenario == mine


def test_a_hostile_scenario_file_is_refused_with_a_message() -> None:
    _, client = instructor()
    for name, data in [
        ("deep.yaml", b"a: " + b"[" * 5000 + b"]" * 5000),
        ("tag.yaml", b"!!python/object/apply:os.system ['true']\n"),
        ("big.yaml", b"x" * (class_sessions.MAX_SCENARIO_BYTES + 1)),
        ("latin1.yaml", "titel: \xe9".encode("latin-1")),
    ]:
        upload = SimpleUploadedFile(name, data)
        response = client.post(
            reverse("new_session"), session_form(scenario="", scenario_file=upload)
        )
        assert response.status_code == 400, name
        assert b"session-problems" in response.content, name
    assert not ClassSession.objects.exists()


def test_someone_elses_private_scenario_cannot_be_chosen_but_a_shared_one_can() -> None:
    owner, _ = instructor("owner")
    private = Scenario.objects.create(
        slug="private-x",
        title="Private",
        definition=Scenario.objects.get(slug="gatt").definition,
        owner=owner,
    )
    shared = Scenario.objects.create(
        slug="shared-x",
        title="Shared",
        definition=Scenario.objects.get(slug="gatt").definition,
        owner=owner,
        shared=True,
    )
    _other, client = instructor("other")
    refused = client.post(reverse("new_session"), session_form(scenario=private.pk))
    assert refused.status_code == 400
    assert client.post(reverse("new_session"), session_form(scenario=shared.pk)).status_code == 302
    assert b"Private" not in client.get(reverse("new_game")).content
    assert b"Private" not in client.get(reverse("home")).content
    assert client.post(reverse("new_game"), {"scenario": private.pk}).status_code == 200


def test_a_roster_is_read_and_its_problems_are_named_by_line() -> None:
    lines = class_sessions.parse_roster(
        b"\xef\xbb\xbfName,Game,Seat\nAmina Diallo,1,mer-chief\n  Bo  Chen ,,\n\n"
    )
    assert lines == [
        class_sessions.RosterLine("Amina Diallo", 1, "mer-chief"),
        class_sessions.RosterLine("Bo Chen", None, ""),
    ]
    with pytest.raises(class_sessions.SessionError) as refused:
        class_sessions.parse_roster(b"name,game,seat\n,1,x\nAl,1,\nAl,,\nal,,\nZed,99,x\n")
    problems = refused.value.problems
    assert problems == (
        "roster line 2: the name is empty",
        "roster line 3: give both game and seat, or neither",
        "roster line 5: 'al' is also on line 4",
        "roster line 6: game must be a number from 1 to 60",
    )
    with pytest.raises(class_sessions.SessionError, match="needs a 'name' column"):
        class_sessions.parse_roster(b"student,seat\nA,b\n")


def test_roster_seats_must_exist_and_be_given_once() -> None:
    _user, client = instructor()
    roster = SimpleUploadedFile(
        "roster.csv", b"name,game,seat\nA,1,mer-chief\nB,1,mer-chief\nC,3,imf-md\nD,1,nobody\n"
    )
    response = client.post(reverse("new_session"), session_form(assignment="roster", roster=roster))
    assert response.status_code == 400
    text = response.content.decode()
    assert "B and A are both given game 1, seat mer-chief" in text
    assert "given game 3 of only 2" in text
    assert "seat &#x27;nobody&#x27;" in text or "seat 'nobody'" in text
    assert not ClassSession.objects.exists()


# ---------------------------------------------------------------------------------------------
# Students joining


def test_random_seating_spreads_students_over_the_games() -> None:
    user, client = instructor()
    client.post(reverse("new_session"), session_form())
    session = ClassSession.objects.get(owner=user)
    clients = [student(session.code, f"Student {n}") for n in range(6)]
    seats = Seat.objects.filter(game__session=session, player__isnull=False)
    assert seats.count() == 6
    per_game = Counter(s.game_id for s in seats)
    assert sorted(per_game.values()) == [3, 3]
    # Chiefs first: both chiefs of both games are people.
    assert {s.key for s in seats if s.role == "chief"} == {"mer-chief", "imf-md"}
    assert sum(1 for s in seats if s.role == "chief") == 4
    status = clients[0].get(reverse("session_status", args=[session.code])).json()
    assert status["seated"] and status["play_url"].startswith("/g/")
    assert clients[0].get(reverse("session_wait", args=[session.code])).status_code == 200


def test_joining_twice_keeps_one_seat() -> None:
    user, client = instructor()
    client.post(reverse("new_session"), session_form())
    session = ClassSession.objects.get(owner=user)
    again = student(session.code, "Lee")
    again.post(reverse("join"), {"code": session.code, "name": "Lee"})
    assert SessionMember.objects.filter(session=session).count() == 1
    assert Seat.objects.filter(game__session=session, player__isnull=False).count() == 1


def test_a_roster_student_gets_their_seat_by_name_and_others_wait() -> None:
    user, client = instructor()
    roster = SimpleUploadedFile("r.csv", b"name,game,seat\nAmina Diallo,2,imf-md\nBo Chen,,\n")
    response = client.post(reverse("new_session"), session_form(assignment="roster", roster=roster))
    assert response.status_code == 302
    session = ClassSession.objects.get(owner=user)
    second = list(session.games.order_by("pk"))[1]
    amina = student(session.code, "amina diallo")
    seat = Seat.objects.get(game=second, key="imf-md")
    assert seat.player is not None and seat.player.display_name == "amina diallo"
    assert amina.get(reverse("session_status", args=[session.code])).json()["seated"]
    bo = student(session.code, "Bo Chen")
    assert not bo.get(reverse("session_status", args=[session.code])).json()["seated"]
    stranger = student(session.code, "Walk In")
    assert not stranger.get(reverse("session_status", args=[session.code])).json()["seated"]
    assert SessionMember.objects.filter(session=session).count() == 3


def test_manual_seating_waits_for_the_instructor() -> None:
    user, client = instructor()
    client.post(reverse("new_session"), session_form(assignment="manual"))
    session = ClassSession.objects.get(owner=user)
    waiting = student(session.code, "Kim")
    assert not waiting.get(reverse("session_status", args=[session.code])).json()["seated"]
    member = SessionMember.objects.get(session=session)
    game = session.games.order_by("pk").first()
    assert game is not None
    outcome = class_sessions.assign(member=member, game=game, seat_key="mer-unions")
    assert outcome.accepted
    status = waiting.get(reverse("session_status", args=[session.code])).json()
    assert status["seated"] and status["play_url"] == reverse("play", args=[game.code])
    assert class_sessions.assign_rest_at_random(session) == 0


def test_the_session_link_prefills_the_join_form() -> None:
    user, client = instructor()
    client.post(reverse("new_session"), session_form())
    session = ClassSession.objects.get(owner=user)
    response = Client().get(reverse("session_join", args=[session.code]), follow=True)
    assert f'value="{session.code}"'.encode() in response.content


def test_a_join_name_is_cleaned_of_control_characters_and_spaces() -> None:
    user, client = instructor()
    client.post(reverse("new_session"), session_form())
    session = ClassSession.objects.get(owner=user)
    student(session.code, "  Ana\u202e\t  Li\n ")
    assert Player.objects.get().display_name == "Ana Li"
    refused = Client().post(reverse("join"), {"code": session.code, "name": "A\u0000B"})
    assert refused.status_code == 400 and b"Null characters are not allowed" in refused.content


# ---------------------------------------------------------------------------------------------
# Who sees what


def test_only_the_owner_sees_a_session_and_its_qr_code() -> None:
    owner, client = instructor("owner")
    client.post(reverse("new_session"), session_form())
    session = ClassSession.objects.get(owner=owner)
    qr = client.get(reverse("session_qr", args=[session.code]))
    assert qr.status_code == 200 and qr["Content-Type"] == "image/svg+xml"
    assert b"<svg" in qr.content and b'xmlns="http://www.w3.org/2000/svg"' in qr.content
    _, other = instructor("other")
    for name in ("session_dashboard", "session_qr"):
        assert other.get(reverse(name, args=[session.code])).status_code == 404
        anonymous = Client().get(reverse(name, args=[session.code]))
        assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert session.code.encode() not in other.get(reverse("session_list")).content
    assert session.code.encode() in client.get(reverse("session_list")).content


def test_the_forms_need_a_csrf_token() -> None:
    user = User.objects.create_user("ada", "ada@example.org", "a-long-passphrase-42")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(reverse("new_session"), session_form()).status_code == 403
    assert Client(enforce_csrf_checks=True).post(reverse("signup"), {}).status_code == 403
    assert not ClassSession.objects.exists()
