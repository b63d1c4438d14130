"""The debrief of a class session (``negotiation.debrief``): outcomes, shares of the gains
against win-set sizes, reciprocity, time to agreement and questions, across the games.

The session is GATT with six games played through ``services.submit`` by a script, each to a
different end (compliance on, two attempts per round):

1. cooperation at (5, 5), both governments comply;
2. cooperation at (4, 5), the compliance stage ended by the instructor (no choice: comply);
3. involuntary defection: (5, 5) agreed twice, the Farm lobby and the Import-competing
   industries of Atlantis vote no both times;
4. discord: proposals but no acceptance, then the instructor ends the game;
5. voluntary defection at (6, 7): Borduria defects in the compliance stage;
6. never started.

Every stored event of game ``n`` gets the time ``T0 + 10 * seq`` seconds, so the times from
the start (the first ``phase_changed``) are known.
"""

from __future__ import annotations

import html
import json
import math
import random
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from negotiation import class_sessions, debrief, services
from negotiation.engine import analytics
from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.scenario import GameDefaults, scenario_from_dict
from negotiation.engine.winset import Analysis
from negotiation.models import ClassSession, Game, GameEvent, Scenario
from tests.engine.rules_support import one_issue_scenario

pytestmark = pytest.mark.django_db

User = get_user_model()
SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_750_000_000.0
EVERYONE = ("A1", "A2", "A3", "B1", "B2", "B3")


@pytest.fixture(autouse=True)
def clean_caches() -> None:
    services.state_cache.clear()
    debrief.debriefs.clear()
    call_command("load_scenarios", verbosity=0)


def run(game: Game, command: c.Command) -> None:
    outcome = services.submit(game_id=game.pk, command=command, issuer="test")
    assert outcome.accepted, (command, outcome)


def agree(game: Game, values: tuple[float, ...]) -> None:
    run(game, c.Propose("A-chief", values))
    state = services.load_state(game.pk)
    mine = max(p.proposal_id for p in state.proposals.values() if p.by == "A-chief")
    run(game, c.Accept("B-chief", mine))
    assert services.load_state(game.pk).phase == "level2"


def vote(game: Game, no: tuple[str, ...] = ()) -> None:
    for seat in EVERYONE:
        run(game, c.CastBallot(seat, seat not in no))


def seat_everyone(game: Game) -> None:
    for member in services.load_state(game.pk).scenario.members:
        run(game, c.TakeSeat(c.SYSTEM, member.key, f"player-{member.key}", name=member.key))


def play_session_games(games: list[Game]) -> None:
    cooperation, second, involuntary, discord, voluntary, _lobby = games
    for game in games:
        seat_everyone(game)
    for game in games[:5]:
        run(game, c.StartGame(c.INSTRUCTOR))

    run(cooperation, c.Propose("A-chief", (2.0, 9.0)))
    run(cooperation, c.Propose("B-chief", (9.0, 2.0)))
    run(cooperation, c.Propose("A-chief", (4.0, 7.0)))
    run(cooperation, c.Propose("B-chief", (8.0, 4.0)))
    agree(cooperation, (5.0, 5.0))
    vote(cooperation)
    run(cooperation, c.ChooseCompliance("A-chief", True))
    run(cooperation, c.ChooseCompliance("B-chief", True))

    agree(second, (4.0, 5.0))
    vote(second)
    run(second, c.AdvancePhase(c.INSTRUCTOR))

    for _ in range(2):
        agree(involuntary, (5.0, 5.0))
        vote(involuntary, no=("A2", "A3"))

    run(discord, c.Propose("A-chief", (2.0, 9.0)))
    run(discord, c.Propose("B-chief", (9.0, 2.0)))
    run(discord, c.Propose("A-chief", (3.0, 8.0)))
    run(discord, c.EndGame(c.INSTRUCTOR))

    agree(voluntary, (6.0, 7.0))
    vote(voluntary)
    run(voluntary, c.ChooseCompliance("A-chief", True))
    run(voluntary, c.ChooseCompliance("B-chief", False))

    for game in games[:5]:
        assert services.load_state(game.pk).ended, game
    for game in games:
        # Known times: event n of every game was stored at T0 + 10 n seconds.
        for seq in GameEvent.objects.filter(game=game).values_list("seq", flat=True):
            GameEvent.objects.filter(game=game, seq=seq).update(
                created=datetime.fromtimestamp(T0 + 10 * seq, tz=UTC)
            )


def instructor(name: str) -> tuple[Any, Client]:
    user = User.objects.create_user(name, f"{name}@example.org", "a-long-passphrase-42")
    client = Client()
    client.force_login(user)
    return user, client


@pytest.fixture
def played() -> tuple[ClassSession, list[Game], Client]:
    owner, client = instructor("keohane")
    session = class_sessions.create_session(
        owner=owner,
        title="IR 101",
        scenario=Scenario.objects.get(slug="gatt"),
        games=6,
        settings=GameDefaults(rounds=1, attempts=2, compliance=True),
    )
    games = class_sessions.session_games(session)
    play_session_games(games)
    return session, games, client


def scenario_of(game: Game) -> Any:
    created = services.log_of(game.pk)[0]
    assert isinstance(created, e.GameCreated)
    return scenario_from_dict(created.scenario)


def expected(game: Game) -> analytics.Debrief:
    """The analytics of the game, computed here from scratch."""
    return analytics.debrief(services.log_of(game.pk), Analysis(scenario_of(game)))


def page_of(client: Client, session: ClassSession) -> tuple[Any, str]:
    response = client.get(reverse("session_debrief", args=[session.code]))
    assert response.status_code == 200
    return response, response.content.decode()


def attribute(text: str, testid: str, name: str) -> str:
    """The value of attribute ``name`` on the element with ``data-testid=testid``."""
    start = text.index(f'data-testid="{testid}"')
    tag_start = text.rindex("<", 0, start)
    tag = text[tag_start : text.index(">", start)]
    marker = f' {name}="'
    at = tag.index(marker) + len(marker)
    return html.unescape(tag[at : tag.index('"', at)])


def test_the_page_lists_each_games_outcome_with_the_reason_of_the_analytics(
    played: tuple[ClassSession, list[Game], Client],
) -> None:
    session, games, client = played
    _, text = page_of(client, session)
    labels = [
        analytics.COOPERATION,
        analytics.COOPERATION,
        analytics.INVOLUNTARY,
        analytics.DISCORD,
        analytics.VOLUNTARY,
    ]
    for game, label in zip(games, labels, strict=False):
        summary = expected(game)
        assert [o.label for o in summary.rounds] == [label]
        assert attribute(text, f"debrief-outcome-{game.code}-1", "data-label") == label
        assert html.escape(summary.rounds[0].reason) in text
        assert f'href="/g/{game.code}/replay/"' in text
    assert "Atlantis did not ratify" in expected(games[2]).rounds[0].reason
    assert "Borduria chose to defect" in expected(games[4]).rounds[0].reason
    assert "Not started yet." in text  # game 6
    assert attribute(text, f"debrief-outcome-{games[5].code}", "data-label") == ""
    counts = {
        analytics.HARMONY: 0,
        analytics.COOPERATION: 2,
        analytics.DISCORD: 1,
        analytics.INVOLUNTARY: 1,
        analytics.VOLUNTARY: 1,
    }
    for label, rounds in counts.items():
        assert attribute(text, f"debrief-count-{label}", "data-rounds") == str(rounds)
        assert attribute(text, f"debrief-count-{label}", "data-games") == str(rounds)


def test_reciprocity_numbers_are_those_of_the_analytics_for_each_game(
    played: tuple[ClassSession, list[Game], Client],
) -> None:
    session, games, client = played
    _, text = page_of(client, session)
    measured = 0
    for game in games:
        for pair in expected(game).reciprocity:
            testid = f"debrief-reciprocity-{game.code}-{'-'.join(pair.countries)}"
            for name, value in (("specific", pair.specific), ("diffuse", pair.diffuse)):
                shown = attribute(text, testid, f"data-{name}")
                if value is None:
                    assert shown == ""
                else:
                    measured += 1
                    assert float(shown) == pytest.approx(value, abs=1e-6)
            assert attribute(text, testid, "data-concessions") == str(len(pair.concessions))
    # The cooperation game traded concessions: there was something to measure.
    assert measured >= 2


def test_the_share_chart_has_one_point_per_country_of_each_agreement(
    played: tuple[ClassSession, list[Game], Client],
) -> None:
    session, games, client = played
    response = client.get(reverse("session_debrief_chart", args=[session.code, "share-vs-winset"]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("image/svg+xml")
    assert "Content-Disposition" not in response
    root = ET.fromstring(response.content)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}desc") is not None
    points = [el for el in root.iter() if el.get("class") == "point"]
    agreed = [games[0], games[1], games[4]]
    wanted = set()
    for game in agreed:
        summary = expected(game)
        assert summary.share_of_gains is not None
        grid = scenario_of(game).grid_size
        for country, share in summary.share_of_gains.items():
            winset = summary.winset_sizes[country] / grid
            wanted.add(
                (
                    f"Game {games.index(game) + 1} ({game.code})",
                    country,
                    f"{round(winset * 100, 2):g}%",
                    f"{round(share * 100, 2):g}%",
                )
            )
    drawn = {
        (p.get("data-game"), p.get("data-country"), p.get("data-winset"), p.get("data-share"))
        for p in points
    }
    assert len(points) == 6 and drawn == wanted
    # The shares differ between the agreements: (5, 5) and (4, 5) split the gains differently.
    assert len({p.get("data-share") for p in points if p.get("data-country") == "A"}) >= 2


def test_the_reading_gives_the_correlation_with_its_n(
    played: tuple[ClassSession, list[Game], Client],
) -> None:
    session, _, client = played
    data = debrief.session_debrief(session)
    xs = [p.winset for p in data.schelling.points]
    ys = [p.share for p in data.schelling.points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    r = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / math.sqrt(
        sum((x - mean_x) ** 2 for x in xs) * sum((y - mean_y) ** 2 for y in ys)
    )
    assert data.schelling.r == pytest.approx(r)
    reading = data.schelling.reading
    assert f"r = {r:+.2f}" in reading and "n = 6 points from 3 agreements" in reading
    assert "a question for the class, not evidence" in reading
    assert data.schelling.trend is not None
    _, text = page_of(client, session)
    assert html.escape(reading) in text


def test_too_few_or_no_agreements_are_said_so() -> None:
    owner, client = instructor("putnam")
    session = class_sessions.create_session(
        owner=owner, title="Small", scenario=Scenario.objects.get(slug="gatt"), games=2
    )
    first, second = class_sessions.session_games(session)
    for game in (first, second):
        seat_everyone(game)
        run(game, c.StartGame(c.INSTRUCTOR))
    run(first, c.EndGame(c.INSTRUCTOR))
    data = debrief.session_debrief(session)
    assert data.schelling.points == () and data.schelling.r is None
    assert data.schelling.reading.startswith("No game has an agreement in force yet")
    agree(second, (5.0, 5.0))
    vote(second)
    data = debrief.session_debrief(session)
    assert len(data.schelling.points) == 2 and data.schelling.trend is None
    assert "too few agreements to read anything into its sign" in data.schelling.reading
    svg = client.get(reverse("session_debrief_chart", args=[session.code, "share-vs-winset"]))
    assert len([el for el in ET.fromstring(svg.content).iter() if el.get("class") == "point"]) == 2


def test_harmony_is_labelled_with_its_reason() -> None:
    owner, client = instructor("axelrod")
    scenario = one_issue_scenario([1, 1])
    row = Scenario.objects.create(
        slug="counting", title="Counting", definition=scenario.to_dict(), owner=owner
    )
    session = class_sessions.create_session(owner=owner, title="Harmony", scenario=row, games=1)
    (game,) = class_sessions.session_games(session)
    seat_everyone(game)
    run(game, c.StartGame(c.INSTRUCTOR))
    run(game, c.Propose("A-chief", (10.0,)))
    run(game, c.Accept("B-chief", 1))
    for seat in ("A1", "A2", "B1"):
        run(game, c.CastBallot(seat, True))
    _, text = page_of(client, session)
    (outcome,) = expected(game).rounds
    assert outcome.label == analytics.HARMONY
    assert attribute(text, f"debrief-outcome-{game.code}-1", "data-label") == analytics.HARMONY
    assert html.escape(outcome.reason) in text
    assert f"{game.code}) was harmony" in html.unescape(text)


def test_times_from_the_start_come_from_the_stored_events(
    played: tuple[ClassSession, list[Game], Client],
) -> None:
    session, games, client = played
    _, text = page_of(client, session)
    for game in games:
        log = services.log_of(game.pk)
        seqs = {
            kind: next((n for n, ev in enumerate(log, 1) if isinstance(ev, kind)), None)
            for kind in (e.PhaseChanged, e.TentativeAgreement, e.AgreementInForce)
        }
        start = seqs[e.PhaseChanged]
        for kind, name in ((e.TentativeAgreement, "tentative"), (e.AgreementInForce, "in-force")):
            seq = seqs[kind]
            shown = attribute(text, f"debrief-time-{game.code}", f"data-{name}")
            if seq is None or start is None:
                assert shown == ""
            else:
                assert float(shown) == 10 * (seq - start)
    chart = client.get(reverse("session_debrief_chart", args=[session.code, "agreement-times"]))
    root = ET.fromstring(chart.content)
    bars = [el.get("class") or "" for el in root.iter()]
    # Games 1, 2, 3 and 5 reached a tentative agreement; 1, 2 and 5 entered into force.
    assert bars.count("bar bar--tentative") == 4
    assert bars.count("bar bar--in-force") == 3
    assert "Game 6" in "".join(root.itertext()) and "not started" in "".join(root.itertext())


def test_questions_name_what_happened_where(
    played: tuple[ClassSession, list[Game], Client],
) -> None:
    session, games, client = played
    asked = debrief.session_debrief(session).questions
    text = "\n".join(asked)
    assert (
        f"Game 3 ({games[2].code}) ended in involuntary defection: the chiefs agreed, but "
        "Atlantis did not ratify (Farm lobby and Import-competing industries voted no)"
    ) in text
    assert f"In Game 5 ({games[4].code}), round 1:" in text and "Borduria" in text
    assert f"Game 4 ({games[3].code}) ended in discord" in text
    assert "Atlantis has the smallest win-set (41 of 121 deals)" in text
    assert "Atlantis ratifies by more than 1/2 of the weight" in text
    _, page = page_of(client, session)
    for question in asked:
        assert html.escape(question) in page


def test_one_analysis_serves_every_game_of_the_scenario(
    played: tuple[ClassSession, list[Game], Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, games, _ = played
    used: list[int] = []
    real = analytics.debrief

    def spy(events: Any, analysis: Analysis | None = None) -> analytics.Debrief:
        assert analysis is not None
        used.append(id(analysis))
        return real(events, analysis)

    monkeypatch.setattr(analytics, "debrief", spy)
    debrief.session_debrief(session)
    assert len(used) == len(games) and len(set(used)) == 1
    # Computed once per state of the games: asked again, nothing is recomputed.
    debrief.session_debrief(session)
    assert len(used) == len(games)


def test_charts_download_as_svg_attachments_and_the_numbers_as_json(
    played: tuple[ClassSession, list[Game], Client],
) -> None:
    session, _, client = played
    for name in debrief.CHART_NAMES:
        url = reverse("session_debrief_chart", args=[session.code, name])
        response = client.get(url, {"download": "1"})
        assert response.status_code == 200
        assert response["Content-Type"].startswith("image/svg+xml")
        assert (
            response["Content-Disposition"]
            == f'attachment; filename="ratify-{session.code}-{name}.svg"'
        )
        assert "default-src 'none'" in response["Content-Security-Policy"]
        ET.fromstring(response.content)
    assert client.get(
        reverse("session_debrief_chart", args=[session.code, "nope"])
    ).status_code == (404)
    response = client.get(reverse("session_debrief_json", args=[session.code]))

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} in the JSON")

    data = json.loads(response.content, parse_constant=no_constants)
    assert [g["outcome"]["label"] if g["outcome"] else None for g in data["games"]] == [
        "cooperation",
        "cooperation",
        "involuntary_defection",
        "discord",
        "voluntary_defection",
        None,
    ]
    assert len(data["share_vs_winset"]["points"]) == 6


def test_only_the_owner_sees_the_debrief(
    played: tuple[ClassSession, list[Game], Client],
) -> None:
    session, _, owner = played
    _, stranger = instructor("waltz")
    urls = [
        reverse("session_debrief", args=[session.code]),
        reverse("session_debrief_json", args=[session.code]),
        *(reverse("session_debrief_chart", args=[session.code, n]) for n in debrief.CHART_NAMES),
    ]
    for url in urls:
        assert owner.get(url).status_code == 200
        assert stranger.get(url).status_code == 404
        anonymous = Client().get(url)
        assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert stranger.get(reverse("session_debrief", args=["NOSUCH"])).status_code == 404


def test_the_dashboard_links_to_the_debrief(
    played: tuple[ClassSession, list[Game], Client],
) -> None:
    session, _, client = played
    text = client.get(reverse("session_dashboard", args=[session.code])).content.decode()
    assert attribute(text, "debrief-link", "href") == reverse(
        "session_debrief", args=[session.code]
    )


def test_the_page_has_no_inline_script(
    played: tuple[ClassSession, list[Game], Client],
) -> None:
    session, _, client = played
    _, text = page_of(client, session)
    scripts = [part.split(">", 1)[0] for part in text.split("<script")[1:]]
    assert scripts and all('src="' in tag and 'type="module"' in tag for tag in scripts)


def test_pearson_matches_the_textbook_formula_on_random_data() -> None:
    generator = random.Random(7)
    for _ in range(20):
        xs = [generator.random() for _ in range(12)]
        ys = [2 * x + generator.gauss(0, 0.3) for x in xs]
        mean_x, mean_y = sum(xs) / 12, sum(ys) / 12
        r = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / math.sqrt(
            sum((x - mean_x) ** 2 for x in xs) * sum((y - mean_y) ** 2 for y in ys)
        )
        assert debrief._pearson(xs, ys) == pytest.approx(r)
        slope, intercept = debrief._least_squares(xs, ys)
        residual = [y - (slope * x + intercept) for x, y in zip(xs, ys, strict=True)]
        assert sum(residual) == pytest.approx(0, abs=1e-9)
        assert sum(r * x for r, x in zip(residual, xs, strict=True)) == pytest.approx(0, abs=1e-9)
    assert debrief._pearson([1, 1, 1], [1, 2, 3]) is None
    assert debrief._pearson([1], [2]) is None


def test_the_debrief_of_a_changed_game_is_computed_again(
    played: tuple[ClassSession, list[Game], Client],
) -> None:
    session, games, _ = played
    before = debrief.session_debrief(session)
    lobby = games[5]
    run(lobby, c.StartGame(c.INSTRUCTOR))
    run(lobby, c.EndGame(c.INSTRUCTOR))
    after = debrief.session_debrief(session)
    assert after is not before
    assert [o.label for o in after.games[5].analytics.rounds] == [analytics.DISCORD]
    assert after.counts[2].label == analytics.DISCORD and after.counts[2].rounds == 2
