"""``python manage.py export_session CODE --format csv|json --out DIR [--game] [--json]``.

Exports a class session's games (``CODE`` is the session's join code) or one game (``CODE`` is
a game's code: used when no session has that code, or always with ``--game``). ``csv`` writes
``events.csv``, ``seats.csv`` and ``ballots.csv`` into ``DIR``; ``json`` writes
``DIR/<CODE>.json``, which ``import_games`` reads. Existing files of those names are replaced.
The export is omniscient (ballots, preferences): it is for the instructor. Prints the files
written; ``--json`` prints ``{"code", "session", "games", "files": {path: rows or null}}``. An
unknown code exits with status 2; see docs/export.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandParser

from negotiation import export

EXIT_REFUSED = 2


class Command(BaseCommand):
    help = "Export a class session's games (or one game) as CSV tables or a JSON archive."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", help="a class session's join code, or a game's code")
        parser.add_argument("--format", choices=("csv", "json"), required=True)
        parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder")
        parser.add_argument(
            "--game", action="store_true", help="CODE is a game's code even if a session has it"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        code: str = options["code"]
        try:
            target = export.find_target(code, game_only=options["game"])
        except LookupError:
            what = "game" if options["game"] else "class session or game"
            self._refuse(f"{code}: no {what} has this code")
        out: Path = options["out"]
        files: dict[str, int | None]
        try:
            if options["format"] == "csv":
                counts = export.write_csv(out, target.games)
                files = {str(out / name): rows for name, rows in counts.items()}
            else:
                path = out / f"{target.code}.json"
                export.write_json(path, export.export_document(target))
                files = {str(path): None}
        except OSError as error:
            self._refuse(f"{out}: cannot write the export: {error}")
        if options["json"]:
            report = {
                "code": target.code,
                "session": target.session is not None,
                "games": [game.code for game in target.games],
                "files": files,
            }
            self.stdout.write(json.dumps(report))
            return
        what = "Class session" if target.session is not None else "Game"
        self.stdout.write(f"{what} {target.code}: {len(target.games)} game(s) exported")
        for path_name, rows in files.items():
            self.stdout.write(f"  {path_name}" + (f" ({rows} rows)" if rows is not None else ""))

    def _refuse(self, message: str) -> NoReturn:
        self.stderr.write(message)
        raise SystemExit(EXIT_REFUSED)
