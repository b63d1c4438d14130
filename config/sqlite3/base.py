"""Django's SQLite backend, remembering how it rewrote each statement.

Django writes parameters as ``%s`` and SQLite takes ``?``: Django's cursor rewrites every
statement with a regular expression each time it runs it. The batch writer's statements
(``services._Rows``) insert dozens of rows with hundreds of parameters, made once per row
count, so the rewriting cost the database thread about 4 us per command, with the GIL held,
in batches of 25 (``bench/README.md``). The rewritten text depends on the statement's text
alone: it is kept for the most recent statements.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db.backends.sqlite3 import base

#: Statement texts whose rewriting is kept (the writer's shapes, and the ORM's usual queries).
CONVERTED_STATEMENTS = 1024


@functools.lru_cache(maxsize=CONVERTED_STATEMENTS)
def _qmark(query: str) -> str:
    """``query`` with ``%s`` placeholders as ``?``, as Django's SQLite cursor rewrites it."""
    return base.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")


class SQLiteCursorWrapper(base.SQLiteCursorWrapper):
    def convert_query(self, query: str, *, param_names: Sequence[str] | None = None) -> str:
        if param_names is None:
            return _qmark(query)
        # Named parameters are rare here (Django's own introspection): rewritten each time.
        converted: str = super().convert_query(query, param_names=param_names)
        return converted


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name: Any = None) -> Any:
        return self.connection.cursor(factory=SQLiteCursorWrapper)
