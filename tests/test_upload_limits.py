"""Hostile scenario files through the real upload form cost bounded time and memory.

Each file is posted to the new-session form by a signed-in instructor, as a browser would (a
multipart upload), and the request is timed and its memory traced (``tracemalloc`` peak, which
also counts the test client's copy of the upload). Every hostile file is refused with its
problem shown and nothing stored; the largest scenario the limits allow is accepted within the
same bounds. The bounds are generous enough for a loaded two-core CI machine: what they catch
is work that grows faster than the file (an alias bomb takes minutes, a grid of a billion
points gigabytes).
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from negotiation import class_sessions, services
from negotiation.engine.scenario import MAX_GRID_POINTS, MAX_NESTING, MAX_NODES
from negotiation.models import ClassSession, Scenario

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

pytestmark = pytest.mark.django_db

#: Wall time and traced memory one upload may take.
MAX_SECONDS = 5.0
MAX_BYTES = 100 * 1024 * 1024


@pytest.fixture(autouse=True)
def scenarios(settings: Any) -> None:
    settings.RATIFY_BOT_DELAY = 0
    services.state_cache.clear()
    call_command("load_scenarios", verbosity=0)


@pytest.fixture
def instructor() -> Client:
    user = get_user_model().objects.create_user("ada", "ada@example.org", "a-long-passphrase-42")
    client = Client()
    client.force_login(user)
    return client


@dataclass(frozen=True)
class Measured:
    status: int
    content: bytes
    seconds: float
    peak_bytes: int


def measure(post: Callable[[], Response]) -> Measured:
    """Send the request twice: timed alone, then with its memory traced (tracing slows Python
    down several times, so the time is not taken then). Both answers must agree."""
    started = time.perf_counter()
    response = post()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    try:
        traced = post()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert traced.status_code == response.status_code
    return Measured(response.status_code, response.content, seconds, peak)


def upload(client: Client, data: bytes, *, name: str = "scenario.yaml") -> Measured:
    """Post ``data`` as the scenario file of a new session (twice, see ``measure``)."""

    def post() -> Response:
        form = {
            "title": "Hostile",
            "scenario": "",
            "games": "1",
            "assignment": "random",
            "rounds": "1",
            "attempts": "2",
            "level1_minutes": "15",
            "level2_minutes": "3",
            "scenario_file": SimpleUploadedFile(name, data),
        }
        return client.post(reverse("new_session"), form)

    return measure(post)


def assert_bounded(measured: Measured) -> None:
    assert measured.seconds < MAX_SECONDS, f"took {measured.seconds:.1f} s"
    assert measured.peak_bytes < MAX_BYTES, f"peaked at {measured.peak_bytes / 2**20:.0f} MiB"


def assert_refused(measured: Measured, *words: str) -> None:
    assert measured.status == 400, measured.content[:500]
    assert b'data-testid="session-problems"' in measured.content
    shown = measured.content.decode()
    for word in words:
        assert word in shown, (word, shown[shown.find("session-problems") :][:800])
    assert not ClassSession.objects.exists()
    assert not Scenario.objects.filter(builtin=False).exists()


# --------------------------------------------------------------------------------------------
# Hostile files


def gatt_yaml(change: Callable[[dict[str, Any]], None] | None = None) -> str:
    """The GATT scenario as JSON text (which is YAML), after ``change``."""
    definition = json.loads(json.dumps(Scenario.objects.get(slug="gatt").definition))
    if change is not None:
        change(definition)
    return json.dumps(definition)


def alias_bomb(levels: int = 9) -> str:
    """A "billion laughs": each anchor lists the previous one ten times (10**levels laughs)."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, levels + 1)]
    return "\n".join(lines)


def test_a_billion_laughs_in_a_valid_scenario_is_refused_at_the_first_alias(
    instructor: Client,
) -> None:
    # The bomb's anchors under an unknown key, the scenario's summary pointing at the last one.
    scenario = json.loads(gatt_yaml())
    text = "bomb:\n" + "\n".join(f"  {line}" for line in alias_bomb().splitlines()) + "\n"
    text += "\n".join(f"{key}: {json.dumps(value)}" for key, value in scenario.items())
    text += "\nsummary: *l9\n"
    measured = upload(instructor, text.encode())
    assert_refused(measured, "aliases (*name) are not supported")
    assert_bounded(measured)


def test_a_merge_key_bomb_is_refused(instructor: Client) -> None:
    # Merge keys copy their mappings: PyYAML's own safe_load spends minutes on these 25 lines.
    lines = ["m0: &m0 {k0: 1, k1: 2}"]
    lines += [
        f"m{n}: &m{n} {{<<: [*m{n - 1}, *m{n - 1}], x{n}: *m{n - 1}, y{n}: *m{n - 1}}}"
        for n in range(1, 25)
    ]
    measured = upload(instructor, "\n".join(lines).encode())
    assert_refused(measured, "aliases (*name) are not supported")
    assert_bounded(measured)


def test_a_grid_of_a_billion_points_is_refused_without_being_built(instructor: Client) -> None:
    def billion(definition: dict[str, Any]) -> None:
        definition["issues"] = [
            {"key": f"issue_{n}", "label": f"Issue {n}", "min": 0, "max": 999, "step": 1}
            for n in range(3)
        ]

    measured = upload(instructor, gatt_yaml(billion).encode())
    assert_refused(measured, f"at most {MAX_GRID_POINTS:,} are allowed", "1,000,000,000 points")
    assert_bounded(measured)


@pytest.mark.parametrize(
    "opening, closing",
    [("[", "]"), ("{a: ", "}")],
    ids=["lists", "mappings"],
)
def test_ten_thousand_levels_of_nesting_are_refused(
    instructor: Client, opening: str, closing: str
) -> None:
    text = "slug: deep\nnested: " + opening * 10_000 + "1" + closing * 10_000 + "\n"
    measured = upload(instructor, text.encode())
    assert_refused(measured, f"nested more than {MAX_NESTING} levels deep")
    assert_bounded(measured)


def test_a_file_of_ten_megabytes_is_refused_by_its_size(instructor: Client) -> None:
    text = "summary: '" + "x" * (10 * 1024 * 1024) + "'\n"
    measured = upload(instructor, text.encode())
    assert_refused(measured, f"larger than {class_sessions.MAX_SCENARIO_BYTES // 1024} KiB")
    assert_bounded(measured)


def test_a_file_just_under_the_size_limit_holding_only_values_is_refused(
    instructor: Client,
) -> None:
    # 256 KiB of "1," is some 130,000 values: read to the end, they cost seconds.
    size = class_sessions.MAX_SCENARIO_BYTES
    text = "countries: [" + "1," * ((size - 20) // 2) + "1]\n"
    assert len(text) <= size
    measured = upload(instructor, text.encode())
    assert_refused(measured, f"more than {MAX_NODES:,} values")
    assert_bounded(measured)


def test_a_python_object_tag_is_refused_and_runs_nothing(instructor: Client, tmp_path: Any) -> None:
    marker = tmp_path / "ran"
    text = f"!!python/object/apply:os.system ['touch {marker}']\n"
    measured = upload(instructor, text.encode())
    assert_refused(measured, "is not valid JSON or YAML")
    assert not marker.exists()
    assert_bounded(measured)


def test_a_roster_of_ten_megabytes_is_refused_by_its_size(instructor: Client) -> None:
    roster = b"name\n" + b"Ada Lovelace\n" * 800_000
    gatt = str(Scenario.objects.get(slug="gatt").pk)

    def post() -> Response:
        form = {
            "title": "Roster",
            "scenario": gatt,
            "assignment": "roster",
            "rounds": "1",
            "attempts": "2",
            "level1_minutes": "15",
            "level2_minutes": "3",
            "roster": SimpleUploadedFile("roster.csv", roster),
        }
        return instructor.post(reverse("new_session"), form)

    measured = measure(post)
    assert measured.status == 400
    assert f"larger than {class_sessions.MAX_ROSTER_BYTES // 1024} KiB" in measured.content.decode()
    assert not ClassSession.objects.exists()
    assert_bounded(measured)


# --------------------------------------------------------------------------------------------
# The largest scenario the limits allow


def test_the_largest_allowed_grid_is_accepted_within_the_same_bounds(instructor: Client) -> None:
    def largest(definition: dict[str, Any]) -> None:
        # 100 x 100 x 1000 = ten million points, the most allowed; ideal points stay on it.
        definition["issues"] = [
            {"key": "a_cut", "label": "A", "min": 0, "max": 99, "step": 1},
            {"key": "b_cut", "label": "B", "min": 0, "max": 99, "step": 1},
            {"key": "c_cut", "label": "C", "min": 0, "max": 999, "step": 1},
        ]
        definition["no_agreement"] = {"a_cut": 0, "b_cut": 0, "c_cut": 0}
        for country in definition["countries"]:
            for member in (country["chief"], *country["constituents"]):
                member["ideal"] = {**member["ideal"], "c_cut": 500}
                member["salience"] = {"a_cut": 1, "b_cut": 1, "c_cut": 1}

    measured = upload(instructor, gatt_yaml(largest).encode(), name="largest.json")
    assert measured.status == 302, measured.content[:2000]
    for session in ClassSession.objects.all():  # one per request of ``measure``
        assert session.scenario.definition["issues"][2]["max"] == 999
    assert_bounded(measured)


def test_a_scenario_with_every_country_at_its_largest_is_within_the_reading_limits(
    instructor: Client,
) -> None:
    """Six countries of fifty constituents, every field written out: the most values a valid
    scenario holds, well under ``MAX_NODES`` (and the file under the size limit)."""

    def crowded(definition: dict[str, Any]) -> None:
        template = definition["countries"][0]
        countries = []
        for c in range(6):
            chief = {**template["chief"], "key": f"C{c}-chief", "briefing": "Lead."}
            members = [
                {
                    **template["constituents"][0],
                    "key": f"C{c}-{m}",
                    "name": f"Member {m}",
                    "briefing": "Vote.",
                    "salience": {"a_cut": 1, "b_cut": 2},
                    "weight": 1,
                    "veto": False,
                }
                for m in range(50)
            ]
            countries.append(
                {**template, "key": f"C{c}", "name": f"Country {c}", "chief": chief}
                | {"constituents": members}
            )
        definition["countries"] = countries

    text = gatt_yaml(crowded).encode()
    assert len(text) <= class_sessions.MAX_SCENARIO_BYTES
    measured = upload(instructor, text, name="crowded.json")
    assert measured.status == 302, measured.content[:2000]
    for session in ClassSession.objects.all():  # one per request of ``measure``
        assert len(session.scenario.definition["countries"]) == 6
    assert_bounded(measured)
