"""Security of the web side: CSRF on every form, a Content-Security-Policy without inline
script on every page, the websockets' origin check, and the production settings.

- **CSRF.** Every URL pattern of the site (found by walking ``get_resolver()``, Django's admin
  included) refuses a POST without a CSRF token with 403; the views that handle POST (found by
  the walk) are exactly the ones listed here, and each accepts a POST that carries the token;
  every form that posts, in every template and on every rendered page, carries the token.
- **CSP.** Every page (rendered for the visitor it is for) has a ``Content-Security-Policy``
  whose ``script-src`` is the site alone, and holds no script that would run inline: every
  ``<script>`` has a ``src`` or is JSON data, no element has an ``on*=`` handler and no URL is
  ``javascript:``. The list of pages is checked against the walk, so a new page is not missed.
- **Websockets** refuse a connection from another site's page (cross-site websocket hijacking).
- **Production settings** (``DJANGO_DEBUG=false`` and the documented variables) pass
  ``manage.py check --deploy`` without a warning, and cookies are only sent over HTTPS;
  development settings serve plain HTTP on loopback.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from negotiation import class_sessions, services
from negotiation.charts import charts_for
from negotiation.engine.scenario import scenario_from_dict
from negotiation.models import Scenario, Seat
from tests.fault_support import ORIGIN

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
STATIC_JS = ROOT / "static" / "js"

# --------------------------------------------------------------------------------------------
# Walking the URL configuration

_regex_parser: Any = importlib.import_module("re._parser")


@dataclass(frozen=True)
class Route:
    """A URL pattern of the site: its name (namespaced), an example path it matches, its view."""

    name: str
    path: str
    callback: Any

    @property
    def admin(self) -> bool:
        return self.name.startswith("admin:") or self.path.startswith("/admin/")


def _sample(items: Any) -> str:
    """A string matching a parsed regular expression (the subset URL patterns use)."""
    out: list[str] = []
    for op, arg in items:
        kind = str(op)
        if kind == "LITERAL":
            out.append(chr(arg))
        elif kind == "NOT_LITERAL":
            out.append("y" if chr(arg) == "x" else "x")
        elif kind == "ANY":
            out.append("x")
        elif kind == "IN":
            out.append(_sample_in(arg))
        elif kind == "SUBPATTERN":
            out.append(_sample(arg[-1]))
        elif kind == "BRANCH":
            out.append(_sample(arg[1][0]))
        elif kind in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _, sub = arg
            out.append(_sample(sub) * max(low, 1))
        elif kind != "AT":
            raise ValueError(f"no example for the regular expression element {kind}")
    return "".join(out)


def _sample_in(items: Any) -> str:
    if items and str(items[0][0]) == "NEGATE":
        excluded = {chr(arg) for op, arg in items[1:] if str(op) == "LITERAL"}
        return next(ch for ch in "xyz" if ch not in excluded)
    op, arg = items[0]
    if str(op) == "LITERAL":
        return chr(arg)
    if str(op) == "RANGE":
        return chr(arg[0])
    return "1" if "DIGIT" in str(arg) else "x"


def _walk(patterns: Any, prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for pattern in patterns:
        regex = pattern.pattern.regex.pattern.lstrip("^").removesuffix("\\Z").removesuffix("$")
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, prefix + regex, inner)
        else:
            assert isinstance(pattern, URLPattern)
            path = "/" + _sample(_regex_parser.parse(prefix + regex))
            name = f"{namespace}{pattern.name}" if pattern.name else path
            yield Route(name, path, pattern.callback)


def site_routes() -> list[Route]:
    """Every URL pattern of the site, each with a path it matches (checked: the path resolves
    to the pattern's own view)."""
    routes = list(_walk(get_resolver().url_patterns))
    for route in routes:
        assert resolve(route.path).func == route.callback, route
    return routes


def _handles_post(callback: Any) -> bool:
    """Whether a view does anything with a POST: a class-based view with ``post``, or a
    function whose source reads ``request.POST``, checks for the method or requires it."""
    view_class = getattr(callback, "view_class", None)
    if view_class is not None:
        return hasattr(view_class, "post")
    source = inspect.getsource(inspect.unwrap(callback))
    return any(
        mark in source
        for mark in ("request.POST", '"POST"', "'POST'", "require_POST", "request.FILES")
    )


#: The views that handle POST (outside Django's admin), by URL name: every one is a form (or
#: the replay's note, posted by its script with the form's token).
POST_VIEWS = frozenset(
    {
        "signup",
        "login",
        "logout",
        "password_reset",
        "password_reset_confirm",
        "join",
        "new_game",
        "take_seat",
        "new_session",
        "quick_match",
        "new_match",
        "replay_annotations",
    }
)


@pytest.fixture(scope="module")
def routes() -> list[Route]:
    return site_routes()


def test_the_walk_finds_the_site_and_the_admin(routes: list[Route]) -> None:
    names = {route.name for route in routes}
    assert {"home", "play", "session_dashboard", "replay_annotations", "admin:login"} <= names
    assert len([route for route in routes if route.admin]) > 10


def test_the_views_that_handle_post_are_exactly_the_listed_ones(routes: list[Route]) -> None:
    found = {route.name for route in routes if not route.admin and _handles_post(route.callback)}
    assert found == POST_VIEWS


def test_no_view_is_exempt_from_csrf(routes: list[Route]) -> None:
    exempt = [route.name for route in routes if getattr(route.callback, "csrf_exempt", False)]
    assert exempt == []


@pytest.mark.django_db
def test_every_url_refuses_a_post_without_a_csrf_token(routes: list[Route]) -> None:
    client = Client(enforce_csrf_checks=True)
    answered = {route.name: client.post(route.path, {"x": "1"}).status_code for route in routes}
    assert {name: status for name, status in answered.items() if status != 403} == {}


# --------------------------------------------------------------------------------------------
# A small site to render: a class session with a seated student, its instructor, a stranger


@dataclass
class Site:
    code: str
    session: str
    seat: str
    chart: str
    clients: dict[str, Client] = field(default_factory=dict)


def _build_site() -> Site:
    call_command("load_scenarios", verbosity=0)
    teacher = get_user_model().objects.create_user("teacher", "t@example.org", "long-pass-7261")
    scenario = Scenario.objects.get(slug="gatt")
    session = class_sessions.create_session(
        owner=teacher, title="Tuesday", scenario=scenario, games=1
    )
    game = class_sessions.session_games(session)[0]
    instructor = Client()
    instructor.force_login(teacher)
    student = Client()
    joined = student.post("/join/", {"code": session.code, "name": "Ada"})
    assert joined.status_code == 302, joined.content[:500]
    seat = Seat.objects.get(game=game, player__isnull=False)
    chart = charts_for(scenario_from_dict(scenario.definition))[0]
    return Site(
        game.code,
        session.code,
        seat.key,
        chart,
        {"anonymous": Client(), "student": student, "instructor": instructor},
    )


@pytest.fixture
def site(db: Any, settings: Any) -> Site:
    settings.RATIFY_BOT_DELAY = 0
    services.state_cache.clear()
    return _build_site()


# --------------------------------------------------------------------------------------------
# CSRF: each form's view takes a POST that carries the token


#: A POST each listed view answers without refusing it: (who, path, fields). Fields may be
#: invalid; what matters is that the token is checked and the view runs.
POST_EXAMPLES: dict[str, tuple[str, str, dict[str, str]]] = {
    "signup": ("anonymous", "/accounts/signup/", {"username": "eve"}),
    "login": ("anonymous", "/accounts/login/", {"username": "eve", "password": "x"}),
    "logout": ("instructor", "/accounts/logout/", {}),
    "password_reset": ("anonymous", "/accounts/password-reset/", {"email": "t@example.org"}),
    "password_reset_confirm": ("anonymous", "/accounts/reset/MQ/bad-token/", {}),
    "join": ("anonymous", "/join/", {"code": "{session}", "name": "Bo"}),
    "new_game": ("instructor", "/games/new/", {}),
    "take_seat": ("anonymous", "/g/{code}/seat/", {"name": "Cy"}),
    "new_session": ("instructor", "/sessions/new/", {}),
    "quick_match": ("anonymous", "/matches/quick/", {"name": "Di"}),
    "new_match": ("anonymous", "/matches/new/", {"name": "Ed"}),
    "replay_annotations": (
        "instructor",
        "/g/{code}/replay/annotations/",
        {"seq": "1", "text": "n"},
    ),
}


def _fill(site: Site, text: str) -> str:
    return text.format(code=site.code, session=site.session, seat=site.seat, chart=site.chart)


@pytest.mark.parametrize("name", sorted(POST_VIEWS))
def test_a_form_view_refuses_a_post_without_the_token_and_takes_one_with_it(
    site: Site, name: str
) -> None:
    who, path, data = POST_EXAMPLES[name]
    path = _fill(site, path)
    # The same browser (its cookies: signed in or not), checking CSRF as a real one does.
    client = Client(enforce_csrf_checks=True)
    client.cookies = site.clients[who].cookies
    refused = client.post(path, {k: _fill(site, v) for k, v in data.items()})
    assert refused.status_code == 403 and b"CSRF" in refused.content
    client.get("/accounts/login/")  # any page with a form sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    taken = client.post(
        path, {**{k: _fill(site, v) for k, v in data.items()}, "csrfmiddlewaretoken": token}
    )
    assert taken.status_code != 403 and b"CSRF" not in taken.content, taken.content[:300]


def test_the_post_examples_cover_the_post_views() -> None:
    assert set(POST_EXAMPLES) == POST_VIEWS


_POST_FORM = re.compile(r"<form\b[^>]*\bmethod=\"post\"[^>]*>(.*?)</form>", re.S | re.I)


def test_every_form_that_posts_in_every_template_carries_the_csrf_token() -> None:
    forms: list[tuple[str, str]] = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        text = template.read_text(encoding="utf-8")
        forms += [(str(template.relative_to(ROOT)), body) for body in _POST_FORM.findall(text)]
    assert forms, "no form found: the pattern is wrong"
    missing = [name for name, body in forms if "{% csrf_token %}" not in body]
    assert missing == []


# --------------------------------------------------------------------------------------------
# Pages: the CSP header and no inline script


@dataclass(frozen=True)
class Page:
    """A page as its visitor sees it."""

    who: str
    path: str
    method: str = "GET"
    data: dict[str, str] = field(default_factory=dict)
    status: int = 200


PAGES: dict[str, Page] = {
    "home": Page("anonymous", "/"),
    "home (instructor)": Page("instructor", "/"),
    "join (with a problem)": Page("anonymous", "/join/", "POST", {"code": "ZZZZZZ"}, 400),
    "lobby": Page("anonymous", "/g/{code}/"),
    "seat link": Page("anonymous", "/g/{code}/seat/A3/"),
    "play": Page("student", "/g/{code}/play/"),
    "play (spectator)": Page("anonymous", "/g/{code}/play/"),
    "briefing": Page("student", "/g/{code}/briefing/"),
    "results": Page("anonymous", "/g/{code}/results/"),
    "host": Page("instructor", "/g/{code}/host/"),
    "replay": Page("instructor", "/g/{code}/replay/"),
    "new game": Page("instructor", "/games/new/"),
    "matches lobby": Page("anonymous", "/matches/"),
    "new match": Page("anonymous", "/matches/new/"),
    "sessions list": Page("instructor", "/sessions/"),
    "new session": Page("instructor", "/sessions/new/"),
    "session dashboard": Page("instructor", "/sessions/{session}/"),
    "session debrief": Page("instructor", "/sessions/{session}/debrief/"),
    "waiting room": Page("student", "/s/{session}/wait/"),
    "signup": Page("anonymous", "/accounts/signup/"),
    "login": Page("anonymous", "/accounts/login/"),
    "password reset": Page("anonymous", "/accounts/password-reset/"),
    "password reset sent": Page("anonymous", "/accounts/password-reset/sent/"),
    "password reset link": Page("anonymous", "/accounts/reset/MQ/bad-token/"),
    "password reset done": Page("anonymous", "/accounts/reset/done/"),
}

#: URL names that are not HTML pages (data, pictures, redirects, form targets) or not the
#: site's own (the admin, the static files).
NOT_PAGES = frozenset(
    {
        "logout",
        "take_seat",
        "host_link",
        "session_qr",
        "session_join",
        "session_status",
        "session_debrief_chart",
        "session_debrief_json",
        "open_matches",
        "quick_match",
        "stood_in",
        "replay_data",
        "replay_view",
        "replay_chart",
        "replay_annotations",
    }
)


def test_the_pages_cover_every_html_view(routes: list[Route]) -> None:
    page_views = {resolve(_fill_example(page.path)).url_name for page in PAGES.values()}
    site_views = {
        route.name for route in routes if not route.admin and not route.name.startswith("/")
    }
    assert site_views - NOT_PAGES == page_views


def _fill_example(path: str) -> str:
    return path.format(code="ABCDEF", session="ABCDEF", seat="A1", chart="x")


class _Scan(HTMLParser):
    """What in a page could run: inline scripts, handler attributes, javascript: URLs; and
    the forms that post without a CSRF token."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.script_sources: list[str] = []
        self.posting_forms = 0
        self._form: dict[str, Any] | None = None
        self._script: dict[str, str | None] | None = None
        self._script_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            if name.lower().startswith("on"):
                self.problems.append(f"<{tag} {name}=...>: an inline event handler")
            if value and re.sub(r"[\s\x00-\x1f]", "", value).lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}={value!r}>: a javascript: URL")
        if tag == "script":
            self._script = values
            self._script_text = []
            if values.get("src"):
                self.script_sources.append(str(values["src"]))
        elif tag == "form" and (values.get("method") or "").lower() == "post":
            self.posting_forms += 1
            self._form = {"action": values.get("action"), "token": False}
        elif (
            tag == "input"
            and self._form is not None
            and values.get("name") == "csrfmiddlewaretoken"
            and values.get("value")
        ):
            self._form["token"] = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            script, text = self._script, "".join(self._script_text)
            kind = (script.get("type") or "").lower()
            if not script.get("src") and kind != "application/json":
                self.problems.append(f"an inline <script type={kind!r}>: {text.strip()[:80]!r}")
            self._script = None
        elif tag == "form" and self._form is not None:
            if not self._form["token"]:
                self.problems.append(f"a form posting to {self._form['action']} without a token")
            self._form = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script_text.append(data)


def _directives(header: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            parsed[words[0].lower()] = words[1:]
    return parsed


@pytest.mark.parametrize("name", list(PAGES))
def test_a_page_has_a_csp_and_no_inline_script(site: Site, name: str) -> None:
    page = PAGES[name]
    client = site.clients[page.who]
    path = _fill(site, page.path)
    if page.method == "GET":
        response = client.get(path)
    else:
        response = client.post(path, page.data)
    assert response.status_code == page.status, response.content[:500]
    assert response["Content-Type"].startswith("text/html")

    policy = _directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["style-src"] == ["'self'"]
    sources_everywhere = [source for sources in policy.values() for source in sources]
    assert "'unsafe-eval'" not in sources_everywhere
    assert "'unsafe-inline'" not in policy["script-src"] + policy.get("style-src-elem", [])
    assert policy["connect-src"] == ["'self'", "ws://testserver"]

    scan = _Scan()
    scan.feed(response.content.decode())
    scan.close()
    assert scan.problems == []
    assert all(src.startswith(settings.STATIC_URL) for src in scan.script_sources)


@pytest.mark.django_db
def test_every_response_has_the_policy_even_an_error_and_a_redirect() -> None:
    client = Client()
    for path, status in [("/g/NOSUCH/", 404), ("/sessions/", 302), ("/join/", 405)]:
        response = client.get(path)
        assert response.status_code == status
        assert "script-src 'self'" in response["Content-Security-Policy"]


def test_a_chart_keeps_its_own_stricter_policy(site: Site) -> None:
    response = site.clients["instructor"].get(f"/g/{site.code}/replay/chart/{site.chart}.svg")
    assert response.status_code == 200
    assert response["Content-Security-Policy"].startswith("default-src 'none'")


def test_over_https_the_websocket_source_is_wss(site: Site) -> None:
    response = site.clients["anonymous"].get("/", secure=True)
    assert _directives(response["Content-Security-Policy"])["connect-src"] == [
        "'self'",
        "wss://testserver",
    ]


_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I)
_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)


def test_no_template_holds_an_inline_script_or_handler() -> None:
    problems: list[str] = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        text = template.read_text(encoding="utf-8")
        name = str(template.relative_to(ROOT))
        problems += [f"{name}: {m.group(0)}" for m in _INLINE_SCRIPT.finditer(text)]
        problems += [f"{name}: {m.group(0)[:60]}" for m in _HANDLER.finditer(text)]
        if re.search(r"javascript:", text, re.I):
            problems.append(f"{name}: a javascript: URL")
    assert problems == []


def test_no_script_evaluates_strings() -> None:
    """'unsafe-eval' is not in the policy: code built from strings would not run."""
    pattern = re.compile(r"\beval\s*\(|new\s+Function\s*\(|set(?:Timeout|Interval)\s*\(\s*[\"'`]")
    problems = [
        f"{path.name}: {match.group(0)}"
        for path in sorted(STATIC_JS.glob("*.js"))
        for match in pattern.finditer(path.read_text(encoding="utf-8"))
    ]
    assert problems == []


# --------------------------------------------------------------------------------------------
# Websockets: only the site's own pages may open one


async def _handshake(path: str, origin: bytes) -> bool:
    from channels.testing import WebsocketCommunicator

    from config.asgi import application

    socket = WebsocketCommunicator(application, path, headers=[(b"origin", origin)])
    connected, _ = await socket.connect(timeout=10)
    if connected:
        await socket.disconnect()
    return bool(connected)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_server")
async def test_a_websocket_from_another_sites_page_is_refused() -> None:
    from asgiref.sync import sync_to_async

    def new_game() -> str:
        call_command("load_scenarios", verbosity=0)
        return services.create_game(scenario=Scenario.objects.get(slug="gatt")).code

    code = await sync_to_async(new_game)()
    assert await _handshake(f"/ws/games/{code}/", ORIGIN)
    assert not await _handshake(f"/ws/games/{code}/", b"https://evil.example")
    assert not await _handshake(f"/ws/games/{code}/", b"http://testserver.evil.example")


# --------------------------------------------------------------------------------------------
# Production settings, from the environment, in a process of their own

PRODUCTION_HOST = "ratify.example.org"


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The documented production environment (README, Deployment)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS=PRODUCTION_HOST,
        DJANGO_CSRF_TRUSTED_ORIGINS=f"https://{PRODUCTION_HOST}",
        DJANGO_SECURE_HSTS_PRELOAD="true",
        DATABASE_URL=f"sqlite:///{tmp_path / 'production.sqlite3'}",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    env.update(extra)
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run(env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")


def test_production_settings_pass_the_deployment_check_without_a_warning(tmp_path: Path) -> None:
    result = _check_deploy(production_env(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output and "System check identified no issues" in output


def test_without_preload_the_deployment_check_warns_of_that_alone(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["DJANGO_SECURE_HSTS_PRELOAD"]
    result = _check_deploy(env)
    output = result.stdout + result.stderr
    assert set(re.findall(r"\((security\.[EW]\d+)\)", output)) == {"security.W021"}, output


_SETTINGS_SCRIPT = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({name: getattr(s, name) for name in [
    "DEBUG", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
    "SECURE_PROXY_SSL_HEADER", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD", "CSRF_TRUSTED_ORIGINS", "X_FRAME_OPTIONS",
]}))
"""


def _settings_under(env: dict[str, str]) -> dict[str, Any]:
    result = _run(env, "-c", _SETTINGS_SCRIPT)
    assert result.returncode == 0, result.stderr
    values: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return values


def test_development_defaults_serve_plain_http_on_loopback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    values = _settings_under(env)
    assert values["DEBUG"] is True
    assert not values["SECURE_SSL_REDIRECT"] and not values["SESSION_COOKIE_SECURE"]
    assert not values["CSRF_COOKIE_SECURE"] and values["SECURE_PROXY_SSL_HEADER"] is None
    assert values["SECURE_HSTS_SECONDS"] == 0


def test_each_https_setting_follows_its_variable(tmp_path: Path) -> None:
    values = _settings_under(production_env(tmp_path))
    assert values["SECURE_SSL_REDIRECT"] and values["SESSION_COOKIE_SECURE"]
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SECURE_HSTS_SECONDS"] == 31_536_000 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert values["CSRF_TRUSTED_ORIGINS"] == [f"https://{PRODUCTION_HOST}"]
    assert values["X_FRAME_OPTIONS"] == "DENY"
    # A production-like server on plain HTTP on loopback (the load benchmark) turns them off.
    plain = _settings_under(
        production_env(
            tmp_path,
            DJANGO_SECURE_SSL_REDIRECT="false",
            DJANGO_SECURE_COOKIES="false",
            DJANGO_SECURE_PROXY_SSL_HEADER="false",
            DJANGO_SECURE_HSTS_SECONDS="0",
        )
    )
    assert not plain["SECURE_SSL_REDIRECT"] and not plain["SESSION_COOKIE_SECURE"]
    assert plain["SECURE_PROXY_SSL_HEADER"] is None and plain["SECURE_HSTS_SECONDS"] == 0
    assert plain["DEBUG"] is False


_COOKIE_SCRIPT = """
import json, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.test import Client
host = {host!r}
proxied = {{"HTTP_HOST": host, "HTTP_X_FORWARDED_PROTO": "https"}}
client = Client(enforce_csrf_checks=True)
plain = client.get("/accounts/login/", HTTP_HOST=host)
page = client.get("/accounts/login/", **proxied)
token = client.cookies["csrftoken"].value
signup = client.post(
    "/accounts/signup/",
    {{"username": "grace", "email": "grace@example.org", "password1": "correct-horse-battery",
     "password2": "correct-horse-battery", "csrfmiddlewaretoken": token}},
    HTTP_REFERER=f"https://{{host}}/accounts/signup/",
    **proxied,
)
def cookie(name):
    morsel = client.cookies[name]
    return {{"secure": bool(morsel["secure"]), "httponly": bool(morsel["httponly"]),
             "samesite": morsel["samesite"]}}
print(json.dumps({{
    "plain": [plain.status_code, plain.get("Location", "")],
    "page": page.status_code,
    "hsts": page.get("Strict-Transport-Security", ""),
    "csp": page.get("Content-Security-Policy", ""),
    "signup": signup.status_code,
    "csrftoken": cookie("csrftoken"),
    "sessionid": cookie("sessionid"),
}}))
"""


def test_production_cookies_are_secure_and_plain_http_is_redirected(tmp_path: Path) -> None:
    result = _run(production_env(tmp_path), "-c", _COOKIE_SCRIPT.format(host=PRODUCTION_HOST))
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["plain"] == [301, f"https://{PRODUCTION_HOST}/accounts/login/"]
    assert seen["page"] == 200
    assert seen["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert f"connect-src 'self' wss://{PRODUCTION_HOST}" in seen["csp"]
    assert seen["signup"] == 302
    assert seen["csrftoken"]["secure"] and seen["sessionid"]["secure"]
    assert seen["sessionid"]["httponly"] and seen["sessionid"]["samesite"] == "Lax"


def test_the_settings_module_documents_every_variable_it_reads() -> None:
    source = (ROOT / "config" / "settings.py").read_text(encoding="utf-8")
    docstring = source.split('"""', 2)[1]
    read = set(re.findall(r'env_(?:bool|list)\("([A-Z_]+)"', source))
    read |= set(re.findall(r'os\.environ\.get\(\s*"([A-Z_]+)"', source))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert {name for name in read if name not in docstring} == set()
    assert {name for name in read if f"`{name}`" not in readme} == set()
