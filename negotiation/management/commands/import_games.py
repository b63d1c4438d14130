"""``python manage.py import_games FILE [--owner USERNAME] [--json]``: games from an export.

Reads a JSON export written by ``export_session --format json`` (possibly on another server)
and creates its scenario, games, seats, logs, annotations and class session, all or nothing.
Every log is checked with the engine first; a log it refuses is named with the first event at
fault and nothing is written. Codes already taken here are replaced by fresh ones; a scenario
identical to a stored one is reused, a different one whose slug is taken gets a fresh slug.
``--owner`` names the user who owns the imported session (required for a session), created
scenarios and games, and who authors the annotations. Prints each imported code; ``--json``
prints ``{"session", "original_session", "games": [{"code", "original_code", "scenario"}],
"scenarios_created"}``. A refused file exits with status 2 and a sentence on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandParser

from negotiation import export

EXIT_REFUSED = 2


class Command(BaseCommand):
    help = "Import the games (and class session) of a JSON export."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="a JSON export (export_session --format json)")
        parser.add_argument(
            "--owner", metavar="USERNAME", help="owner of the imported session and games"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            self._refuse(f"{path}: cannot read the file: {error}")
        try:
            document = export.read_document(text)
            result = export.import_document(document, owner=options["owner"])
        except export.ImportRefusedError as refusal:
            self._refuse(f"{path}: refused, nothing imported: {refusal}")
        if options["json"]:
            self.stdout.write(json.dumps(result.to_dict()))
            return
        if result.session is not None:
            self.stdout.write(f"Class session {result.session} (was {result.original_session})")
        for game in result.games:
            renamed = f" (was {game.original_code})" if game.code != game.original_code else ""
            self.stdout.write(f"Game {game.code}{renamed} of {game.scenario}")
        for slug in result.scenarios_created:
            self.stdout.write(f"New scenario: {slug}")

    def _refuse(self, message: str) -> NoReturn:
        self.stderr.write(message)
        raise SystemExit(EXIT_REFUSED)
