"""``python manage.py load_scenarios``: store every built-in scenario file in the database.

Reads each ``*.yaml``, ``*.yml`` and ``*.json`` file in ``negotiation/scenarios/`` (or the
folder given with ``--dir``), validates it with the engine and creates or updates the
``Scenario`` row with its slug, marked ``builtin``. Every file is checked before anything is
written: if any file is refused, its problems go to stderr, one per line, nothing is stored and
the command exits non-zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from negotiation.engine.scenario import Scenario as EngineScenario
from negotiation.engine.scenario import ScenarioError, load_scenario_file
from negotiation.models import Scenario

SCENARIO_DIR = Path(__file__).resolve().parent.parent.parent / "scenarios"
SUFFIXES = frozenset({".yaml", ".yml", ".json"})


def scenario_files(folder: Path) -> list[Path]:
    """The scenario files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


class Command(BaseCommand):
    help = "Validate the built-in scenario files and store them (create or update by slug)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dir",
            type=Path,
            default=SCENARIO_DIR,
            help="folder of scenario files (default: negotiation/scenarios/)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        folder: Path = options["dir"]
        if not folder.is_dir():
            raise CommandError(f"{folder}: no such folder")
        paths = scenario_files(folder)
        if not paths:
            raise CommandError(f"{folder}: no scenario files (*.yaml, *.yml, *.json)")

        loaded: list[tuple[Path, EngineScenario]] = []
        refused = 0
        for path in paths:
            try:
                loaded.append((path, load_scenario_file(path)))
            except ScenarioError as error:
                refused += 1
                self.stderr.write(f"{path.name} was refused:")
                for line in str(error).splitlines():
                    self.stderr.write(f"  {line}")
        if refused:
            raise CommandError(f"{refused} of {len(paths)} scenario files refused; nothing stored")

        seen: dict[str, Path] = {}
        for path, scenario in loaded:
            if scenario.slug in seen:
                raise CommandError(
                    f"{path.name}: slug {scenario.slug!r} is also used by {seen[scenario.slug].name}"
                )
            seen[scenario.slug] = path

        with transaction.atomic():
            for path, scenario in loaded:
                _, created = Scenario.objects.update_or_create(
                    slug=scenario.slug,
                    defaults={
                        "title": scenario.title,
                        "summary": scenario.summary,
                        "definition": scenario.to_dict(),
                        "builtin": True,
                    },
                )
                verb = "created" if created else "updated"
                self.stdout.write(f"{verb} {scenario.slug}: {scenario.title} ({path.name})")
        self.stdout.write(self.style.SUCCESS(f"{len(loaded)} scenarios loaded"))
