"""The project's foundation: checks, migrations, the home page and ``load_scenarios``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings

from negotiation.engine.scenario import load_scenario_file
from negotiation.models import Scenario


def test_manage_py_check_passes(project_root: Path) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "WARNING"],
        cwd=project_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_no_missing_migrations() -> None:
    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit:
        pytest.fail(f"makemigrations found model changes without a migration:\n{out.getvalue()}")


@pytest.mark.django_db
def test_home_page_renders(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert b"Ratify" in response.content
    assert b'name="viewport"' in response.content


@pytest.mark.django_db
def test_login_page_renders(client: Client) -> None:
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b"Sign in" in response.content


@pytest.mark.django_db
def test_load_scenarios_lists_every_builtin_on_home_page(
    client: Client, builtin_scenario_files: list[Path]
) -> None:
    expected = {load_scenario_file(path).slug for path in builtin_scenario_files}
    assert expected

    out = io.StringIO()
    call_command("load_scenarios", stdout=out)

    stored = set(Scenario.objects.filter(builtin=True).values_list("slug", flat=True))
    assert stored == expected
    assert f"{len(expected)} scenarios loaded" in out.getvalue()

    content = client.get("/").content.decode()
    for slug in sorted(expected):
        assert slug in content, f"{slug} is not listed on the home page"
    for row in Scenario.objects.all():
        assert row.definition["slug"] == row.slug


@pytest.mark.django_db
def test_load_scenarios_is_idempotent(builtin_scenario_files: list[Path]) -> None:
    call_command("load_scenarios", stdout=io.StringIO())
    first = {s.slug: s.pk for s in Scenario.objects.all()}
    out = io.StringIO()
    call_command("load_scenarios", stdout=out)
    assert {s.slug: s.pk for s in Scenario.objects.all()} == first
    assert "updated" in out.getvalue()
    assert len(first) == len(builtin_scenario_files)


@pytest.mark.django_db
def test_load_scenarios_refuses_a_bad_file_and_stores_nothing(
    tmp_path: Path, builtin_scenario_files: list[Path]
) -> None:
    good = builtin_scenario_files[0]
    (tmp_path / good.name).write_bytes(good.read_bytes())
    (tmp_path / "broken.yaml").write_text("schema: 1\nslug: Not A Slug\n", encoding="utf-8")
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 scenario files refused"):
        call_command("load_scenarios", "--dir", str(tmp_path), stdout=io.StringIO(), stderr=err)
    problems = err.getvalue()
    assert "broken.yaml was refused" in problems
    assert len(problems.strip().splitlines()) > 2, problems
    assert not Scenario.objects.exists()


@pytest.mark.django_db
def test_stylesheet_is_served_only_when_debugging(client: Client) -> None:
    with override_settings(DEBUG=True):
        response = client.get("/static/css/site.css")
        assert response.status_code == 200
        assert b".skip-link" in response.getvalue()
    with override_settings(DEBUG=False):
        assert client.get("/static/css/site.css").status_code == 404
