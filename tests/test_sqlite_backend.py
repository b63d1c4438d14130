"""The project's SQLite backend (``config.sqlite3``): Django's, rewriting each statement once."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.backends.sqlite3 import base as django_sqlite

from config.sqlite3 import base
from negotiation.models import GameEvent

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1",
        "SELECT %s, %s",
        "SELECT '100%%' || %s",
        "INSERT INTO t (a, b) VALUES (%s, %s), (%s, %s)",
    ],
)
def test_a_statement_is_rewritten_as_djangos_backend_rewrites_it(query: str) -> None:
    with connection.cursor() as cursor:
        ours, theirs = cursor.cursor, django_sqlite.SQLiteCursorWrapper(connection.connection)
        assert isinstance(ours, base.SQLiteCursorWrapper)
        assert ours.convert_query(query) == theirs.convert_query(query)
        names = ["a", "b"]
        named = "SELECT %(a)s, %(b)s"
        assert ours.convert_query(named, param_names=names) == theirs.convert_query(
            named, param_names=names
        )


def test_a_statement_run_again_is_not_rewritten_again() -> None:
    base._qmark.cache_clear()
    for _ in range(3):
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s + %s", [1, 2])
            assert cursor.fetchone() == (3,)
    info = base._qmark.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_the_orm_runs_on_it() -> None:
    assert connection.settings_dict["ENGINE"] == "config.sqlite3"
    assert connection.vendor == "sqlite"
    assert GameEvent.objects.filter(seq__gte=0).count() == 0
